"""A file parsed by a second process, ahead of the replay: parsing overlaps the start-up and the scoring.

Parsing is a sixth of a file replay's CPU, and nothing can be scored before ``import torch`` has
taken its 1.5-2.5 s (issue 15). `SourceProcess` forks a child that iterates the source (the very
object `monitor.app.sources.open_source` made) and sends each Batch, pickled with its arrays out of
band, through a pipe; a thread in the child keeps up to `AHEAD` batches parsed while the replay is
busy. The replay gets the same batches in the same order, then the source's error, if any, where
the source raised it; notes the source makes (the columns it chose) are passed on in their place
among the batches.

The child ignores Ctrl-C and SIGTERM: the replay decides; `close` (or the end of the iteration)
stops the child. Only for a file replayed from its start: a live feed, a checkpointed
run (it resumes at a batch's position) and a progress bar (it reads the source as it goes) keep
their source in-process (see `monitor.app.replay_run`).

>>> import os, tempfile
>>> from streams.formats import open_file
>>> path = os.path.join(tempfile.mkdtemp(), "hr.csv")
>>> _ = open(path, "w").write("t,hr\\n0,80\\n1,95\\n2,x\\n")
>>> notes = NoteRelay(print)
>>> src = SourceProcess(open_file(path, on_note=notes), notes=notes)
>>> [(len(b), len(b.rejected)) for b in src]
reading column 'hr', time column 't'
[(2, 1)]
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import threading
from typing import Callable, Iterable, Iterator

from monitor.core.pipe_io import HEAD, frame, read_exactly, read_frame, write_all

__all__ = ["SourceProcess", "NoteRelay", "AHEAD"]

AHEAD = 8  # batches parsed ahead in the child (~8 MB each for a 4 MB block of a CSV "t,hr")
_KIND = struct.Struct("<B")  # a message: its kind, then a pipe_io frame
_BATCH, _NOTE, _ERROR, _END = 1, 2, 3, 4


class NoteRelay:
    """The ``on_note`` a source is opened with: notes go to `on_note`, and once the source has moved
    to a `SourceProcess` child, through its pipe to the replay (which hands them to `on_note`)."""

    def __init__(self, on_note: Callable[[str], None] | None) -> None:
        self.on_note = on_note
        self.send: Callable[[str], None] | None = None  # set in the child

    def __call__(self, note: str) -> None:
        if self.send is not None:
            self.send(note)
        elif self.on_note is not None:
            self.on_note(note)


class SourceProcess:
    """Iterate a source in a forked child; see the module docstring.

    Parameters
    ----------
    source
        The source (an iterable of Batch), opened and checked in the replay; only the child reads it.
    notes
        The NoteRelay the source was opened with (its notes come back through the pipe), or None.
    """

    def __init__(self, source: Iterable, *, notes: NoteRelay | None = None) -> None:
        self.notes = notes
        self.record_unit = getattr(source, "record_unit", "line")  # what a Reject's line counts
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(source, notes, w)
        os.close(w)
        self.pid = pid
        self._in = os.fdopen(r, "rb", buffering=1 << 16)
        self._done = False

    def __repr__(self) -> str:
        return f"SourceProcess(pid={self.pid})"

    def __iter__(self) -> Iterator:
        try:
            while True:
                kind, obj = _receive(self._in)
                if kind == _BATCH:
                    yield obj
                elif kind == _NOTE:
                    if self.notes is not None:
                        self.notes.on_note(obj)
                elif kind == _ERROR:
                    raise obj
                else:
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child (idempotent): whatever it parsed and did not send is dropped."""
        if self._done:
            return
        self._done = True
        self._in.close()  # a child blocked writing gets EPIPE and ends
        try:
            os.kill(self.pid, signal.SIGKILL)  # (one parsing a block need not finish it)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def _receive(inp) -> tuple[int, object]:
    try:
        kind = inp.read(_KIND.size)
        if len(kind) < _KIND.size:
            raise EOFError
        return _KIND.unpack(kind)[0], read_frame(inp, *HEAD.unpack(read_exactly(inp, HEAD.size)))
    except EOFError:  # the child died without a word (killed)
        return _ERROR, RuntimeError("the process reading the input ended unexpectedly")


def _message(kind: int, obj) -> list:
    return [_KIND.pack(kind), *frame(obj)]


def _child(source, notes, fd: int) -> None:
    """Parse and send; never returns (os._exit: the parent's exit handlers are not the child's)."""
    import gc

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gc.disable()  # (a collection would touch, and copy, the parent's pages)
        _produce(source, notes, fd)
    finally:
        os._exit(0)


def _produce(source, notes, fd: int) -> None:
    out = os.fdopen(fd, "wb", buffering=0)
    ahead: queue.Queue = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()

    def send() -> None:  # writing releases the GIL: the parsing goes on meanwhile
        try:
            while True:
                message = ahead.get()
                if message is None:
                    return
                write_all(out, message)
        except OSError:  # the replay stopped reading
            stop.set()
            while ahead.get() is not None:  # (let the parser go on to its end, then stop)
                pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        if notes is not None:
            notes.send = lambda note: ahead.put(_message(_NOTE, note))
        for batch in source:
            if stop.is_set():
                break
            ahead.put(_message(_BATCH, batch))
        ahead.put(_message(_END, None))
    except BaseException as e:  # noqa: BLE001 (handed to the replay, which raises it in its place)
        ahead.put(_message(_ERROR, _portable(e)))
    ahead.put(None)
    sender.join()


def _portable(e: BaseException) -> BaseException:
    """The exception itself when it survives a pickle, else a RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(e).__name__}: {e}")
