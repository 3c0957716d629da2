"""Tools for learning about the monitor: the normalisation ablation."""
