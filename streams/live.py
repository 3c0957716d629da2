"""Live lines from a pipe or standard input, handed over as they arrive.

>>> import os
>>> r, w = os.pipe()
>>> _ = os.write(w, b"hr\\n71\\n72\\n"); os.close(w)
>>> source = LiveLines(stream=r)
>>> source  # doctest: +ELLIPSIS
LiveLines(stream=fd ...)
>>> [b.x.ravel().tolist() for b in source]
[[71.0, 72.0]]
>>> os.close(r)
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, Callable, Iterator

from streams.lines import MAX_LINE
from streams.linesource import LineSource

__all__ = ["LiveLines", "read_chunks"]

_READ = 65536  # bytes asked of os.read, which returns as soon as any are available


class LiveLines(LineSource):
    """Readings from lines arriving on a stream; each read's whole lines become one Batch at once.

    Parameters
    ----------
    stream
        A binary stream with a file descriptor, or the descriptor itself; None (the default) is
        standard input (``sys.stdin.buffer``), looked up when iteration starts. Bytes already
        buffered inside a Python stream object are not seen: the descriptor is read directly.
        A stream without a descriptor (io.BytesIO) is read with its read1() or read().
    column, time_column, label_column, key_column
        Which column holds the reading, the time, a 0/1 label, a key (see LineParser).
    valid_range
        Readings outside ``(low, high)`` are rejected (see LineParser); None accepts all.
    on_note
        Called once with a one-line note saying which columns were chosen.

    A last line without a newline is parsed at the end of the stream. A stream that ends without
    any line (or with a header alone) raises SourceError at its end.
    """

    live = True

    def __init__(self, *, stream: BinaryIO | int | None = None, column: str | None = None,
                 time_column: str | None = None, label_column: str | None = None,
                 key_column: str | None = None, valid_range: tuple[float, float] | None = None,
                 on_note: Callable[[str], None] | None = None, max_line: int = MAX_LINE) -> None:
        super().__init__(column=column, time_column=time_column, label_column=label_column,
                         key_column=key_column, valid_range=valid_range, on_note=on_note,
                         max_line=max_line)
        self.stream = stream

    def _name(self) -> str:
        if self.stream is None or self.stream is getattr(sys.stdin, "buffer", None) \
                or (isinstance(self.stream, int) and self.stream == 0):
            return "standard input"
        if isinstance(self.stream, int):
            return f"fd {self.stream}"
        return str(getattr(self.stream, "name", "the stream"))

    def _repr_args(self) -> list[str]:
        stream = [] if self.stream is None else [f"stream={self._name()}"]
        return stream + super()._repr_args()

    def _chunks(self) -> Iterator[bytes]:
        return read_chunks(self.stream)


def read_chunks(stream: BinaryIO | int | None = None) -> Iterator[bytes]:
    """The bytes of a live stream (standard input when None) as they arrive, read from its descriptor;
    a stream without one (io.BytesIO) is read with its read1() or read()."""
    stream = sys.stdin.buffer if stream is None else stream
    try:
        fd = stream if isinstance(stream, int) else stream.fileno()
    except (AttributeError, OSError):  # no descriptor (io.BytesIO): read what the stream gives
        read = getattr(stream, "read1", stream.read)
        while chunk := read(_READ):
            yield chunk
        return
    while chunk := os.read(fd, _READ):
        yield chunk
