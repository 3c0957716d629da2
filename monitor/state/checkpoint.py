"""Checkpoints: the monitor's whole state in one file, written atomically, read without running code.

A checkpoint holds the monitor (network, Adam, normaliser, training buffer, replay ring, random
generator, metrics), where the source stands (byte offset and line number of the next unread
line, and the parser's column choice), how many bytes of the output and rejects files it covers,
the reject and header counts, and the options that shape the run. It is a ``torch.save`` file of
tensors and plain values only, read back with ``torch.load(weights_only=True)``: a file holding
any other Python object (one that would run code when unpickled) is refused.

It is written to a temporary file in the same directory, flushed and fsynced, then renamed over
the old one (and the directory fsynced), so a crash at any instant leaves either the old
checkpoint or the new one, never a torn file.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "state.pt")
>>> ck = Checkpoint(path, options={"hidden": 16, "threshold": 91.0})
>>> ck.load() is None  # nothing saved yet
True
>>> ck.save({"monitor": {"n_scored": 3}, "position": None})
>>> ck.load()["monitor"]
{'n_scored': 3}
>>> Checkpoint(path, options={"hidden": 32, "threshold": 91.0}).load()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
monitor.state.checkpoint.CheckpointError: checkpoint ...state.pt was saved with other options: hidden 16 (now 32); ...
"""

from __future__ import annotations

import os
import pickle
import signal
import warnings
from pathlib import Path

__all__ = ["Checkpoint", "CheckpointError", "FORMAT", "VERSION", "check_options", "write_atomic"]

FORMAT = "monitor-checkpoint"
VERSION = 2  # 2: a file position carries the sha256 of the input bytes before its offset
KILL_ENV = "MONITOR_TEST_KILL"  # test hook, "N:stage": SIGKILL itself at the N-th save (see _kill_point)


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, unsafe, or from another configuration. One line."""


def write_atomic(path: str | os.PathLike, obj: dict, *, before_rename=None) -> None:
    """``torch.save(obj)`` to ``path`` atomically: temporary file, fsync, rename, fsync the directory."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some file systems do not open directories; the rename is done anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_options(saved: dict, now: dict, *, where: str, keys=None, afresh: str = "give another --state") -> None:
    """Refuse (CheckpointError, one line) a checkpoint whose options differ from the run's, naming each.

    The one option diff of the monitor: file checkpoints and Redis ones (monitor.redis_io) say it
    alike; ``keys`` limits the comparison, ``afresh`` says how to start afresh instead.

    >>> check_options({"hidden": 8, "seed": 0}, {"hidden": 16, "seed": 0}, where="s.pt")
    Traceback (most recent call last):
    ...
    monitor.state.checkpoint.CheckpointError: checkpoint s.pt was saved with other options: hidden 8 (now 16); rerun with the saved options, or give another --state to start afresh
    """
    names = keys if keys is not None else sorted(set(saved) | set(now))
    diff = [f"{k} {saved.get(k, '(unset)')!r} (now {now.get(k, '(unset)')!r})"
            for k in names if saved.get(k) != now.get(k)]
    if diff:
        raise CheckpointError(f"checkpoint {where} was saved with other options: {', '.join(diff)}; "
                              f"rerun with the saved options, or {afresh} to start afresh")


class Checkpoint:
    """One checkpoint file: ``load`` what was saved (checked), ``save`` a new state atomically.

    Parameters
    ----------
    path
        The file (``--state``). Missing: there is nothing to resume from yet.
    options
        The options that shape the run, as plain values; a saved checkpoint whose options differ
        is refused with a message naming each difference.
    """

    def __init__(self, path: str | os.PathLike, *, options: dict) -> None:
        self.path = path
        self.options = options
        self._saves = 0

    def __repr__(self) -> str:
        return f"Checkpoint({os.fspath(self.path)!r}, saves={self._saves})"

    def read(self) -> dict | None:
        """The saved dict, checked for safety and format but not for options; None when missing."""
        import torch

        path = Path(self.path)  # (temporary files of killed runs: StateLock.remove_stale_temps)
        if not path.exists():
            return None
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic[:2] != b"PK" and magic[:1] != b"\x80":  # torch.save writes a zip (or, before 1.6, a pickle)
            raise CheckpointError(f"cannot read checkpoint {path}: not a monitor checkpoint "
                                  f"(not a file written by torch.save; it starts with {magic!r})")
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            why = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln),
                       str(e).splitlines()[0] if str(e) else "")
            raise CheckpointError(
                f"refused to load checkpoint {path}: it holds Python objects that could run code when "
                f"loaded ({why}); only checkpoints written by monitor are read") from None
        except Exception as e:  # not a torch file, truncated zip, ...
            raise CheckpointError(f"cannot read checkpoint {path}: not a monitor checkpoint "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"cannot read checkpoint {path}: not a monitor checkpoint (no {FORMAT!r} mark)")
        if state.get("version") != VERSION:
            raise CheckpointError(f"checkpoint {path} has format version {state.get('version')!r}; "
                                  f"this monitor reads version {VERSION}")
        return state

    def load(self, keys: tuple[str, ...] | None = None) -> dict | None:
        """The saved dict (None when there is none), refused unless its options match.

        ``keys`` limits the comparison to those options (a frozen run compares the model's only).
        """
        state = self.read()
        if state is None:
            return None
        check_options(state.get("options", {}), self.options, where=str(self.path), keys=keys,
                      afresh="give another --state")
        return state

    def save(self, payload: dict) -> None:
        """Write ``payload`` (plus the format mark and options) atomically."""
        self._saves += 1
        self._kill_point("before")
        state = {"format": FORMAT, "version": VERSION, "options": self.options, **payload}
        write_atomic(self.path, state, before_rename=lambda: self._kill_point("tmp"))
        self._kill_point("after")

    def _kill_point(self, stage: str) -> None:
        """Test hook: with MONITOR_TEST_KILL="N:stage", die by SIGKILL at that stage of the N-th save.

        Stages: "before" (records flushed past the last checkpoint, nothing saved), "tmp" (new
        file written and fsynced, not renamed), "after" (renamed). Used by the kill/resume tests
        to crash at chosen points deterministically; unset, it does nothing.
        """
        want = os.environ.get(KILL_ENV)
        if want and want == f"{self._saves}:{stage}":
            os.kill(os.getpid(), signal.SIGKILL)
