"""Replay pacing: release readings when their time (scaled by speed) has come.

The gap between readings is honoured from the time column, not a fixed sleep, and sleeping is
measured against a start instant, so small sleep overshoots do not accumulate.

>>> import numpy as np
>>> pacer = Pacer(speed=0)
>>> [(s.start, s.stop) for s in pacer.split(np.array([0.0, 0.5, 1.0]))]
[(0, 3)]
"""

from __future__ import annotations

import time as _time
from typing import Callable, Iterator

import numpy as np

__all__ = ["Pacer"]


class Pacer:
    """speed 0: as fast as possible; speed s > 0: a reading at time t is released at (t - t0) / s."""

    def __init__(self, *, speed: float = 0.0, clock: Callable[[], float] = _time.monotonic,
                 sleep: Callable[[float], None] = _time.sleep) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 (as fast as possible) or positive, got {speed}")
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._t0: float | None = None  # stream time of the first reading
        self._w0: float | None = None  # wall clock when it was released

    def __repr__(self) -> str:
        return f"Pacer(speed={self.speed})"

    def split(self, times: np.ndarray) -> Iterator[slice]:
        """Yield slices of the batch as they become due, sleeping in between."""
        n = len(times)
        if self.speed == 0 or n == 0:
            yield slice(0, n)
            return
        if self._t0 is None:
            self._t0, self._w0 = float(times[0]), self.clock()
        due = self._w0 + (times - self._t0) / self.speed  # (n,) wall-clock release instants
        i = 0
        while i < n:
            now = self.clock()
            j = int(np.searchsorted(due, now, side="right"))
            if j <= i:
                self.sleep(max(0.0, float(due[i]) - now))
                continue
            yield slice(i, j)
            i = j
