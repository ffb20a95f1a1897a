"""What lasts on disk: checkpoints and their file format, a run's out folder and its metrics, corpora
and the corpus cache, and the files charrnn writes where it is told to."""
