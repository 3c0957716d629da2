"""A run's dashboard: the state, its server, the tee that feeds it, and the wait after the stream.

`Dashboard.tee(sink, summary)` wraps the record sink of a run: each scored batch goes to the sink
and to the dashboard's `WardState`; the run's summary is refreshed at most once a second (it costs a
pass over the keys). After a finite stream, `hold()` keeps the page up until Ctrl-C (130) or SIGTERM
(143).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from monitor.dashboard.address import Address
from monitor.dashboard.server import DashboardServer
from monitor.dashboard.state import WardState

__all__ = ["Dashboard", "DashboardTee"]


class DashboardTee:
    """A record sink that also hands every batch to the dashboard (see the module docstring)."""

    def __init__(self, sink, state: WardState, summary: Callable[[], dict] | None = None, *,
                 every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.state = state
        self.summary = summary
        self.every = every
        self.clock = clock
        self._last = -float("inf")

    def __repr__(self) -> str:
        return f"DashboardTee({self.sink!r})"

    def write(self, scored) -> None:
        self.sink.write(scored)
        self.state.update(scored)
        if self.summary is not None and (now := self.clock()) - self._last >= self.every:
            self._last = now
            self.state.set_summary(self.summary())

    def flush(self) -> None:
        self.sink.flush()


class Dashboard:
    """Start with `open`, feed with `tee` (or `state.update`), end with `finish`, then `hold`.

    Parameters
    ----------
    address
        Where to listen.
    token
        The token every request must carry (required off loopback), or None.
    note
        Where the URL is said (stderr by default).
    """

    def __init__(self, address: Address, *, token: str | None = None, source: str = "",
                 note: TextIO | None = sys.stderr) -> None:
        address.check_token(token)
        self.address = address
        self.state = WardState()
        self.state.source = source
        self.server = DashboardServer(self.state, host=address.host, port=address.port, token=token)
        self.note = note

    def __repr__(self) -> str:
        return f"Dashboard({self.server!r})"

    def __enter__(self) -> "Dashboard":
        try:
            self.server.start()
        except OSError as e:
            raise ValueError(f"cannot listen on {self.address.host}:{self.address.port}: "
                             f"{e.strerror or e}") from None
        if self.note is not None:
            self.note.write(f"monitor: dashboard at {self.server.url}\n")
            self.note.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def tee(self, sink, summary: Callable[[], dict] | None = None) -> DashboardTee:
        return DashboardTee(sink, self.state, summary)

    def finish(self, summary: dict) -> None:
        """The stream has ended: the final summary (what --summary-json writes)."""
        self.state.set_summary(summary, final=True)

    def hold(self, message: str = "the stream has ended; the dashboard stays up at {url} until Ctrl-C") -> int:
        """Keep serving until Ctrl-C or SIGTERM; returns the exit status (130 or 143)."""
        from monitor.app.interrupts import Interrupts
        with Interrupts() as stop:
            try:
                if self.note is not None:  # said once the handlers are in place: a signal may follow at once
                    self.note.write(f"monitor: {message.format(url=self.url)}\n")
                    self.note.flush()
                while True:
                    stop.sleep(3600.0)
            except KeyboardInterrupt:
                return stop.exit_status or 130

