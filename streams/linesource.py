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

from dataclasses import replace
from typing import Callable, Iterable, Iterator

import numpy as np

from streams.batch import Batch, SourceError
from streams.lines import MAX_LINE, LineParser, too_long

_RAW_MAX = 200  # characters of a dropped line kept in its Reject

__all__ = ["LineSource", "read_batches"]


def read_batches(chunks: Iterable[bytes], parser: LineParser, *, name: str,
                 hold: bool = False, max_lines: int | None = None,
                 start: dict | None = None, digest=None, max_line: int = MAX_LINE) -> Iterator[Batch]:
    """Batches of the whole lines in a stream of byte chunks, one Batch per chunk holding a newline.

    With ``hold``, batches of blank lines and the header are kept back until a reading or another
    line arrives, so that an empty source (no lines, blank lines only, or a header alone) raises
    SourceError before anything is yielded; without it they are yielded as they come (live
    input) and the error is raised at the end.

    With ``max_lines``, no Batch holds more than that many lines (a block is cut into pieces), so
    that a caller checkpointing between batches gets a chance every ``max_lines`` lines. Each
    Batch carries its ``position`` (byte offset and number of the next unread line, and the
    parser's state); ``start``, a position handed out before, says where ``chunks`` begin and
    that the lines before it were read already (no empty-source error then).

    With ``digest`` (a hashlib object holding the bytes before ``start``), each position also
    carries ``"sha256"``: the hex digest of every byte before its offset, so that a resume can
    tell the same bytes from a file replaced since (see CsvReplay).

    A line of more than ``max_line`` bytes is a Reject ("longer than ..."): its bytes are dropped
    as they arrive (memory holds at most ``max_line`` bytes of a line and one chunk) and reading
    goes on after its newline. Content that starts with NUL bytes or a UTF-16 mark (a binary file,
    /dev/zero, a UTF-16 export) is a SourceError at once.
    """
    pending: list[bytes] = []  # the start of a line whose newline has not arrived
    line = 1 if start is None else int(start["line"])  # number of the next line
    offset = 0 if start is None else int(start["offset"])  # byte offset of the next line
    readings, held = (0 if start is None else 1), []
    only_blank = start is None  # no line so far other than blank ones and the header

    skipping: list | None = None  # [raw text kept, bytes so far] of a line over max_line being dropped
    first = start is None

    def parse_one(block: bytes, size: int, *, rest: bytes | None = None, rejected=None) -> Batch:
        """``rest``: for a dropped line, its bytes not yet hashed (the block is a placeholder)."""
        nonlocal line, offset, readings, only_blank
        batch = parser.parse_bytes(block, line, max_line=max_line, rejected=rejected)
        line += len(batch) + len(batch.rejected) + batch.header_lines  # every line is accounted for
        offset += size
        readings += len(batch)
        only_blank = only_blank and all(r.reason == "empty line" for r in batch.rejected)
        position = {"offset": offset, "line": line, "parser": parser.state_dict()}
        if digest is not None:
            if rest is not None:
                digest.update(rest)
            else:
                digest.update(block)
                if size > len(block):
                    digest.update(b"\n")
            position["sha256"] = digest.hexdigest()
        return replace(batch, position=position)

    def drop(data: bytes) -> None:
        """Bytes of a line over max_line: hashed (they come before the next position) and let go."""
        if digest is not None:
            digest.update(data)
        skipping[1] += len(data)

    def dropped_line(tail: bytes, newline: bool) -> Batch:
        raw, size = skipping[0], skipping[1] + len(tail)
        return parse_one(b"", size + newline, rest=tail + b"\n" * newline,
                         rejected={0: (raw, too_long(size, max_line))})

    def parse(block: bytes, newline: bool = True) -> Iterator[Batch]:
        """The batches of a block of whole lines (followed by a newline in the source or not)."""
        if max_lines is not None and block.count(b"\n") >= max_lines:
            cuts = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))[max_lines - 1::max_lines]
            lo = 0
            for e in cuts.tolist():
                yield parse_one(block[lo:e], e - lo + 1)
                lo = e + 1
            block = block[lo:]  # the rest: one line at least (maybe an empty one)
        yield parse_one(block, len(block) + newline)

    def flush(batch: Batch) -> Iterator[Batch]:
        if hold and readings == 0 and only_blank:  # the source may yet turn out to be empty
            held.append(batch)
            return
        yield from held
        held.clear()
        yield batch

    for chunk in chunks:
        if first and chunk:
            _refuse_binary(chunk, name)
            first = False
        if skipping is not None:
            end = chunk.find(b"\n")
            if end < 0:
                drop(chunk)
                continue
            yield from flush(dropped_line(chunk[:end], True))
            skipping, chunk = None, chunk[end + 1:]
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            pending.append(memoryview(chunk)[:cut])
            block = b"".join(pending)
            pending = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
            for batch in parse(block):
                yield from flush(batch)
        elif chunk:
            pending.append(chunk)
        if sum(map(len, pending)) > max_line:  # a line too long to hold: drop it as it arrives
            head = b"".join(pending)
            skipping, pending = [head[:_RAW_MAX].decode("utf-8", "replace"), 0], []
            drop(head)
    if skipping is not None:
        yield from flush(dropped_line(b"", False))
    elif pending:
        for batch in parse(b"".join(pending), newline=False):
            yield from flush(batch)
    if readings == 0 and only_blank:
        if parser.header_ is not None:
            raise SourceError(f"{name} has a header but no readings")
        raise SourceError(f"{name} is empty")
    yield from held


