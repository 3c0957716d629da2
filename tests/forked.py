"""The `monitor` CLI in a forked child: a real process (its own PID, pipes, signals, exit status)
without a second interpreter start-up (importing torch again costs 1-2 s of CPU a test).

The start-up itself (`python -m monitor`, what --help imports, a closed pipe under a shell) is
tested with real interpreters in test_cli_process.py.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time

__all__ = ["ForkedCli"]


def _text(fd: int, mode: str):
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="replace" if mode == "r" else "strict",
                            line_buffering=mode == "w" and os.isatty(fd))  # as Python's own on a terminal


def _output(how) -> tuple[int | None, int | None]:
    """(the parent's reading end or None, the child's descriptor) for an output given as True (a pipe),
    False (/dev/null) or a descriptor (a terminal, say: the caller's to close)."""
    if how is True:
        return os.pipe()
    if how is False:
        return None, os.open(os.devnull, os.O_WRONLY)
    return None, how


class ForkedCli:
    """``monitor ARGS`` in a forked child, with subprocess.Popen's handles and verbs: ``stdin``
    (a pipe, bytes), ``stdout``/``stderr`` (pipes, bytes, when asked: see _output), ``pid``,
    ``send_signal``, ``poll``, ``wait``, ``kill``, ``returncode`` (-N when killed by signal N);
    ``env``: variables set in the child (None: unset)."""

    def __init__(self, args: list[str], *, stdout: bool | int = True, stderr: bool | int = True,
                 env: dict[str, str | None] | None = None) -> None:
        from monitor.cli import main

        rin, win = os.pipe()
        rout, wout = _output(stdout)
        rerr, werr = _output(stderr)
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 70
            try:
                for fd, target in ((rin, 0), (wout, 1), (werr, 2)):
                    os.dup2(fd, target)
                for fd in (win, rout, rerr):
                    if fd is not None:
                        os.close(fd)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                for name, value in (env or {}).items():  # None: unset
                    os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
                # pytest replaced sys.stdin/stdout/stderr: the child's are its descriptors 0-2 again
                sys.stdin, sys.stdout, sys.stderr = _text(0, "r"), _text(1, "w"), _text(2, "w")
                try:
                    main(args, prog_name="monitor")
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass
            finally:
                os._exit(code)
        os.close(rin)
        for fd, given in ((wout, stdout), (werr, stderr)):
            if isinstance(given, bool):  # ours (a pipe's end, /dev/null); a descriptor given stays the caller's
                os.close(fd)
        self.pid, self.returncode = pid, None
        self.stdin = os.fdopen(win, "wb")
        self.stdout = os.fdopen(rout, "rb") if rout is not None else None
        self.stderr = os.fdopen(rerr, "rb") if rerr is not None else None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"monitor (PID {self.pid}) still running after {timeout} s")
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self._reap(0)
