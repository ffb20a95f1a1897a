"""`python -m charrnn` runs the command-line interface."""

from charrnn.cli.commands import entry_point

if __name__ == "__main__":
    entry_point()
