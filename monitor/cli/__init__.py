"""The `monitor` command: the click group and its commands (monitor.cli.commands), their shared
options (monitor.cli.options, a leaf), the dashboard commands (monitor.cli.dashboard)."""

from monitor.cli.commands import MonitorError, main

__all__ = ["main", "MonitorError"]
