"""What can be set: every option of every command (train_options.py, options.py; what an option is: option.py), the typed configs built from them
(config.py), and run lengths and durations (budget.py). Imports nothing of charrnn but errors."""
