"""The `charrnn` command (commands.py): click options generated from the option table (params.py),
standard streams that never crash it (stdio.py), and the settings of a `sample -i` session."""
