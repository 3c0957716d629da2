"""Bytes arriving in chunks -> blocks of whole lines -> LineParser -> Batches.

The code the file replay and the live source share: a chunk is cut after its last newline, the
rest waits for the next chunk (or the end, where a last line without a newline is parsed too).

>>> from streams.lines import LineParser
>>> chunks = [b"t,h", b"r\\n0,80\\n0.5,8", b"1\\n1.0,82"]
>>> for b in read_batches(chunks, LineParser(), name="demo"):
...     print(b, b.x.ravel().tolist())
Batch(n=1, d=1, lines=2..2, rejected=0) [80.0]
Batch(n=1, d=1, lines=3..3, rejected=0) [81.0]
Batch(n=1, d=1, lines=4..4, rejected=0) [82.0]
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from streams.batch import Batch, SourceError
from streams.lines import LineParser

__all__ = ["LineSource", "read_batches"]


def read_batches(chunks: Iterable[bytes], parser: LineParser, *, name: str,
                 hold: bool = False) -> Iterator[Batch]:
    """Batches of the whole lines in a stream of byte chunks, one Batch per chunk holding a newline.

    With ``hold``, batches of blank lines and the header are kept back until a reading or another
    line arrives, so that an empty source (no lines, blank lines only, or a header alone) raises
    SourceError before anything is yielded; without it they are yielded as they come (live
    input) and the error is raised at the end.
    """
    pending: list[bytes] = []  # the start of a line whose newline has not arrived
    line = 1  # number of the next line
    readings, held = 0, []
    only_blank = True  # no line so far other than blank ones and the header

    def parse(block: bytes) -> Batch:
        nonlocal line, readings, only_blank
        batch = parser.parse_bytes(block, line)
        line += len(batch) + len(batch.rejected) + batch.header_lines  # every line is accounted for
        readings += len(batch)
        only_blank = only_blank and all(r.reason == "empty line" for r in batch.rejected)
        return batch

    def flush(batch: Batch) -> Iterator[Batch]:
        if hold and readings == 0 and only_blank:  # the source may yet turn out to be empty
            held.append(batch)
            return
        yield from held
        held.clear()
        yield batch

    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if chunk:
                pending.append(chunk)
            continue
        pending.append(memoryview(chunk)[:cut])
        block = b"".join(pending)
        pending = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
        yield from flush(parse(block))
    if pending:
        yield from flush(parse(b"".join(pending)))
    if readings == 0 and only_blank:
        if parser.header_ is not None:
            raise SourceError(f"{name} has a header but no readings")
        raise SourceError(f"{name} is empty")
    yield from held


class LineSource:
    """Base of the sources that read CSV lines from bytes; subclasses say where the bytes come from.

    Parameters
    ----------
    column, time_column, label_column, key_column
        Passed to LineParser: which column holds the reading, the time, a 0/1 label, a key.
    on_note
        Called once with a one-line note saying which columns were chosen.
    """

    live = False  # True: batches are handed over as lines arrive

    def __init__(self, *, column: str | None = None, time_column: str | None = None,
                 label_column: str | None = None, key_column: str | None = None,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.column = column
        self.time_column = time_column
        self.label_column = label_column
        self.key_column = key_column
        self.on_note = on_note

    def _chunks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def _name(self) -> str:
        raise NotImplementedError

    def _repr_args(self) -> list[str]:
        return [f"{k}={getattr(self, k)!r}"
                for k in ("column", "time_column", "label_column", "key_column")
                if getattr(self, k) is not None]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_args())})"

    def __iter__(self) -> Iterator[Batch]:
        parser = LineParser(column=self.column, time_column=self.time_column,
                            label_column=self.label_column, key_column=self.key_column,
                            on_note=self.on_note)
        return read_batches(self._chunks(), parser, name=self._name(), hold=not self.live)
