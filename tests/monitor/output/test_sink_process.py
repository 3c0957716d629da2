"""Records written by a forked process: the bytes of the in-process sinks (and of the writers before
issue 15), a failed write reported to the replay as an OSError, and the replay using it for files."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import sinks_reference as ref
from monitor.output.sink_process import SinkProcess, wanted
from test_sinks import _bytes, _edge_scored, _scored

FORMATS = [("jsonl", ref.JsonlSink), ("csv", ref.CsvSink), ("table", ref.TableSink)]


def _through_process(fmt: str, batches, path: str, flush_between: bool = False) -> str:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        sink = SinkProcess(fmt, fh)
        for s in batches:
            sink.write(s)
            if flush_between:
                sink.flush()
        sink.close()
    with open(path, encoding="utf-8", newline="\n") as fh:
        return fh.read()


@pytest.mark.parametrize("fmt, old", FORMATS)
@pytest.mark.parametrize("key", [None, ["a", "bed 12", 'q"uote', "é\x00ü", "", 7]])
def test_the_bytes_of_the_in_process_writers(fmt, old, key, tmp_path):
    batches = [_edge_scored(key), _edge_scored(key, d=1).take(3, 40), _edge_scored(key).take(0, 0)]
    got = _through_process(fmt, batches, str(tmp_path / "out"))
    assert got == _bytes(old, batches)


@pytest.mark.parametrize("fmt, old", FORMATS[:2])
def test_a_shipped_stream_in_batches_with_flushes(fmt, old, tmp_path):
    batches = _scored("ward", patients=5, n=40)
    got = _through_process(fmt, batches, str(tmp_path / "out"), flush_between=True)
    assert got == _bytes(old, batches) and len(got.splitlines()) >= sum(map(len, batches))


def test_flush_waits_for_the_writing(tmp_path):
    path = tmp_path / "out.csv"
    batch = _edge_scored()
    with open(path, "w") as fh:
        sink = SinkProcess("csv", fh)
        sink.write(batch)
        sink.flush()
        assert os.path.getsize(path) == len(_bytes(ref.CsvSink, [batch]).encode())  # written before the reply
        sink.close()
        sink.close()  # (twice: nothing more)


def test_a_write_that_fails_in_the_child_is_raised_in_the_replay(tmp_path):
    path = tmp_path / "ro.csv"
    path.write_text("")
    with open(path) as fh:  # a regular file, but opened for reading: the child's write fails (EBADF)
        sink = SinkProcess("csv", fh)
        sink.write(_edge_scored())
        with pytest.raises(OSError) as err:
            sink.flush()
        assert err.value.errno == errno.EBADF and err.value.filename is None
        with pytest.raises(OSError):
            sink.write(_edge_scored())  # nothing more is taken
        sink.close()  # the failure was reported: closing says nothing more
    assert path.read_text() == ""


def test_only_regular_files_replayed_from_a_file(tmp_path):
    import io
    with open(tmp_path / "f", "w") as fh:
        assert wanted(fh, live=False) and not wanted(fh, live=True)
    with open(os.devnull, "w") as fh:
        assert not wanted(fh, live=False)
    assert not wanted(io.StringIO(), live=False)


def test_the_replay_writes_a_file_through_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from monitor.cli.commands import main
    from monitor.output import sink_process

    made = []
    real = sink_process.SinkProcess.__init__

    def spy(self, fmt, dest):
        made.append(fmt)
        real(self, fmt, dest)
    monkeypatch.setattr(sink_process.SinkProcess, "__init__", spy)
    out = tmp_path / "records.csv"
    r = CliRunner().invoke(main, ["replay", "--stream", "sample", "--format", "csv", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert made == ["csv"]
    monkeypatch.setattr(sink_process, "wanted", lambda dest, live: False)  # the same run, written in-process
    out2 = tmp_path / "records2.csv"
    r = CliRunner().invoke(main, ["replay", "--stream", "sample", "--format", "csv", "--out", str(out2), "-q"])
    assert r.exit_code == 0 and made == ["csv"]
    assert out.read_bytes() == out2.read_bytes() and len(out.read_bytes().splitlines()) == 1801
