"""Ray shards: an actor killed in the middle of a call, signals to a serve, errors as one line.

Needs a running redis-server (MONITOR_TEST_REDIS_PORT, as .ci/run sets it) and the ray package.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from streams.redis_stream import parse_url, shard_streams
from tests.conftest import ROOT, has_module, redis_client

PORT = os.environ.get("MONITOR_TEST_REDIS_PORT")


needs_both = pytest.mark.skipif(not PORT or not has_module("ray") or not has_module("redis"),
                                reason="needs Redis (MONITOR_TEST_REDIS_PORT), redis and ray")


def test_ray_errors_become_one_line_without_escape_codes():
    from monitor.distributed.engines import one_line as _one_line

    class Fake(Exception):
        pass

    e = Fake("\x1b[36mray::ShardWorker.step()\x1b[39m (pid=1, ip=127.0.0.1)\n  File \"x.py\", line 3\n"
             "ValueError: bad thing")
    e.cause = ValueError("bad thing")
    assert _one_line(e) == "ValueError: bad thing"
    e2 = Fake("\x1b[31mThe actor died unexpectedly\x1b[0m\nmore")
    assert _one_line(e2) == "Fake: more"
    assert "\x1b" not in _one_line(Fake("\x1b[1mboom\x1b[0m"))


@pytest.mark.skipif(not has_module("ray"), reason="needs ray")
def test_a_ray_cluster_that_cannot_be_joined_is_one_line(monkeypatch):
    """ray.init's ConnectionError over an authentication error (a cluster with another token) becomes
    ServeFailed with the cause's first line, never a traceback."""
    import ray

    from monitor.distributed.engines import ServeFailed, start_ray

    class AuthenticationError(Exception):
        pass

    def refuse(**kw):
        try:
            raise AuthenticationError("RPC error: InvalidAuthToken: token is missing\nmore text")
        except AuthenticationError as e:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379") from e

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ServeFailed) as got:
        start_ray("10.0.0.5:6379", 2)
    assert str(got.value) == ("cannot join the Ray cluster at 10.0.0.5:6379: AuthenticationError: "
                              "RPC error: InvalidAuthToken: token is missing")


_client = redis_client


@needs_both
def test_an_actor_killed_in_the_middle_of_a_call_loses_and_duplicates_nothing(redis_url):
    """Shard 0's actor ends (os._exit) inside a call, after writing records it never returns; Ray
    restarts it, it resumes from the checkpoint: every record once in the output streams and in the
    live outputs, the same as a run without the kill, and the summary counts each reading once."""
    from monitor.distributed.config import EngineSpec, Hooks, ServeConfig
    from monitor.distributed.engines import start_ray
    from monitor.distributed.live_outputs import LiveOutputs
    from monitor.distributed.redis_outputs import export
    from monitor.distributed.serve import serve
    from streams.redis_stream import publish
    from streams.ward import Ward

    results, nice = {}, set()

    def niceness(i, r, workers):  # the actor's, while it runs (Ray's default of 15 starves it on a busy node)
        if r is not None and "pid" in r:
            nice.add(os.getpriority(os.PRIO_PROCESS, r["pid"]))

    for how in ("killed", "clean"):
        url = f"{redis_url}-{how}"
        n = publish(_client(url), parse_url(url).stream, Ward(patients=10, minutes=30, seed=4), shards=2,
                    pack=50)["readings"]
        out, alerts = io.StringIO(), io.StringIO()
        fault = {"exit_at_batch": 5, "once_key": f"{parse_url(url).stream}:fault"} if how == "killed" else None
        if how == "killed":
            start_ray(None, 2)
        summary = serve(url=url, config=ServeConfig(checkpoint_every=500, count=4, step_batches=5),
                        engine=EngineSpec(engine="ray" if how == "killed" else "local", shards=2),
                        hooks=Hooks(fault=fault, on_result=niceness if how == "killed" else None),
                        outputs=LiveOutputs(2, records=out, alerts=alerts))
        streams = shard_streams(parse_url(url).stream, 2)
        rec, al = io.StringIO(), io.StringIO()
        export(_client(url), streams, out=rec, alerts=al)
        results[how] = (n, summary, out.getvalue(), alerts.getvalue(), rec.getvalue(), al.getvalue())
    import ray
    ray.shutdown()
    n, killed, out, alerts, rec, al = results["killed"]
    _, clean, out_c, alerts_c, rec_c, al_c = results["clean"]
    assert _client(redis_url + "-killed").get(f"{parse_url(redis_url).stream}-killed:fault") is not None
    s0 = killed["per_shard"][0]
    # the call under way is lost, and calls made while Ray restarts the actor may be too
    assert killed["lost_calls"] >= 1 and s0["restarts"] == 1 and s0["duplicates_skipped"] > 0
    assert killed["readings"] == killed["processed"] == killed["written"] == n
    assert killed["alerts_written"] == clean["alerts_written"]
    assert sorted(rec.splitlines()) == sorted(rec_c.splitlines()) and len(rec.splitlines()) == n
    assert al == al_c
    assert sorted(out.splitlines()) == sorted(out_c.splitlines()) and len(out.splitlines()) == n
    assert sorted(alerts.splitlines()) == sorted(alerts_c.splitlines())
    assert nice == {0}


def _popen(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "monitor", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


@needs_both
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_ray_serve_cleanly(redis_url, tmp_path, sig, code):
    """A serve on Ray that waits for more readings stops on SIGTERM/SIGINT: exit 143/130, the
    checkpoints saved (nothing left pending), the outputs and the summary written."""
    from streams.redis_stream import publish
    from streams.ward import Ward

    n = publish(_client(redis_url), parse_url(redis_url).stream, Ward(patients=6, minutes=20, seed=1),
                shards=2)["readings"]
    out, alerts, summ = tmp_path / "o.jsonl", tmp_path / "a.jsonl", tmp_path / "s.json"
    proc = _popen("serve", redis_url, "--out", str(out), "--alerts", str(alerts), "--summary-json", str(summ),
                  "--num-cpus", "2")
    try:
        end = time.monotonic() + 150
        while not (out.exists() and len(out.read_text().splitlines()) >= n):
            assert time.monotonic() < end and proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.1)
        alerts_live = alerts.read_text()  # the alerts are there while the serve runs
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err and "\x1b[" not in err
    s = json.loads(summ.read_text())
    assert s["interrupted"] and s["readings"] == s["processed"] == n
    assert len(out.read_text().splitlines()) == n
    assert alerts.read_text() == alerts_live and s["alerts_out"] == len(alerts_live.splitlines())
    client = _client(redis_url)
    for stream in shard_streams(parse_url(redis_url).stream, 2):
        assert client.xpending(stream, "monitor")["pending"] == 0  # the last checkpoint covers everything
        assert client.exists(f"{stream}:state")
