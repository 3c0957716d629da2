"""One run per ``--state``: an exclusive lock held for the whole run.

Two runs resuming from one checkpoint (a cron job overlapping a manual rerun) would both cut the
outputs back and append to them: every reading after the checkpoint twice, out of order. So a run
with ``--state PATH`` first takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``PATH.lock`` and keeps it
until it exits; a second run finds it taken and stops at once with a message naming the first
run's PID (written into the lock file). The kernel drops the lock when the process dies, however
it dies (SIGKILL included), so a crashed run never leaves a stale lock behind; the lock file
itself stays (removing it would let a third run lock a new file while the second holds the old one).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "s.pt")
>>> with StateLock(path):
...     try:
...         StateLock(path).acquire()
...     except StateBusy as e:
...         print(str(e).split(";")[0].replace(str(path), "s.pt").split("(PID")[0])
--state s.pt is in use by another monitor run 
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

__all__ = ["StateLock", "StateBusy", "StateUnwritable"]


class StateBusy(RuntimeError):
    """Another live process holds the lock on this --state. One line."""


class StateUnwritable(RuntimeError):
    """The lock file (next to --state) cannot be created. One line."""


class StateLock:
    """The exclusive lock on ``PATH.lock`` for a ``--state PATH``; a context manager."""

    def __init__(self, state: str | os.PathLike) -> None:
        self.state = Path(state)
        self.path = self.state.with_name(self.state.name + ".lock")
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"StateLock({os.fspath(self.state)!r}, held={self._fd is not None})"

    def acquire(self) -> None:
        """Take the lock or raise StateBusy (naming the holder's PID) / StateUnwritable, at once."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            where = os.path.dirname(self.state) or "."
            why = f"no directory {where}" if not os.path.isdir(where) else f"{e.strerror} ({where})"
            raise StateUnwritable(f"cannot write {self.state} (--state): {why}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            for _ in range(20):  # the holder writes its PID right after locking
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                if holder:
                    break
                time.sleep(0.01)
            os.close(fd)
            raise StateBusy(f"--state {self.state} is in use by another monitor run (PID {holder or '?'}); "
                            "wait for it to finish, or give another --state") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def remove_stale_temps(self) -> list[Path]:
        """Remove the temporary checkpoint files left by killed runs (``.NAME.tmp-PID``, PID not alive).

        Only the lock holder calls this: no other run on this --state is alive, and a file whose
        PID is a live process is left alone whatever it is.
        """
        removed = []
        for tmp in self.state.parent.glob(f".{self.state.name}.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isascii() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        return removed

    def __enter__(self) -> "StateLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:  # not a PID at all
        return False
    except PermissionError:  # another user's process
        return True
    return True
