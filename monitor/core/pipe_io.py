"""Whole messages through a pipe: the reader and writer processes of a file replay (issue 15).

A message is a pickle (protocol 5) whose numpy arrays travel out of band, as raw bytes after it, so
neither side copies an array into the pickle: `parts` gives what to write, `write_all` writes it,
`read_exactly` reads a part back.

>>> import io, pickle, numpy as np
>>> raw, buffers = parts(np.arange(3.0))
>>> stream = io.BytesIO()
>>> write_all(stream, [raw, *buffers])
>>> stream.seek(0) == 0 and pickle.loads(read_exactly(stream, len(raw)), buffers=[read_exactly(stream, 24)]).tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import pickle

__all__ = ["parts", "write_all", "read_exactly"]


def parts(obj) -> tuple[bytes, list[memoryview]]:
    """The pickle of obj and its out-of-band buffers (raw, C- or Fortran-contiguous views)."""
    buffers: list = []
    raw = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return raw, [b.raw() for b in buffers]


def write_all(out, chunks) -> None:
    """Write every byte of each chunk to a raw or buffered binary stream (short writes resumed)."""
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            view = view[out.write(view):]


def read_exactly(inp, n: int) -> bytearray:
    """n bytes from a binary stream; EOFError if it ends first."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = inp.readinto(view[got:])
        if not k:
            raise EOFError
        got += k
    return buf
