"""`monitor serve` / `monitor replay redis://` end to end (monitor.distributed.run): outputs appended
on resume, and replay's --wait / --retry-for.

Needs a running redis-server (MONITOR_TEST_REDIS_PORT, as .ci/run sets it).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from monitor.cli import main
from streams.redis_stream import parse_url
from tests.conftest import redis_client


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def _publish(url, batches):
    from streams.redis_stream import publish
    return publish(redis_client(url), parse_url(url).stream, batches, pack=50)["readings"]


def _ward():
    from streams.ward import Ward
    return list(Ward(patients=5, minutes=20, seed=6))


@pytest.mark.parametrize("how", ["serve", "replay"])
def test_a_resumed_run_appends_to_its_outputs_and_writes_each_record_once(redis_url, tmp_path, how):
    """Half the ward, a stop (the checkpoint saved), the other half, a resume with the same --out and
    --alerts: the files hold what one uninterrupted run writes, each record once."""
    batches = _ward()
    half = len(batches) // 2
    state = ["--state", str(tmp_path / "s.pt")] if how == "replay" else ["--engine", "local"]
    common = ["--until-idle", "--key-model", "per-key", "--checkpoint-every", "300", "-q"]

    def run(url, tag):
        res = _cli(how, url, *common, *state, "--out", str(tmp_path / f"{tag}.jsonl"),
                   "--alerts", str(tmp_path / f"{tag}-a.jsonl"), "--summary-json", str(tmp_path / f"{tag}.json"))
        assert res.exit_code == 0, res.output
        return json.loads((tmp_path / f"{tag}.json").read_text())

    n1 = _publish(redis_url, batches[:half])
    first = run(redis_url, "o")
    assert first["readings"] == n1 and not first["per_shard"][0]["resumed"]
    n = n1 + _publish(redis_url, batches[half:])
    second = run(redis_url, "o")
    assert second["per_shard"][0]["resumed"] and second["readings"] == n
    if how == "replay":
        (tmp_path / "s.pt").unlink()
    whole = f"{redis_url}-whole"
    _publish(whole, batches)
    run(whole, "w")
    records = (tmp_path / "o.jsonl").read_text()
    assert len(records.splitlines()) == n
    assert records == (tmp_path / "w.jsonl").read_text()
    assert (tmp_path / "o-a.jsonl").read_text() == (tmp_path / "w-a.jsonl").read_text()


def test_a_fresh_run_truncates_its_outputs(redis_url, tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("left from before\n")
    n = _publish(redis_url, _ward())
    res = _cli("replay", redis_url, "--until-idle", "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == n and "left from before" not in out.read_text()


@pytest.mark.parametrize("command", [["serve", "--engine", "local"], ["replay"]])
def test_wait_waits_for_the_stream(redis_url, tmp_path, command):
    """--wait (serve and replay redis://): started before the stream exists, served once published."""
    def later():
        time.sleep(1.0)
        _publish(redis_url, _ward())

    t = threading.Thread(target=later)
    t.start()
    res = _cli(command[0], redis_url, *command[1:], "--wait", "--retry-for", "5", "--until-idle", "--alerts-only",
               "--summary-json", str(tmp_path / "s.json"))
    t.join()
    assert res.exit_code == 0, res.output
    assert "waiting for stream" in res.output
    assert json.loads((tmp_path / "s.json").read_text())["readings"] == 5 * 20 * 12


def test_replay_without_wait_refuses_a_missing_stream_and_wait_needs_redis(redis_url, tmp_path, hr_csv):
    res = _cli("replay", redis_url, "--until-idle", "-q")
    assert res.exit_code == 2 and "does not exist" in res.output and "--wait" in res.output
    res = _cli("replay", str(hr_csv), "--wait", "-q")
    assert res.exit_code == 2 and "--wait is for a redis:// input" in res.output
