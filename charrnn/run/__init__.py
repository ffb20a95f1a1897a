"""A training run: what it starts from, the loop, its optimizer and length, evaluation, previews,
progress, the diagnosis of its curves, and the machine it runs on (devices, torchrun ranks)."""
