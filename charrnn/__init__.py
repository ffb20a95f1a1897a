"""charrnn: character-level RNN text generation (train, resume exactly, sample)."""

__version__ = "0.1.0"
