"""Redis Streams: the stored shard layout, packed entries, live outputs and a Redis that restarts.

These tests need a running redis-server (MONITOR_TEST_REDIS_PORT, as .ci/run sets it); the restart
tests start redis-servers of their own (redis-server on PATH), with persistence, on free ports.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from streams.redis_stream import parse_url
from tests.conftest import has_module, redis_client
from tests.forked import ForkedCli

PORT = os.environ.get("MONITOR_TEST_REDIS_PORT")


_client = redis_client


def _keys(url) -> list[str]:
    return sorted(k.decode() for k in _client(url).scan_iter(f"{parse_url(url).stream}*"))


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def _one_line_error(res, code: int) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


# ---------------------------------------------------------------- layout and missing streams

def test_serve_refuses_another_shard_count_than_published(redis_url):
    res = _cli("publish", "--stream", "ward", "--patients", "4", "--n", "5", redis_url, "--shards", "2", "-q")
    assert res.exit_code == 0, res.output
    assert _client(redis_url).hgetall(f"{parse_url(redis_url).stream}:layout")[b"shards"] == b"2"
    before = _keys(redis_url)
    msg = _one_line_error(_cli("serve", redis_url, "--engine", "local", "--shards", "1", "--until-idle", "-q"), 2)
    assert "was published with --shards 2, not 1" in msg
    msg = _one_line_error(_cli("replay", redis_url, "--until-idle", "-q"), 2)
    assert "published in 2 shards" in msg
    msg = _one_line_error(_cli("publish", "--stream", "ward", "--patients", "4", "--n", "5", redis_url, "-q"), 2)
    assert "was published with --shards 2" in msg
    assert _keys(redis_url) == before  # the refusals created nothing


def test_serve_follows_the_published_layout(redis_url, tmp_path):
    res = _cli("publish", "--stream", "ward", "--patients", "4", "--n", "5", redis_url, "--shards", "2", "-q")
    assert res.exit_code == 0, res.output
    res = _cli("serve", redis_url, "--engine", "local", "--until-idle", "--out", str(tmp_path / "o.jsonl"),
               "--summary-json", str(tmp_path / "s.json"), "-q")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["shards"] == 2 and s["readings"] == s["processed"] == s["written"] == 4 * 5 * 12
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 4 * 5 * 12


def test_a_stream_that_does_not_exist_is_an_error_and_creates_nothing(redis_url):
    for args in (("serve", redis_url, "--engine", "local", "--until-idle", "-q"),
                 ("serve", redis_url, "--engine", "local", "--shards", "3", "--until-idle", "-q"),
                 ("replay", redis_url, "--until-idle", "-q")):
        msg = _one_line_error(_cli(*args), 2)
        assert "does not exist" in msg and "--wait" in msg or "publish" in msg
    assert _keys(redis_url) == []


# ---------------------------------------------------------------- packed entries

def test_packed_and_single_entries_give_the_same_records(redis_url):
    """monitor publish's packed blocks, single-reading entries of another producer, and both mixed in
    one stream: the same records and alerts as the file replay."""
    from monitor.distributed.config import EngineSpec, ServeConfig
    from monitor.distributed.live_outputs import LiveOutputs
    from monitor.distributed.serve import serve
    from monitor.keyed.keyed_monitor import KeyedMonitor
    from monitor.output.sinks import JsonlSink
    from streams.redis_stream import publish
    from streams.ward import Ward

    config = ServeConfig(key_model="per-key", count=64)
    kw = config.monitor_kwargs()
    batches = list(Ward(patients=5, minutes=20, seed=2))
    mon, ref, ref_alerts = KeyedMonitor(**kw), io.StringIO(), []
    for b in batches:
        s = mon.process(b)
        JsonlSink(ref).write(s)
        ref_alerts += [json.dumps(e) for e in s.alerts]
    got = {}
    for how in ("packed", "single", "mixed"):
        url = f"{redis_url}-{how}"
        client, stream = _client(url), parse_url(url).stream
        if how == "mixed":
            for j, b in enumerate(batches):
                publish(client, stream, [b], pack=1 if j % 2 else 500)
        else:
            publish(client, stream, batches, pack=500 if how == "packed" else 1)
        n_entries = client.xlen(stream)
        out, alerts = io.StringIO(), io.StringIO()
        summary = serve(url=url, config=config, engine=EngineSpec(engine="local"), checkpoint=None,
                        outputs=LiveOutputs(1, records=out, alerts=alerts), consumer="c")
        got[how] = (out.getvalue(), alerts.getvalue().splitlines(), n_entries, summary["readings"])
        for name in client.scan_iter(f"{stream}*"):
            client.delete(name)
    n = sum(len(b) for b in batches)
    for how, (records, alerts, n_entries, readings) in got.items():
        assert records == ref.getvalue(), how
        assert alerts == ref_alerts, how
        assert readings == n
    assert got["packed"][2] < n / 100 and got["single"][2] == n  # few entries when packed


def test_an_unknown_packed_format_is_one_line(redis_url):
    client = _client(redis_url)
    stream = parse_url(redis_url).stream
    client.xadd(stream, {"m": 9, "n": 1, "time": b"\0" * 8, "value": b"\0" * 8})
    msg = _one_line_error(_cli("replay", redis_url, "--until-idle", "-q"), 2)
    assert "format '9'" in msg


def _entry(**fields) -> dict:
    return {k.encode(): str(v).encode() for k, v in fields.items()}


def test_entries_that_hold_no_reading_are_rejects_with_their_reason():
    """Any producer can write into a stream: a bad entry is a counted reject, never a crash or a NaN (no Redis)."""
    from streams.redis_stream import _to_batch

    entries = [(b"1-0", _entry(value=80)), (b"2-0", _entry(value="abc")), (b"3-0", _entry(value="nan")),
               (b"4-0", _entry(value="1e400")), (b"5-0", _entry(value=500)), (b"6-0", _entry(time=5)),
               (b"7-0", _entry(value=90, label=7)), (b"8-0", _entry(value=90, time="xyz")),
               (b"9-0", _entry(value=95, time=12.5)), (b"10-0", {})]
    ids, entry, b = _to_batch(entries, 1, (20.0, 300.0))
    assert b.x[:, 0].tolist() == [80.0, 95.0] and b.line.tolist() == [1, 2] and b.time.tolist() == [0.0, 12.5]
    assert len(ids) == 9 and entry.tolist() == [0, 8]  # the deleted entry (no fields) is not an id to process
    assert [(r.raw, r.reason) for r in b.rejected] == [
        ("entry 2-0", "value is not a number: 'abc'"), ("entry 3-0", "missing value"),
        ("entry 4-0", "not finite: 'inf'"), ("entry 5-0", "out of range 20..300: '500'"),
        ("entry 6-0", "no value field"), ("entry 7-0", "label is not 0 or 1: 7"),
        ("entry 8-0", "time is not a number: 'xyz'")]
    assert [r.line for r in b.rejected] == [2, 2, 2, 2, 2, 2, 2]  # the number of the reading after each


def test_a_serve_counts_and_names_bad_entries_and_scores_the_rest(redis_url, tmp_path):
    client, stream = _client(redis_url), parse_url(redis_url).stream
    for v in (80, 95, "abc", 500, 88):
        client.xadd(stream, {"value": v})
    client.xadd(stream, {"time": 5})
    out, summary = tmp_path / "out.jsonl", tmp_path / "s.json"
    res = _cli("replay", redis_url, "--until-idle", "--out", str(out), "--summary-json", str(summary))
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    s = json.loads(summary.read_text())
    assert (s["readings"], s["rejected"]) == (3, 3)
    assert [r["reason"] for r in s["first_rejects"]] == ["value is not a number: 'abc'", "out of range 20..300: '500'",
                                                         "no value field"]
    assert [json.loads(ln)["value"] for ln in out.read_text().splitlines()] == [80.0, 95.0, 88.0]
    assert "rejected: value is not a number: 'abc'" in res.output


# ---------------------------------------------------------------- a Redis that goes away

def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Server:
    """A redis-server of this test's own (appendonly: what it had comes back after a restart)."""

    def __init__(self, tmp: Path, persist: bool = True) -> None:
        if shutil.which("redis-server") is None or not has_module("redis"):
            pytest.skip("needs redis-server on PATH and the redis package")
        self.port = _free_port()
        self.dir = tmp
        self.persist = persist
        self.proc = None
        self.start()

    def start(self) -> None:
        import redis
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: redis-server flushes its AOF and exits
        self.proc.wait(10)

    def wipe(self) -> None:
        for p in self.dir.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()


