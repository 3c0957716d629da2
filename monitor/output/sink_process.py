"""Records formatted and written by a second process: the replay of a file on the machine's other core.

Turning numbers into text is a fifth of a file replay's CPU (issue 15). `SinkProcess` forks a child
that owns a sink of `monitor.output.sinks` and the records file; the replay sends it each batch's
arrays through a pipe (a pickle whose arrays travel as raw bytes, out of band) and goes on parsing,
scoring and learning while the child formats and writes. The child runs the very sink the replay
would have run, on the same records in the same order: the same bytes.

`flush` waits until the child has written and flushed everything sent so far, and reports a write
that failed there (an OSError: no space left, an I/O error) as the in-process sink would; `close`
ends the child. The child ignores Ctrl-C and SIGTERM: the replay decides when to stop, and the
child writes what it was sent, then exits. Only for a records file (`wanted`): a pipe or a
terminal keeps its in-process sink (a closed reader, flushing per record).

>>> import os, tempfile, numpy as np
>>> from monitor.core.monitor import Scored
>>> s = Scored(time=np.array([0.0, 0.5]), x=np.array([[80.0], [95.5]]), label=np.array([0.0, 1.0]),
...            p=np.array([0.01, 0.987654321]), flag=np.array([False, True]), line=np.array([2, 3]))
>>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
>>> with open(path, "w") as fh:
...     sink = SinkProcess("csv", fh)
...     sink.write(s)
...     sink.close()
>>> print(open(path).read(), end="")
time,value,label,p_abnormal,flag
0.0,80.0,0,0.010000,0
0.5,95.5,1,0.987654,1
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import stat
from typing import TextIO

from monitor.core.pipe_io import HEAD, frame, read_frame, write_all

__all__ = ["SinkProcess", "wanted"]

_PIPE_SIZE = 1 << 20  # bytes in the pipe to the child (Linux's default cap for a user); 64 KB otherwise
_FLUSH = HEAD.pack(0, 0)  # a message is a pipe_io frame; a header of (0, 0) asks for a flush


def wanted(dest: TextIO, *, live: bool) -> bool:
    """Whether records for `dest` are better written by a `SinkProcess`: a regular file, replayed
    from a file (not live), on a system that can fork."""
    if live or not hasattr(os, "fork"):
        return False
    try:
        return stat.S_ISREG(os.fstat(dest.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no file descriptor (a StringIO)
        return False


class SinkProcess:
    """A sink (``write``, ``flush``) whose records a forked child formats and writes; see the module docstring.

    Parameters
    ----------
    fmt
        The records' format (monitor.output.sinks.FORMATS).
    dest
        The open records file; from now on only the child writes to it (its file descriptor is
        shared, so the file's size after `flush` is what was written).
    """

    def __init__(self, fmt: str, dest: TextIO) -> None:
        from monitor.output.sinks import make_sink

        make_sink(fmt, dest)  # an unknown format fails here, in the replay, not in the child
        dest.flush()
        data_r, data_w = os.pipe()
        ack_r, ack_w = os.pipe()
        try:
            import fcntl
            fcntl.fcntl(data_w, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
        except OSError:  # (a smaller cap: the default size works, with more switches)
            pass
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(data_w)
            os.close(ack_r)
            _child(fmt, dest.fileno(), data_r, ack_w)
        os.close(data_r)
        os.close(ack_w)
        self.fmt = fmt
        self.pid = pid
        self._out = os.fdopen(data_w, "wb", buffering=0)
        self._ack = os.fdopen(ack_r, "rb", buffering=0)
        self._closed = False
        self._broken = False  # the child reported a failure (raised once, in the replay)

    def __repr__(self) -> str:
        return f"SinkProcess({self.fmt!r}, pid={self.pid})"

    def write(self, s) -> None:
        """Send the records of a Scored batch (its alert records are not records: not sent)."""
        if self._broken:
            raise OSError(errno.EPIPE, "the records writer process stopped after a failure")
        if not len(s):
            return
        self._send(frame((s.time, s.x, s.label, s.p, s.flag, s.line, s.key)))

    def flush(self) -> None:
        """Wait until the child has written (and flushed) every record sent so far."""
        if self._closed or self._broken:
            return
        self._send([_FLUSH])
        reply = self._ack.read(1)
        if reply != b"k":
            self._failed(reply)

    def close(self) -> None:
        """Flush, then end the child (idempotent); an OSError if its writing failed."""
        if self._closed:
            return
        try:
            self.flush()  # (after a reported failure: nothing more to say)
        finally:
            self._closed = True
            self._out.close()
            os.waitpid(self.pid, 0)
            self._ack.close()

    def _send(self, chunks: list) -> None:
        try:
            write_all(self._out, chunks)
        except BrokenPipeError:  # the child stopped: it says why on the other pipe
            self._failed(self._ack.read(1))

    def _failed(self, reply: bytes) -> None:
        """Raise the child's write error (reply b"e": it follows, pickled), or say it ended."""
        self._broken = True
        if reply == b"e":
            code, text = pickle.loads(self._ack.read())
            raise OSError(code, text)
        raise OSError(errno.EPIPE, "the records writer process ended unexpectedly")


def _child(fmt: str, fd: int, data: int, ack: int) -> None:
    """Read batches from `data`, write them to `fd` with the format's sink; acknowledge flushes on
    `ack`. Exits with os._exit (the parent's exit handlers and buffers are not the child's)."""
    import gc

    status = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gc.disable()  # (no cycles made here; a collection would touch, and copy, the parent's pages)
        status = _serve(fmt, fd, data, ack)
    except BaseException:  # noqa: BLE001 (a child must never return into the parent's code)
        status = 2
    finally:
        os._exit(status)


def _serve(fmt: str, fd: int, data: int, ack: int) -> int:
    import numpy as np

    from monitor.core.monitor import Scored
    from monitor.output.sinks import make_sink

    stream = open(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20, closefd=False)
    sink = make_sink(fmt, stream)
    inp = os.fdopen(data, "rb", buffering=1 << 16)
    try:
        while True:
            head = inp.read(HEAD.size)
            if len(head) < HEAD.size:  # the replay closed the pipe: done
                stream.flush()
                return 0
            size, nbuf = HEAD.unpack(head)
            if size == 0:
                stream.flush()
                os.write(ack, b"k")
                continue
            t, x, label, p, flag, line, key = read_frame(inp, size, nbuf)
            sink.write(Scored(time=t, x=x, label=label, p=p, flag=np.asarray(flag), line=line, key=key))
    except OSError as e:
        os.write(ack, b"e" + pickle.dumps((e.errno, e.strerror)))
        return 1
