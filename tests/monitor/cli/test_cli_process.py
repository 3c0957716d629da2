"""The few behaviours that need a real `monitor` process: the weight of --help, `python -m monitor`,
a live pipe, a closed pipe, a terminal (colour and the progress bar). Signals and SIGKILL: test_resume.py.
Everything else about the commands runs in this process (test_cli*.py)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

from tests.conftest import ROOT, run_monitor
from tests.forked import ForkedCli


def test_help_is_light_and_python_dash_m_works():
    res = run_monitor("--help")
    assert res.returncode == 0 and b"replay" in res.stdout and res.stderr == b""
    code = "import sys, monitor.cli.commands; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.split() == ["False", "False"]


def test_each_live_record_arrives_before_the_next_line_is_written():
    proc = ForkedCli(["replay", "-"], stderr=False)  # a real process on real pipes (forked: no second torch import)
    try:
        for i, value in enumerate([80, 95, 88, 101, 70]):
            proc.stdin.write(f"{value}\n".encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60 if i == 0 else 10)
            assert ready, f"no record for reading {i} while its line was the last one written"
            rec = json.loads(proc.stdout.readline())
            assert rec["value"] == value
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_broken_pipe_is_quiet(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("hr\n" + "\n".join(["80", "95"] * 1_250) + "\n")  # 2,500 records: well over a pipe's 64 KiB
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(f"{sys.executable} -m monitor replay {big} | head -n 2", shell=True,
                         capture_output=True, env=env, timeout=120)
    assert len(res.stdout.splitlines()) == 2
    assert b"Traceback" not in res.stderr and b"Error" not in res.stderr


def _on_a_terminal(args, env_extra=None):
    """Run monitor (forked) with stdout and stderr on a pseudo-terminal; returns everything it printed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = ForkedCli(list(args), stdout=follower, stderr=follower, env={"NO_COLOR": None, **(env_extra or {})})
    proc.stdin.close()
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def _hr_file(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_text("hr\n" + "".join(f"{80 + (i * 7) % 25}\n" for i in range(400)))
    return path


def test_terminal_gets_colour_and_a_progress_bar(tmp_path):
    path = _hr_file(tmp_path)
    code, out = _on_a_terminal(["replay", str(path)])
    assert code == 0
    assert "\x1b[31mABNORMAL\x1b[0m" in out  # the table, in colour
    bars = re.findall(r"\d+%\|[^\r\n]*\| \d+/401 \[[^\]]*readings/s, accuracy 0\.\d{4}\]", out)
    assert bars, out[-2000:]  # tqdm's bar (the total is the file's 401 lines), with rate and accuracy


def test_no_color_and_quiet_on_a_terminal(tmp_path):
    path = _hr_file(tmp_path)
    code, out = _on_a_terminal(["replay", str(path), "--quiet"], {"NO_COLOR": "1"})
    assert code == 0 and "ABNORMAL" in out and "\x1b[31m" not in out and "%|" not in out
