"""The exceptions charrnn raises for problems a user can fix.

Each message fits on one line; the CLI prints it as `Error: <message>` and exits 1.
"""


class CharRNNError(Exception):
    """Base class: a problem with the user's input, not a bug in charrnn."""

    exit_code = 1


class CorpusError(CharRNNError):
    """The training or evaluation text cannot be used."""


class CheckpointError(CharRNNError):
    """A checkpoint is missing, unreadable, unsafe or does not fit the request."""


class ConfigError(CharRNNError):
    """Options that are invalid or contradict each other or a checkpoint."""


class OptionError(ConfigError):
    """One command-line option's value cannot be used; the CLI reports it as a usage error (exit 2)."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option} {message}")
        self.option = option
        self.detail = message


class TrainingDiverged(CharRNNError):
    """The loss became NaN or infinite; nothing from that point on was saved."""


class TrainingStopped(CharRNNError):
    """Training stopped on a signal after saving its progress."""

    def __init__(self, signal_name: str, step: int, saved: str, exit_code: int):
        super().__init__(f"stopped by {signal_name} at step {step:,}; progress saved to {saved}")
        self.saved = saved
        self.exit_code = exit_code
