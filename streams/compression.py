"""Open a file for reading bytes, decompressing it when it is gzip (told by its magic bytes, not its name).

>>> import gzip, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "hr.csv.gz")
>>> _ = path.write_bytes(gzip.compress(b"hr\\n80\\n"))
>>> is_gzip(path), open_bytes(path).read()
(True, b'hr\\n80\\n')
"""

from __future__ import annotations

import gzip
import os
from typing import BinaryIO

from streams.batch import SourceError

__all__ = ["GZIP_MAGIC", "is_gzip", "open_bytes", "iter_blocks"]

GZIP_MAGIC = b"\x1f\x8b"


def _open(path: str | os.PathLike) -> BinaryIO:
    name = os.fspath(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise SourceError(f"no such file: {name}") from None
    except IsADirectoryError:
        raise SourceError(f"{name} is a directory, expected a file") from None
    except OSError as e:
        raise SourceError(f"cannot read {name}: {e.strerror}") from None


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes 1f 8b."""
    with _open(path) as f:
        return f.read(2) == GZIP_MAGIC


def open_bytes(path: str | os.PathLike) -> BinaryIO:
    """The file's bytes, gunzipped on the fly when it is gzip; SourceError if it cannot be opened."""
    f = _open(path)
    if f.read(2) == GZIP_MAGIC:
        f.close()
        return gzip.open(path, "rb")  # owns its file: closing it closes the file
    f.seek(0)
    return f


def iter_blocks(path: str | os.PathLike, block_bytes: int = 1 << 22, *, offset: int = 0):
    """The file's (decompressed) bytes from ``offset`` on, in blocks of ``block_bytes``.

    A damaged gzip is a SourceError, and so is an offset past the end of a plain file (a file
    replaced or truncated since a checkpoint was written).
    """
    with open_bytes(path) as f:
        if offset:
            if not isinstance(f, gzip.GzipFile):
                size = os.fstat(f.fileno()).st_size
                if size < offset:
                    raise SourceError(f"cannot resume {os.fspath(path)} at byte {offset}: the file has only "
                                      f"{size} bytes (replaced or truncated since the checkpoint?)")
            f.seek(offset)  # a gzip stream seeks by decompressing up to the offset
        while True:
            try:
                chunk = f.read(block_bytes)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise SourceError(f"{os.fspath(path)}: damaged gzip data ({e})") from None
            if not chunk:
                return
            yield chunk
