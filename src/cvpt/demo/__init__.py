"""``cvpt demo``: the paper's comparison in miniature on the synthetic task (docs/synthetic.md)."""
