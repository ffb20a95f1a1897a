"""Seeing what a model learned: `charrnn viz` (a text traced through the model, its cells, gates and
reach) and `charrnn plot` (its learning curves)."""
