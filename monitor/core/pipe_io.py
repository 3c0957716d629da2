"""Whole messages through a pipe: the reader and writer processes of a file replay (issue 15).

A message is a pickle (protocol 5) whose numpy arrays travel out of band, as raw bytes after it, so
neither side copies an array into the pickle. `frame` gives the chunks to write: a header `HEAD`
(the pickle's length, the number of buffers), the buffers' sizes, the pickle, the buffers;
`write_all` writes them; `read_frame` reads one back, after its header.

>>> import io, numpy as np
>>> stream = io.BytesIO()
>>> write_all(stream, frame(np.arange(3.0)))
>>> _ = stream.seek(0)
>>> read_frame(stream, *HEAD.unpack(read_exactly(stream, HEAD.size))).tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import pickle
import struct

__all__ = ["HEAD", "frame", "read_frame", "write_all", "read_exactly"]

HEAD = struct.Struct("<QQ")  # a frame's header: the pickle's length, the number of out-of-band buffers


def frame(obj) -> list:
    """The chunks of one message: HEAD, the buffers' sizes, the pickle, the out-of-band buffers (raw,
    C- or Fortran-contiguous views of the arrays)."""
    buffers: list = []
    raw = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    return [HEAD.pack(len(raw), len(views)), struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views)), raw, *views]


def read_frame(inp, size: int, nbuf: int):
    """The object of a frame whose HEAD (pickle length `size`, `nbuf` buffers) was just read."""
    sizes = struct.unpack(f"<{nbuf}Q", read_exactly(inp, 8 * nbuf))
    raw = read_exactly(inp, size)
    return pickle.loads(raw, buffers=[read_exactly(inp, n) for n in sizes])


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
