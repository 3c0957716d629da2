"""Ctrl-C and SIGTERM, turned into a clean stop at a point where the state is consistent.

Inside ``critical()`` a signal is only noted, and raised as KeyboardInterrupt when the block ends;
outside (waiting for input, sleeping for pacing) it is raised at once, so a quiet pipe or a slow
replay stops promptly. The exit status is 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.

>>> import os, signal
>>> with Interrupts() as stop:
...     try:
...         with stop.critical():
...             os.kill(os.getpid(), signal.SIGTERM)
...             print("the block finishes first")
...     except KeyboardInterrupt:
...         print("then it stops, status", stop.exit_status)
the block finishes first
then it stops, status 143
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Interrupts", "held_until_done"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """A context manager that installs the handlers for SIGINT and SIGTERM and puts the old ones back."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received
        self._depth = 0
        self._pending = False
        self._old: dict[int, object] = {}

    def __repr__(self) -> str:
        return f"Interrupts(signal={self.signum})"

    @property
    def exit_status(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        """time.sleep that a signal noted inside a critical block still cuts short (pacing)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt
            time.sleep(min(left, 0.05))

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A block that a signal does not cut short; the signal is raised when it ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._pending and not self._depth:
            self._pending = False
            raise KeyboardInterrupt

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


@contextmanager
def held_until_done() -> Iterator[None]:
    """A block that a signal must not cut short, delivered again as it came once the block is over.

    For the start-up imports (torch, numpy, pandas): a KeyboardInterrupt raised inside an import
    can be swallowed by the importing library and leave a half-initialised numpy behind, which the
    run then trips on (a traceback and status 1 instead of 130). After the block, SIGINT raises
    KeyboardInterrupt as usual and SIGTERM ends the process as it would have.

    >>> import os
    >>> before = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background job ignores SIGINT)
    >>> try:
    ...     with held_until_done():
    ...         os.kill(os.getpid(), signal.SIGINT)
    ...         print("the imports finish first")
    ... except KeyboardInterrupt:
    ...     print("then Ctrl-C takes effect")
    the imports finish first
    then Ctrl-C takes effect
    >>> _ = signal.signal(signal.SIGINT, before)
    """
    stop = Interrupts()
    try:
        with stop, stop.critical():
            yield
    except KeyboardInterrupt:  # a signal noted in the block, raised by critical() at its end
        if stop.signum is None:
            raise
        signal.raise_signal(stop.signum)  # under the handlers of before: SIGTERM ends the process as it would have
