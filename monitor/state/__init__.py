"""Checkpoints: written atomically, checked field by field, one run at a time (the lock)."""
