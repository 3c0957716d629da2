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

__all__ = ["LineSource", "read_batches", "refuse_binary"]


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
    reader = _LineReader(parser, name=name, hold=hold, max_lines=max_lines, start=start, digest=digest,
                         max_line=max_line)
    for chunk in chunks:
        yield from reader.feed(chunk)
    yield from reader.finish()


class _LineReader:
    """The state of read_batches between chunks: the start of a line not ended yet, the numbers of the
    next line and byte, the batches held back (``hold``), a line over ``max_line`` being dropped."""

    def __init__(self, parser: LineParser, *, name: str, hold: bool, max_lines: int | None, start: dict | None,
                 digest, max_line: int) -> None:
        self.parser, self.name, self.hold, self.max_lines = parser, name, hold, max_lines
        self.digest, self.max_line = digest, max_line
        self.pending: list = []  # the start of a line whose newline has not arrived
        self.line = 1 if start is None else int(start["line"])  # number of the next line
        self.offset = 0 if start is None else int(start["offset"])  # byte offset of the next line
        self.readings, self.held = (0 if start is None else 1), []
        self.only_blank = start is None  # no line so far other than blank ones and the header
        self.skipping: list | None = None  # [raw text kept, bytes so far] of a line over max_line being dropped
        self.first = start is None

    def feed(self, chunk: bytes) -> Iterator[Batch]:
        """The batches of the lines this chunk ends."""
        if self.first and chunk:
            refuse_binary(chunk, self.name)
            self.first = False
        if self.skipping is not None:
            end = chunk.find(b"\n")
            if end < 0:
                self._drop(chunk)
                return
            yield from self._flush(self._dropped_line(chunk[:end], True))
            self.skipping, chunk = None, chunk[end + 1:]
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            self.pending.append(memoryview(chunk)[:cut])
            block = b"".join(self.pending)
            self.pending = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
            for batch in self._parse(block):
                yield from self._flush(batch)
        elif chunk:
            self.pending.append(chunk)
        if sum(map(len, self.pending)) > self.max_line:  # a line too long to hold: drop it as it arrives
            head = b"".join(self.pending)
            self.skipping, self.pending = [head[:_RAW_MAX].decode("utf-8", "replace"), 0], []
            self._drop(head)

    def finish(self) -> Iterator[Batch]:
        """The last line (without a newline), then the batches held back, or the empty-source error."""
        if self.skipping is not None:
            yield from self._flush(self._dropped_line(b"", False))
        elif self.pending:
            for batch in self._parse(b"".join(self.pending), newline=False):
                yield from self._flush(batch)
        if self.readings == 0 and self.only_blank:
            if self.parser.header_ is not None:
                raise SourceError(f"{self.name} has a header but no readings")
            raise SourceError(f"{self.name} is empty")
        yield from self.held

    def _parse_one(self, block: bytes, size: int, *, rest: bytes | None = None, rejected=None) -> Batch:
        """``rest``: for a dropped line, its bytes not yet hashed (the block is a placeholder)."""
        batch = self.parser.parse_bytes(block, self.line, max_line=self.max_line, rejected=rejected)
        self.line += len(batch) + len(batch.rejected) + batch.header_lines  # every line is accounted for
        self.offset += size
        self.readings += len(batch)
        self.only_blank = self.only_blank and all(r.reason == "empty line" for r in batch.rejected)
        position = {"offset": self.offset, "line": self.line, "parser": self.parser.state_dict()}
        if self.digest is not None:
            if rest is not None:
                self.digest.update(rest)
            else:
                self.digest.update(block)
                if size > len(block):
                    self.digest.update(b"\n")
            position["sha256"] = self.digest.hexdigest()
        return replace(batch, position=position)

    def _drop(self, data: bytes) -> None:
        """Bytes of a line over max_line: hashed (they come before the next position) and let go."""
        if self.digest is not None:
            self.digest.update(data)
        self.skipping[1] += len(data)

    def _dropped_line(self, tail: bytes, newline: bool) -> Batch:
        raw, size = self.skipping[0], self.skipping[1] + len(tail)
        return self._parse_one(b"", size + newline, rest=tail + b"\n" * newline,
                               rejected={0: (raw, too_long(size, self.max_line))})

    def _parse(self, block: bytes, newline: bool = True) -> Iterator[Batch]:
        """The batches of a block of whole lines (followed by a newline in the source or not)."""
        if self.max_lines is not None and block.count(b"\n") >= self.max_lines:
            cuts = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))[self.max_lines - 1::self.max_lines]
            lo = 0
            for e in cuts.tolist():
                yield self._parse_one(block[lo:e], e - lo + 1)
                lo = e + 1
            block = block[lo:]  # the rest: one line at least (maybe an empty one)
        yield self._parse_one(block, len(block) + newline)

    def _flush(self, batch: Batch) -> Iterator[Batch]:
        if self.hold and self.readings == 0 and self.only_blank:  # the source may yet turn out to be empty
            self.held.append(batch)
            return
        yield from self.held
        self.held.clear()
        yield batch


def refuse_binary(head: bytes, name: str) -> None:
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
