"""Data: generated videos (this module grows datasets and transforms in later work)."""
