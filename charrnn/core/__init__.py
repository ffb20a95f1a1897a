"""The network and what it reads and writes: the vocabulary, the truncated-BPTT streams, the model
in PyTorch and its numpy twin, the sampling rules, and the CPU thread tuner their loops share."""
