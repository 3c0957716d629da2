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

import os
from typing import Callable, Iterator

from streams.compression import iter_blocks
from streams.linesource import LineSource

__all__ = ["CsvReplay"]


class CsvReplay(LineSource):
    """Readings from a CSV file, read in binary blocks of about ``block_bytes`` cut at a newline.

    Parameters
    ----------
    path
        The file. Comma-separated, UTF-8, with or without a header line; may be gzip-compressed.
    column, time_column, label_column, key_column
        Which column holds the reading, the time, a 0/1 label, a key (see LineParser).
    block_bytes
        Bytes read at a time; each block becomes one Batch.
    on_note
        Called once with a one-line note saying which columns were chosen.

    A missing or empty file raises SourceError when iteration starts.

    Examples
    --------
    >>> next(iter(CsvReplay("no/such.csv")))
    Traceback (most recent call last):
    ...
    streams.batch.SourceError: no such file: no/such.csv
    """

    live = False

    def __init__(self, path: str | os.PathLike, *, column: str | None = None,
                 time_column: str | None = None, label_column: str | None = None,
                 key_column: str | None = None, block_bytes: int = 1 << 22,
                 on_note: Callable[[str], None] | None = None) -> None:
        super().__init__(column=column, time_column=time_column, label_column=label_column,
                         key_column=key_column, on_note=on_note)
        self.path = path
        self.block_bytes = block_bytes

    def _repr_args(self) -> list[str]:
        extra = [] if self.block_bytes == 1 << 22 else [f"block_bytes={self.block_bytes!r}"]
        return [repr(os.fspath(self.path))] + super()._repr_args() + extra

    def _name(self) -> str:
        return os.fspath(self.path)

    def _chunks(self) -> Iterator[bytes]:
        if not isinstance(self.block_bytes, int) or self.block_bytes < 1:
            raise ValueError(f"block_bytes must be a positive integer, got {self.block_bytes!r}")
        yield from iter_blocks(self.path, self.block_bytes)  # gzip is decompressed on the fly
