"""charrnn: character-level RNN text generation (train, resume exactly, sample).

From Python (see charrnn.api; torch is imported only when one of these is called):

    import charrnn
    model = charrnn.load("checkpoints")
    print(model.sample(300, prime="ROMEO:", temperature=0.8))
    charrnn.train("poems.txt", out="runs/poems", max_steps=2000)
"""

from charrnn.version import __version__  # noqa: F401 - charrnn.__version__


def load(*args, **kwargs):
    """The model in a checkpoint file or an out folder, ready to sample and score: charrnn.api.load."""
    from charrnn.api import load

    return load(*args, **kwargs)


def train(*args, **kwargs):
    """Train, resume or fine-tune a run with the command's options as keywords: charrnn.api.train."""
    from charrnn.api import train

    return train(*args, **kwargs)
