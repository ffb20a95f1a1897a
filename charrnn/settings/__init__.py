"""What can be set: every option of every command (options.py), the typed configs built from them
(config.py), and run lengths and durations (budget.py). Imports nothing of charrnn but errors."""