def _refuse_binary(head: bytes, name: str) -> None:
    """SourceError when the first bytes are not text: NUL bytes (binary, /dev/zero) or UTF-16."""
    head = head[:4096]
    if b"\x00" not in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return
    even, odd = head[0:512:2], head[1:512:2]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (b"\x00" in even) != (b"\x00" in odd):
        raise SourceError(f"{name} is UTF-16 text; expected UTF-8 CSV lines "
                          f"(convert it first: iconv -f UTF-16 -t UTF-8 {name} > hr.csv)")
    raise SourceError(f"{name} is not text (NUL bytes in its first bytes); expected UTF-8 CSV lines")


class LineSource:
    """Base of the sources that read CSV lines from bytes; subclasses say where the bytes come from.

    Parameters
    ----------
    column, time_column, label_column, key_column
        Passed to LineParser: which column holds the reading, the time, a 0/1 label, a key.
    valid_range
        Passed to LineParser: readings outside ``(low, high)`` are rejected; None accepts all.
    on_note
        Called once with a one-line note saying which columns were chosen.
    max_line
        A line of more bytes is a counted reject, dropped as it arrives (default 1 MB).
    """

    live = False  # True: batches are handed over as lines arrive

    def __init__(self, *, column: str | None = None, time_column: str | None = None,
                 label_column: str | None = None, key_column: str | None = None,
                 valid_range: tuple[float, float] | None = None,
                 on_note: Callable[[str], None] | None = None, max_line: int = MAX_LINE) -> None:
        self.column = column
        self.time_column = time_column
        self.label_column = label_column
        self.key_column = key_column
        self.valid_range = valid_range
        self.on_note = on_note
        self.max_line = max_line

    def _chunks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def _name(self) -> str:
        raise NotImplementedError

    def _repr_args(self) -> list[str]:
        return [f"{k}={getattr(self, k)!r}"
                for k in ("column", "time_column", "label_column", "key_column", "valid_range")
                if getattr(self, k) is not None]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_args())})"

    def _parser(self) -> LineParser:
        return LineParser(column=self.column, time_column=self.time_column,
                          label_column=self.label_column, key_column=self.key_column,
                          valid_range=self.valid_range, on_note=self.on_note)

    def __iter__(self) -> Iterator[Batch]:
        return read_batches(self._chunks(), self._parser(), name=self._name(), hold=not self.live,
                            max_line=self.max_line)
