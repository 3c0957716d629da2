"""A file parsed in a forked process: the same batches, notes and errors in the same places, and
the replay using it for a plain file."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.app.source_process import NoteRelay, SourceProcess
from streams import Batch, SourceError
from streams.formats import open_file


def _csv(tmp_path, n: int = 30_000, bad_every: int = 997) -> str:
    rng = np.random.default_rng(0)
    lines = ["t,hr"]
    for i, v in enumerate(np.round(rng.normal(92, 5, n), 2).tolist()):
        lines.append(f"{i * 0.5},{'x' if i % bad_every == 5 else v}")
    path = tmp_path / "hr.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _same(a: Batch, b: Batch) -> bool:
    return (all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in ("time", "x", "y", "line"))
            and list(a.rejected) == list(b.rejected) and a.header_lines == b.header_lines
            and a.position == b.position and (a.key is None) == (b.key is None))


def test_the_same_batches_and_notes_as_in_process(tmp_path):
    path = _csv(tmp_path)
    here: list[str] = []
    there: list[str] = []
    want = list(open_file(path, on_note=here.append, max_lines=4096))
    notes = NoteRelay(there.append)
    got = list(SourceProcess(open_file(path, on_note=notes, max_lines=4096), notes=notes))
    assert len(want) == len(got) > 5 and all(_same(a, b) for a, b in zip(want, got))
    assert there == here and here  # the column note, in the replay


class _Failing:
    record_unit = "record"

    def __iter__(self):
        yield Batch.of_values([80.0, 95.0])
        raise SourceError("line 3: the file changed while it was read")


class _Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


class _Odd:
    def __iter__(self):
        yield Batch.of_values([70.0])
        raise _Unpicklable(1, 2)


def test_an_error_comes_after_the_batches_before_it():
    src = SourceProcess(_Failing())
    assert src.record_unit == "record"
    it = iter(src)
    assert len(next(it)) == 2
    with pytest.raises(SourceError, match="changed while it was read"):
        next(it)
    it = iter(SourceProcess(_Odd()))
    assert len(next(it)) == 1
    with pytest.raises(Exception, match="1/2"):  # (one that does not survive a pickle: its message)
        next(it)


def test_stopping_early_ends_the_child(tmp_path):
    import os
    src = SourceProcess(open_file(_csv(tmp_path), max_lines=1000))
    first = next(iter(src))
    assert len(first) > 0
    src.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(src.pid, os.WNOHANG)  # reaped
    src.close()  # (twice: nothing more)


def test_the_replay_reads_a_file_through_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from monitor.app import source_process
    from monitor.cli.commands import main

    path = _csv(tmp_path, n=5000)
    made = []
    real = source_process.SourceProcess.__init__

    def spy(self, source, notes=None):
        made.append(type(source).__name__)
        real(self, source, notes=notes)
    monkeypatch.setattr(source_process.SourceProcess, "__init__", spy)
    args = ["replay", path, "--format", "csv", "--rejects", str(tmp_path / "rej.jsonl")]
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.stderr
    assert len(made) == 1 and "reading column" in r.stderr and "rejected" in r.stderr
    rejected = (tmp_path / "rej.jsonl").read_bytes()
    monkeypatch.setattr(source_process.SourceProcess, "__init__", lambda *a, **k: pytest.fail("not wanted"))
    r2 = CliRunner().invoke(main, args + ["--out", str(tmp_path / "b.csv"), "--state",
                                                          str(tmp_path / "state")])
    assert r2.exit_code == 0, r2.stderr  # (--state: the source stays in-process)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "rej.jsonl").read_bytes() == rejected and rejected.count(b"\n") == 6
