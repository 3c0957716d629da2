"""The monitor application: the loop, labels, metrics, sinks and the click CLI."""

__version__ = "0.1.0"  # kept equal to pyproject.toml's version (tests/monitor/cli/test_cli.py checks)
