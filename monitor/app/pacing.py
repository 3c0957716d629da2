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

__all__ = ["Pacer", "MAX_GAP"]

MAX_GAP = 60.0  # seconds: the longest wait between two readings when pacing


class Pacer:
    """speed 0: as fast as possible; speed s > 0: a reading at time t is released at (t - t0) / s.

    A gap between two readings that would mean waiting more than ``max_gap`` seconds (a time
    column jumping by years) is cut to ``max_gap``; ``n_capped_`` counts those gaps and
    ``on_note`` is told the first time.
    """

    def __init__(self, *, speed: float = 0.0, clock: Callable[[], float] = _time.monotonic,
                 sleep: Callable[[float], None] = _time.sleep, max_gap: float = MAX_GAP,
                 on_note: Callable[[str], None] | None = None) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 (as fast as possible) or positive, got {speed}")
        if not max_gap > 0:
            raise ValueError(f"max_gap must be positive, got {max_gap}")
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self.max_gap = max_gap
        self.on_note = on_note
        self.n_capped_ = 0  # gaps cut to max_gap
        self._t0: float | None = None  # stream time of the first reading
        self._w0: float | None = None  # wall clock when it was released
        self._last: float | None = None  # stream time of the last reading released
        self._cut = 0.0  # stream time taken out of the capped gaps so far

    def __repr__(self) -> str:
        return f"Pacer(speed={self.speed})"

    def split(self, times: np.ndarray) -> Iterator[slice]:
        """Yield slices of the batch as they become due, sleeping in between."""
        n = len(times)
        if self.speed == 0 or n == 0:
            yield slice(0, n)
            return
        times = np.asarray(times, dtype=np.float64)
        if self._t0 is None:
            self._t0, self._w0, self._last = float(times[0]), self.clock(), float(times[0])
        gaps = np.diff(times, prepend=self._last)  # (n,) stream time since the reading before
        excess = np.maximum(gaps - self.max_gap * self.speed, 0.0)  # (n,) beyond the cap
        capped = int((excess > 0).sum())
        if capped:
            if not self.n_capped_ and self.on_note is not None:
                self.on_note(f"pacing: a gap of {float(gaps.max()):.6g} s in the time column is cut to "
                             f"{self.max_gap:g} s of waiting (and so is any later one)")
            self.n_capped_ += capped
        shifted = times - (self._cut + np.cumsum(excess))  # (n,) stream times with the gaps cut
        self._cut += float(excess.sum())
        self._last = float(times[-1])
        due = self._w0 + (shifted - self._t0) / self.speed  # (n,) wall-clock release instants
        i = 0
        while i < n:
            now = self.clock()
            j = int(np.searchsorted(due, now, side="right"))
            if j <= i:
                self.sleep(max(0.0, float(due[i]) - now))
                continue
            yield slice(i, j)
            i = j