@pytest.fixture
def server(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    srv = _Server(d)
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_for(pred, timeout=60.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _reference(batches, **kw) -> tuple[str, list[str]]:
    from models.learner import LearnerConfig
    from monitor.config import Span
    from monitor.keyed.keyed_monitor import KeyedMonitor
    from monitor.output.sinks import JsonlSink

    mon = KeyedMonitor(config=LearnerConfig(), seed=0, model="per-key", alert_after=Span(seconds=60.0),
                       alert_clear=Span(seconds=120.0))
    out, alerts = io.StringIO(), []
    for b in batches:
        s = mon.process(b)
        JsonlSink(out).write(s)
        alerts += [e for e in s.alerts]
    return out.getvalue(), alerts


def test_a_redis_restart_in_the_middle_of_a_serve_loses_and_duplicates_nothing(server, tmp_path):
    """Redis stops (with its data on disk) while a serve runs, and comes back: the serve notes it in
    one line, reconnects, resumes from its checkpoint, and every reading's record is written once."""
    from streams.redis_stream import connect, parse_url as parse, publish
    from streams.ward import Ward

    url = f"redis://127.0.0.1:{server.port}/ward"
    batches = list(Ward(patients=6, minutes=30, seed=1))
    half = len(batches) // 2
    publish(connect(parse(url)), "ward", batches[:half], pack=1)
    out, alerts, summ = tmp_path / "o.jsonl", tmp_path / "a.jsonl", tmp_path / "s.json"
    proc = ForkedCli(["serve", url, "--engine", "local", "--key-model", "per-key", "--checkpoint-every", "700",
                      "--out", str(out), "--alerts", str(alerts), "--summary-json", str(summ)], stdout=False)
    try:
        n1 = sum(len(b) for b in batches[:half])
        _wait_for(lambda: _lines(out) >= n1 - 300)  # the serve is well under way (live output)
        server.stop()
        time.sleep(1.0)  # the serve meets a closed port a few times
        server.start()
        publish(connect(parse(url)), "ward", batches[half:], pack=1)
        n = sum(len(b) for b in batches)
        _wait_for(lambda: _lines(out) >= n)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert err.count("lost Redis at") == 1 and "Redis back after" in err
    ref, ref_alerts = _reference(batches)
    assert out.read_text() == ref  # every record once, in order
    got = [json.loads(x) for x in alerts.read_text().splitlines()]
    assert got == json.loads(json.dumps(ref_alerts))
    s = json.loads(summ.read_text())
    assert s["readings"] == s["processed"] == s["written"] == n and s["interrupted"]
    assert s["alerts_written"] == len(ref_alerts)


def _serve_in_process(args: list[str], out: Path, then) -> tuple[int, str]:
    """`monitor serve ARGS` in this process (CliRunner, main thread); once ``out`` has 480 lines, a
    thread calls ``then()`` (Redis stops). Returns (exit status, standard error)."""
    import threading

    from click.testing import CliRunner

    from monitor.cli import main

    def watch():
        _wait_for(lambda: _lines(out) >= 480)
        then()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    res = CliRunner().invoke(main, args, catch_exceptions=False)  # a traceback would fail the test
    watcher.join(60)
    return res.exit_code, res.stderr


def test_a_redis_that_comes_back_empty_is_one_line(server, tmp_path):
    from streams.redis_stream import connect, parse_url as parse, publish
    from streams.ward import Ward

    url = f"redis://127.0.0.1:{server.port}/ward"
    publish(connect(parse(url)), "ward", Ward(patients=4, minutes=10, seed=1), pack=1)

    def restart_empty():
        server.stop()
        server.wipe()
        server.start()

    code, err = _serve_in_process(["serve", url, "--engine", "local", "--alerts-only", "--out",
                                   str(tmp_path / "o.jsonl")], tmp_path / "o.jsonl", restart_empty)
    assert code == 1, err
    assert "Traceback" not in err and "NOGROUP" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "does not exist" in errors[0] and "persistence" in errors[0]


def test_a_redis_that_stays_away_is_one_line_after_the_retries(server, tmp_path):
    from streams.redis_stream import connect, parse_url as parse, publish
    from streams.ward import Ward

    url = f"redis://127.0.0.1:{server.port}/ward"
    publish(connect(parse(url)), "ward", Ward(patients=4, minutes=10, seed=1), pack=1)
    stopped = []
    code, err = _serve_in_process(["serve", url, "--engine", "local", "--out", str(tmp_path / "o.jsonl"),
                                   "--retry-for", "1"], tmp_path / "o.jsonl",
                                  lambda: (server.stop(), stopped.append(time.monotonic())))
    took = time.monotonic() - stopped[0]
    assert code == 1, err
    assert "Traceback" not in err and err.count("lost Redis at") == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "cannot reach Redis" in errors[0] and "for 1 s" in errors[0]
    assert took < 15
