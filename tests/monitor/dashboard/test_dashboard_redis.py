"""The dashboard of a serve, read from Redis: the feed in-process, `monitor dashboard redis://...`,
and `monitor serve --dashboard` with 2 Ray shards as real processes.

Needs a redis-server at 127.0.0.1:MONITOR_TEST_REDIS_PORT (.ci/run starts one); skipped without.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from click.testing import CliRunner

from conftest import ROOT

PORT = os.environ.get("MONITOR_TEST_REDIS_PORT")
pytestmark = pytest.mark.skipif(not PORT, reason="no Redis: set MONITOR_TEST_REDIS_PORT (as .ci/run does)")


@pytest.fixture
def url():
    import redis
    stream = f"d-{uuid.uuid4().hex[:8]}"
    yield f"redis://127.0.0.1:{PORT}/{stream}"
    client = redis.Redis(host="127.0.0.1", port=int(PORT), password=os.environ.get("MONITOR_REDIS_PASSWORD"))
    for name in client.scan_iter(f"{stream}*"):
        client.delete(name)


def client_of(url):
    from streams.redis_stream import connect, parse_url
    return connect(parse_url(url))


def publish_and_serve(url, tmp_path, *, shards: int, engine: str = "local", minutes: int = 20) -> dict:
    from monitor.cli import main
    runner = CliRunner()
    r = runner.invoke(main, ["publish", "--stream", "ward", "--patients", "12", "--n", str(minutes), url,
                             "--shards", str(shards), "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["serve", url, "--engine", engine, "--shards", str(shards), "--until-idle",
                             "--alert-after", "3m", "--alerts", str(tmp_path / "alerts.jsonl"),
                             "--summary-json", str(tmp_path / "s.json"), "-q"])
    assert r.exit_code == 0, r.output
    return json.load(open(tmp_path / "s.json"))


def lines_until(proc, text: str) -> str:
    """stderr of proc up to the line holding text; returns the dashboard URL said on it."""
    url = None
    for line in proc.stderr:
        url = url or (m.group(1) if (m := re.search(r"dashboard at (http://\S+)", line)) else None)
        if text in line:
            return url
    raise AssertionError(f"the process ended without saying {text!r}")


def get_json(u: str):
    with urllib.request.urlopen(u, timeout=10) as r:
        return json.loads(r.read())


def metric(u: str) -> dict:
    with urllib.request.urlopen(u + "metrics", timeout=10) as r:
        return dict(re.findall(r"^(monitor_\w+(?:\{[^}]*\})?) (\S+)$", r.read().decode(), re.M))


def test_the_feed_shows_what_a_serve_wrote(url, tmp_path):
    from monitor.dashboard.redis_feed import RedisFeed, find_shards
    from monitor.dashboard.state import WardState

    summary = publish_and_serve(url, tmp_path, shards=2)
    client = client_of(url)
    stream = url.rsplit("/", 1)[1]
    assert find_shards(client, stream) == [f"{stream}:0", f"{stream}:1"]
    state = WardState()
    feed = RedisFeed(client, find_shards(client, stream), state, count=500)
    while feed.poll(block_ms=0):
        pass
    got = state.state()
    assert got["readings"] == summary["readings"] == 12 * 20 * 12
    assert len(got["keys"]) == 12
    written = [json.loads(line) for line in open(tmp_path / "alerts.jsonl")]
    assert sorted(map(json.dumps, got["alerts"])) == sorted(map(json.dumps, written)) and written
    assert got["summary"]["flags"] == summary["flags"]
    assert got["summary"]["accuracy"] == pytest.approx(summary["accuracy"])
    assert feed.pending() == {f"{stream}:0": 0, f"{stream}:1": 0}


def test_pending_counts_what_no_consumer_has_acknowledged(url, tmp_path):
    from monitor.cli import main
    from monitor.dashboard.redis_feed import RedisFeed
    from monitor.dashboard.state import WardState

    # one entry per reading (--pack 1), so that entries and readings count alike; publish creates the group
    r = CliRunner().invoke(main, ["publish", "--stream", "synthetic", "--n", "300", url, "--pack", "1", "-q"])
    assert r.exit_code == 0
    client = client_of(url)
    stream = url.rsplit("/", 1)[1]
    client.xreadgroup("monitor", "c0", {stream: ">"}, count=100)  # read, never acknowledged
    feed = RedisFeed(client, [stream], WardState())
    assert feed.pending() == {stream: 300}  # 100 pending + 200 not yet read
    feed.poll(block_ms=0)
    assert 'monitor_pending{shard="%s"} 300' % stream in feed.state.metrics_text()


def test_the_dashboard_command_needs_streams_to_read(url):
    from monitor.cli import main
    r = CliRunner().invoke(main, ["dashboard", url, "--listen", "127.0.0.1:0"])
    assert r.exit_code == 2
    assert "no records stream for" in r.output and "give --shards N" in r.output


def test_the_dashboard_command_serves_a_serve_until_ctrl_c(url, tmp_path):
    summary = publish_and_serve(url, tmp_path, shards=2)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "dashboard", url, "--listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        u = lines_until(proc, "until Ctrl-C")
        deadline = time.monotonic() + 20
        while get_json(u + "api/state")["readings"] < summary["readings"] and time.monotonic() < deadline:
            time.sleep(0.2)
        state = get_json(u + "api/state")
        assert state["readings"] == summary["readings"] and len(state["keys"]) == 12
        m = metric(u)
        assert int(m["monitor_readings_total"]) == summary["readings"]
        assert sum(1 for k in m if k.startswith("monitor_pending{")) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_with_2_ray_shards_and_a_dashboard(url, tmp_path):
    pytest.importorskip("ray")
    from monitor.cli import main
    r = CliRunner().invoke(main, ["publish", "--stream", "ward", "--patients", "12", "--n", "20", url,
                                  "--shards", "2", "-q"])
    assert r.exit_code == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "serve", url, "--shards", "2", "--until-idle",
                             "--alert-after", "3m", "--alerts", str(tmp_path / "alerts.jsonl"),
                             "--dashboard", "127.0.0.1:0"], stderr=subprocess.PIPE, env=env, text=True)
    try:
        u = lines_until(proc, "stays up")
        state = get_json(u + "api/state")
        assert state["readings"] == 12 * 20 * 12 and state["figures"]["finished"]
        written = [json.loads(line) for line in open(tmp_path / "alerts.jsonl")]
        assert sorted(map(json.dumps, state["alerts"])) == sorted(map(json.dumps, written))
        m = metric(u)
        assert int(m["monitor_readings_total"]) == 12 * 20 * 12
        stream = url.rsplit("/", 1)[1]
        assert m[f'monitor_pending{{shard="{stream}:0"}}'] == m[f'monitor_pending{{shard="{stream}:1"}}'] == "0"
        with urllib.request.urlopen(u + "events", timeout=10) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_replay_of_a_redis_stream_with_a_dashboard(url, tmp_path):
    from monitor.cli import main
    r = CliRunner().invoke(main, ["publish", "--stream", "ward", "--patients", "5", "--n", "10", url, "-q"])
    assert r.exit_code == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "replay", url, "--until-idle",
                             "--dashboard", "127.0.0.1:0", "--summary-json", str(tmp_path / "s.json")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    try:
        u = lines_until(proc, "stays up")
        state = get_json(u + "api/state")
        assert state["readings"] == 5 * 10 * 12 == json.load(open(tmp_path / "s.json"))["processed"]
        assert sorted(k["key"] for k in state["keys"]) == [f"P{i:03d}" for i in range(5)]
        assert int(metric(u)["monitor_readings_total"]) == 600
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_records_in_blocks_are_read_too(url):
    """A records stream of one entry per batch (fields n and records, newline-separated)."""
    from monitor.dashboard.redis_feed import RedisFeed, find_shards
    from monitor.dashboard.state import WardState

    client = client_of(url)
    stream = url.rsplit("/", 1)[1]
    rows = [{"time": float(i), "key": f"k{i % 3}", "value": 70.0 + i, "label": 0, "p_abnormal": 0.1, "flag": False}
            for i in range(10)]
    text = "\n".join(json.dumps(r) for r in rows)
    client.xadd(f"{stream}:2:records", {"n": 10, "records": text})
    client.xadd(f"{stream}:2:alerts", {"key": "k1", "alert": json.dumps({"event": "open", "key": "k1",
                                                                          "opened_at": 7.0})})
    client.xadd(f"{stream}:0", {"time": 1.0, "value": 80.0})  # an input stream not served yet
    assert find_shards(client, stream) == [f"{stream}:0", f"{stream}:2"]
    state = WardState()
    feed = RedisFeed(client, [f"{stream}:2"], state)
    feed.poll(block_ms=0)
    got = state.state()
    assert got["readings"] == 10 and [k["key"] for k in got["keys"]] == ["k1", "k0", "k2"]
    assert got["keys"][0]["alert"] and got["keys"][0]["value"] == 77.0
