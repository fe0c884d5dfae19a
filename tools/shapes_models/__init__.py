"""Training and export code for the shapes demo models (see tools/train_shapes.py)."""
