"""The application's one error type, and the exit statuses of the `monitor` command.

The application raises `MonitorError` (a usage or input error: exit status 2) or its subclass
`RuntimeFailure` (the run could not go on: an output cannot be written, Redis was lost; exit
status 1). Neither knows about click: the CLI turns them into one line on stderr, once
(see monitor.cli.commands).

Exit statuses of `monitor`:

====  ==========================================================================
0     done
1     a check failed (the circles sanity check), or a runtime failure
2     a usage or input error (bad option, unreadable input, refused checkpoint)
130   stopped by SIGINT (Ctrl-C); the output is flushed, a --state checkpoint written
143   stopped by SIGTERM; likewise
====  ==========================================================================

>>> MonitorError("no such file: hr.csv").exit_code, RuntimeFailure("disk full").exit_code
(2, 1)
>>> str(MonitorError("bad\\x1bname"))
'bad\\\\x1bname'
"""

from __future__ import annotations

__all__ = ["MonitorError", "RuntimeFailure", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_SIGINT",
           "EXIT_SIGTERM"]

EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, or a runtime failure
EXIT_USAGE = 2  # a usage or input error
EXIT_SIGINT = 130  # 128 + SIGINT
EXIT_SIGTERM = 143  # 128 + SIGTERM


def printable(message: str) -> str:
    """The message with control characters escaped (names from the data may hold them)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


class MonitorError(Exception):
    """A usage or input error: one line on stderr, exit status 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        self.message = printable(message)
        super().__init__(self.message)


class RuntimeFailure(MonitorError):
    """The run could not go on (an output cannot be written, a service was lost): one line, exit 1."""

    exit_code = EXIT_FAILED
