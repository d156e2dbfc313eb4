"""Training and evaluation the paper's way."""
