"""Replay a CSV file of heart-rate readings, in large batches.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "hr.csv")
>>> _ = path.write_text("t,hr\\n0.0,80\\n0.5,81\\n")
>>> source = CsvReplay(path, on_note=print)
>>> source  # doctest: +ELLIPSIS
CsvReplay('...hr.csv')
>>> [b.x.ravel().tolist() for b in source]
reading column 'hr', time column 't'
[[80.0, 81.0]]
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterator

from streams.batch import Batch, SourceError
from streams.compression import iter_blocks
from streams.linesource import LineSource, read_batches, refuse_binary

__all__ = ["CsvReplay"]


class CsvReplay(LineSource):
    """Readings from a CSV file, read in binary blocks of about ``block_bytes`` cut at a newline.

    Parameters
    ----------
    path
        The file. Comma-separated, UTF-8, with or without a header line; may be gzip-compressed.
    **line_options
        The options of `LineSource`, stored there once: ``column``, ``time_column``,
        ``label_column``, ``key_column`` (which column holds the reading, the time, a 0/1 label, a
        key: see LineParser), ``valid_range`` (readings outside ``(low, high)`` are rejected; None
        accepts all), ``on_note`` (called once with a one-line note saying which columns were
        chosen), ``max_line`` (a line of more bytes is a counted reject, never held whole; 1 MB).
    block_bytes
        Bytes read at a time; each block becomes one Batch (or several, see ``max_lines``).
    max_lines
        No Batch holds more lines than this (None: no limit), so a caller that checkpoints
        between batches can do so every ``max_lines`` lines.
    resume
        A ``Batch.position`` handed out by an earlier replay of the same file: reading starts
        at its byte offset, with its line numbers and column choice, as if never stopped; the
        bytes before the offset must hash to its ``"sha256"`` (see check_resume). With
        ``max_lines`` or ``resume``, each position carries that digest of the bytes before it.

    A missing or empty file raises SourceError when iteration starts, and so does a file shorter
    than the offset to resume from.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp(), "hr.csv")
    >>> _ = path.write_text("hr\\n80\\n81\\n82\\n")
    >>> first = next(iter(CsvReplay(path, max_lines=2)))
    >>> first.x.ravel().tolist(), first.position["offset"], first.position["line"]
    ([80.0], 6, 3)
    >>> [b.x.ravel().tolist() for b in CsvReplay(path, resume=first.position)]
    [[81.0, 82.0]]

    >>> next(iter(CsvReplay("no/such.csv")))
    Traceback (most recent call last):
    ...
    streams.batch.SourceError: no such file: no/such.csv
    """

    live = False

    def __init__(self, path: str | os.PathLike, *, block_bytes: int = 1 << 22, max_lines: int | None = None,
                 resume: dict | None = None, **line_options: Any) -> None:
        super().__init__(**line_options)
        self.path = path
        self.block_bytes = block_bytes
        self.max_lines = max_lines
        self.resume = resume
        self._prefix = None  # the digest of the bytes before the resume offset, once checked

    def _repr_args(self) -> list[str]:
        extra = [] if self.block_bytes == 1 << 22 else [f"block_bytes={self.block_bytes!r}"]
        extra += [f"max_lines={self.max_lines!r}"] if self.max_lines is not None else []
        extra += [f"resume_at={self.resume['offset']}"] if self.resume is not None else []
        return [repr(os.fspath(self.path))] + super()._repr_args() + extra

    def _name(self) -> str:
        return os.fspath(self.path)

    def check_resume(self):
        """Hash the bytes before the resume offset; SourceError unless they are the ones checkpointed.

        Returns the hashlib object (the position's ``"sha256"`` digest of those bytes), which
        iteration then goes on updating. A resume position without a digest is not checked.
        Called by iteration; a caller may call it first, to refuse a replaced file before any work.
        """
        if self._prefix is not None:
            return self._prefix.copy()
        digest = hashlib.sha256()
        want = None if self.resume is None else self.resume.get("sha256")
        offset = 0 if self.resume is None else int(self.resume["offset"])
        if want is None or offset == 0:
            return digest
        left = offset
        for chunk in iter_blocks(self.path, self.block_bytes):
            digest.update(chunk[:left])
            left -= min(left, len(chunk))
            if not left:
                break
        if left or digest.hexdigest() != want:
            why = (f"it has only {offset - left} of the {offset} bytes" if left
                   else f"its first {offset} bytes differ from those")
            raise SourceError(f"cannot resume {self._name()}: {why} the checkpoint was saved on (replaced or "
                              "rewritten since?); give another --state to start afresh")
        self._prefix = digest
        return digest.copy()

    def _chunks(self) -> Iterator[bytes]:
        if not isinstance(self.block_bytes, int) or self.block_bytes < 1:
            raise ValueError(f"block_bytes must be a positive integer, got {self.block_bytes!r}")
        offset = int(self.resume["offset"]) if self.resume is not None else 0
        first = offset == 0
        for chunk in iter_blocks(self.path, self.block_bytes, offset=offset):  # gzip is decompressed on the fly
            if first:
                refuse_binary(chunk, self._name())  # a binary file is named as one, not as old line endings
            if first and b"\n" not in chunk and b"\r" in chunk.rstrip(b"\r"):
                raise SourceError(f"{self._name()} has old Mac line endings (a lone CR ends each line); convert "
                                  f"them first, e.g. tr '\\r' '\\n' < {self._name()} > fixed.csv")
            first = False
            yield chunk

    def __iter__(self) -> Iterator[Batch]:
        if not isinstance(self.block_bytes, int) or self.block_bytes < 1:
            raise ValueError(f"block_bytes must be a positive integer, got {self.block_bytes!r}")
        parser = self._parser()
        if self.resume is not None:
            parser.load_state_dict(self.resume["parser"])
        return read_batches(self._chunks(), parser, name=self._name(), hold=self.resume is None,
                            max_lines=self.max_lines, start=self.resume, max_line=self.max_line,
                            digest=None if self.resume is None and self.max_lines is None else self.check_resume())
