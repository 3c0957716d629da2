"""The unit every source hands to the monitor: a small bundle of numpy arrays.

>>> import numpy as np
>>> b = Batch.of_values([80.0, 95.0], first_line=1)
>>> b
Batch(n=2, d=1, lines=1..2, rejected=0)
>>> b.x.shape, b.y.tolist()
((2, 1), [nan, nan])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["Batch", "Reject", "SourceError"]


class SourceError(ValueError):
    """A source cannot be read at all (missing file, missing column, empty file).

    The message is one line, meant for the user as it is.
    """


class Reject(NamedTuple):
    """A line that could not be turned into a reading."""

    line: int  # 1-based line number in the source
    raw: str  # the line as read (truncated to 200 characters)
    reason: str  # why, in a few words: "not a number: 'abc'"


@dataclass(frozen=True)
class Batch:
    """n readings, in source order.

    time:   (n,) float64, seconds (epoch or relative); the reading index when the source has none
    x:      (n, d) float64 features; d == 1 for heart rate
    y:      (n,) float64 labels 0/1, NaN where the source carries none (the monitor labels them)
    key:    (n,) object array of keys (patient id) or None
    line:   (n,) int64 1-based source line numbers (or reading indices for generated streams)
    rejected: lines of this stretch of the source that were not readings, in line order
    header_lines: header lines consumed in this stretch (for the invariant lines = readings + rejected + headers)
    position: where the source stands once this batch is consumed, JSON-able, or None (a source that
              cannot resume): for line sources {"offset": byte offset of the next unread line,
              "line": its number, "parser": the parser's state}; give it back to resume there
    """

    time: np.ndarray
    x: np.ndarray
    y: np.ndarray
    line: np.ndarray
    key: np.ndarray | None = None
    rejected: Sequence[Reject] = field(default_factory=tuple)
    header_lines: int = 0
    position: dict | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        n = len(self)
        lines = f"{int(self.line[0])}..{int(self.line[-1])}" if n else "-"
        return f"Batch(n={n}, d={self.x.shape[1]}, lines={lines}, rejected={len(self.rejected)})"

    def slice(self, start: int, stop: int) -> "Batch":
        """Readings start:stop, without the rejects (the caller reports those once)."""
        return Batch(
            time=self.time[start:stop],
            x=self.x[start:stop],
            y=self.y[start:stop],
            line=self.line[start:stop],
            key=None if self.key is None else self.key[start:stop],
        )

    @classmethod
    def of_values(cls, values: Sequence[float], first_line: int = 1) -> "Batch":
        """A batch of one-feature readings with no labels, timed by their index."""
        v = np.asarray(values, dtype=np.float64)
        idx = np.arange(first_line, first_line + len(v), dtype=np.int64)
        return cls(time=(idx - first_line).astype(np.float64), x=v.reshape(-1, 1),
                   y=np.full(len(v), np.nan), line=idx)
