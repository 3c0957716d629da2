"""The CLI around replay: --version, completion, info, progress bar and colour on a terminal only."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import tomllib

from click.testing import CliRunner

from conftest import ROOT, run_monitor
from monitor import __version__
from monitor.cli import main


def test_version_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"monitor {project['version']}\n"


def test_help_has_examples():
    for args in ([], ["replay"], ["info"]):
        res = CliRunner().invoke(main, [*args, "--help"])
        assert res.exit_code == 0 and "Examples:" in res.stdout and "monitor " in res.stdout


def test_bash_completion_script():
    env = dict(os.environ, PYTHONPATH=str(ROOT), _MONITOR_COMPLETE="bash_source")
    out = subprocess.run([sys.executable, "-m", "monitor"], capture_output=True, env=env, timeout=60)
    assert out.returncode == 0 and b"_monitor_completion()" in out.stdout
    env.update(_MONITOR_COMPLETE="bash_complete", COMP_WORDS="monitor re", COMP_CWORD="1")
    out = subprocess.run([sys.executable, "-m", "monitor"], capture_output=True, env=env, timeout=60)
    assert out.stdout.decode().split() == ["plain,replay"]


def test_info_on_csv_and_json(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_text("time,pulse\n1711954800,80\n1711954805,95\nbad,90\n1711954810,85\n")
    res = CliRunner().invoke(main, ["info", str(path)])
    assert res.exit_code == 0
    assert "format          csv\n" in res.stdout
    assert "reading column 'pulse', time column 'time'" in res.stdout
    assert "readings        3  (1 rejected, 1 header line)" in res.stdout
    assert "2024-04-01 07:00:00 UTC .. 2024-04-01 07:00:10 UTC  (span 10 s)" in res.stdout
    assert "above 91 bpm    33.3%  (1 of 3)" in res.stdout
    res = CliRunner().invoke(main, ["info", str(path), "--json", "--threshold", "82"])
    d = json.loads(res.stdout)
    assert d["readings"] == 3 and d["mean"] == 260 / 3 and d["above_threshold"] == 2 / 3
    assert d["first_rejects"] == [[4, "not a time: 'bad'"]]
    res = CliRunner().invoke(main, ["info", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and res.stderr == f"Error: no such file: {tmp_path / 'nope.csv'}\n"


def _on_a_terminal(args, env_extra=None):
    """Run monitor with stdout and stderr on a pseudo-terminal; returns everything it printed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(PYTHONPATH=str(ROOT), **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
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


def test_no_color_quiet_and_pipes(tmp_path):
    path = _hr_file(tmp_path)
    code, out = _on_a_terminal(["replay", str(path), "--quiet"], {"NO_COLOR": "1"})
    assert code == 0 and "ABNORMAL" in out and "\x1b[31m" not in out and "%|" not in out
    piped = run_monitor("replay", str(path), "--format", "table")
    assert piped.returncode == 0 and b"\x1b[" not in piped.stdout and b"%|" not in piped.stderr


def test_progress_pieces_do_not_change_the_records(hr_csv):
    import io

    import numpy as np

    from monitor.pipeline import Monitor
    from monitor.progress import with_progress
    from streams import CsvReplay

    plain = Monitor(seed=0)
    want = [plain.process(b) for b in CsvReplay(hr_csv)]
    shown = Monitor(seed=0)
    bar = io.StringIO()
    pieces, got = [], []
    for piece in with_progress(CsvReplay(hr_csv), shown, total=1001, stream=bar, step=128):
        pieces.append(piece)
        got.append(shown.process(piece))
    assert len(pieces) == 8 and sum(len(p) for p in pieces) == 1000 and pieces[0].header_lines == 1
    assert np.array_equal(np.concatenate([s.p for s in got]), np.concatenate([s.p for s in want]))
    assert "0/1001" in bar.getvalue()
