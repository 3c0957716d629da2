"""The dashboard without a browser: the state against an oracle, the HTTP interface in-process,
the options, and the process that stays up until a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.dashboard.address import Address
from monitor.dashboard.live import Dashboard
from monitor.dashboard.state import WardState
from monitor.core.monitor import Scored
from forked import ForkedCli


def scored(rng, n: int, keys: list[str], t0: float = 0.0) -> Scored:
    v = rng.normal(80, 15, n)
    p = rng.uniform(0, 1, n)
    return Scored(time=t0 + np.arange(n, dtype=float), x=v[:, None], label=(v > 91).astype(float), p=p,
                  flag=p > 0.5, line=np.arange(n), key=np.array(rng.choice(keys, n), dtype=object))


def get(url: str, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
        return r.status, r.headers, r.read()


# ------------------------------------------------------------------ state


def test_state_matches_a_plain_oracle_however_the_stream_is_cut():
    rng = np.random.default_rng(3)
    keys = [f"k{i}" for i in range(7)]
    whole = scored(rng, 500, keys)
    a, b = WardState(ring=16), WardState(ring=16)
    a.update(whole)
    cuts = np.sort(rng.choice(np.arange(1, 500), 30, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, 500]):
        b.update(whole.take(int(lo), int(hi)))
    key_list = whole.key.tolist()
    for st in (a, b):
        assert st.readings == 500 and st.flags == int(whole.flag.sum())
        rows = {r["key"]: r for r in st.state()["keys"]}
        for k in keys:
            idx = [i for i, kk in enumerate(key_list) if kk == k]
            last = idx[-1]
            assert rows[k]["value"] == whole.x[last, 0] and rows[k]["time"] == whole.time[last]
            assert rows[k]["readings"] == len(idx) and rows[k]["flags"] == int(whole.flag[idx].sum())
            series = st.key_detail(k)["series"]
            assert series["time"] == whole.time[idx[-16:]].tolist()
            assert np.allclose(series["value"], whole.x[idx[-16:], 0], atol=1e-4)  # float32 ring
            assert series["flag"] == whole.flag[idx[-16:]].tolist()


def test_open_alerts_come_first_longest_open_first_and_close_clears_them():
    rng = np.random.default_rng(0)
    st = WardState()
    s = scored(rng, 30, ["a", "b", "c"])
    st.update(s)
    from dataclasses import replace
    empty = s.take(0, 0)
    st.update(replace(empty, alerts=({"event": "open", "key": "c", "opened_at": 5.0},
                                     {"event": "open", "key": "b", "opened_at": 9.0})))
    assert [r["key"] for r in st.state()["keys"]] == ["c", "b", "a"]
    st.update(replace(empty, alerts=({"event": "close", "key": "c", "opened_at": 5.0, "closed_at": 20.0},)))
    rows = st.state()["keys"]
    assert [r["key"] for r in rows] == ["b", "a", "c"] and [r["alert"] for r in rows] == [True, False, False]
    assert len(st.state()["alerts"]) == 3
    assert "monitor_alerts_open 1\n" in st.metrics_text()


def test_tick_sends_each_change_once_and_pools_many_readings_to_a_few_points():
    rng = np.random.default_rng(1)
    st = WardState()
    st.update(scored(rng, 1000, ["a", "b"]))
    t = st.tick()
    assert sorted(r["key"] for r in t["records"]) == ["a", "b"]
    assert all(len(r["points"]) <= 12 for r in t["records"])
    peak = max(r["points"][i][1] for r in t["records"] for i in range(len(r["points"])))
    assert peak == pytest.approx(max(v for v in st.sparklines()["a"]["value"] + st.sparklines()["b"]["value"]))
    assert st.tick()["records"] == []


def test_an_unkeyed_stream_is_one_series():
    rng = np.random.default_rng(2)
    s = scored(rng, 50, ["x"])
    from dataclasses import replace
    st = WardState()
    st.update(replace(s, key=None))
    state = st.state()
    assert [r["key"] for r in state["keys"]] == [None] and state["figures"]["keyed"] is False
    assert "monitor_keys 0\n" in st.metrics_text()
    assert len(st.key_detail(None)["series"]["time"]) == 50


# ------------------------------------------------------------------ HTTP, in-process


@pytest.fixture(scope="module")
def ward_run(tmp_path_factory):
    """`monitor replay ward.csv --alert-after 5m` (20 patients) through a dashboard, served."""
    from monitor.config import Span
    from monitor.app.replay_run import run_replay
    from monitor.config import MonitorConfig, OutputSpec, ReplayConfig, SourceSpec
    from monitor.cli.options import learner_config
    from streams.ward import Ward

    tmp = tmp_path_factory.mktemp("ward")
    ward = Ward(patients=20, minutes=60, seed=0)
    ward.to_csv(tmp / "ward.csv")
    dash = Dashboard(Address.parse("127.0.0.1:0"), note=None).__enter__()
    run = ReplayConfig(source=SourceSpec(file=str(tmp / "ward.csv")),
                       monitor=MonitorConfig(learner=learner_config(16, 0.05, 256, True, False, "bce-logits"),
                                             alert_after=Span.parse("5m")),
                       output=OutputSpec(fmt="jsonl", out=os.devnull, summary_json=str(tmp / "summary.json"),
                                         quiet=True, alerts=str(tmp / "alerts.jsonl")))
    code = run_replay(run, dashboard=dash)
    assert code == 0
    yield dash, ward, tmp
    dash.__exit__(None, None, None)


def test_api_state_reports_every_reading_and_exactly_the_long_episodes(ward_run):
    dash, ward, tmp = ward_run
    status, headers, body = get(dash.url + "api/state")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    state = json.loads(body)
    n = sum(1 for _ in open(tmp / "ward.csv")) - 1
    assert state["readings"] == n
    assert len(state["keys"]) == 20
    long_episodes = {e.key for e in ward.episodes() if e.end - e.start > 300}
    assert {a["key"] for a in state["alerts"]} == long_episodes
    assert 0 < len(long_episodes) < len(ward.episodes())  # some were too short to raise an alert
    written = [json.loads(line) for line in open(tmp / "alerts.jsonl")]
    assert state["alerts"] == written  # the same objects as --alerts writes
    summary = json.load(open(tmp / "summary.json"))
    assert state["summary"] == summary


def test_metrics_are_prometheus_text_with_the_counts(ward_run):
    dash, ward, tmp = ward_run
    status, headers, body = get(dash.url + "metrics")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    values = dict(re.findall(r"^(monitor_\w+) (\S+)$", text, re.M))
    summary = json.load(open(tmp / "summary.json"))
    assert int(values["monitor_readings_total"]) == summary["readings"]
    assert int(values["monitor_flags_total"]) == summary["flags"]
    assert int(values["monitor_rejected_total"]) == summary["rejected"] == 0
    assert int(values["monitor_keys"]) == 20 and int(values["monitor_alerts_open"]) == 0
    assert float(values["monitor_accuracy"]) == pytest.approx(summary["accuracy"])
    for name in ("monitor_readings_total", "monitor_alerts_open"):
        assert f"# TYPE {name} " in text


def test_events_answer_an_event_stream(ward_run):
    dash, ward, tmp = ward_run
    with urllib.request.urlopen(dash.url + "events", timeout=10) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        lines = [r.readline().decode()]
        while lines[-1] != "event: records\n" and len(lines) < 200:  # figures go out at least every 2 s
            lines.append(r.readline().decode())
        data = json.loads(r.readline().decode()[6:])
    assert lines[0] == "retry: 2000\n" and lines[-1] == "event: records\n"
    assert data["figures"]["readings"] == json.load(open(tmp / "summary.json"))["readings"]


def test_the_page_and_its_assets_are_served_with_a_strict_policy(ward_run):
    dash, _, _ = ward_run
    status, headers, body = get(dash.url)
    assert status == 200 and b'<script src="static/app.js"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "style.css", "icon.svg"):
        assert get(dash.url + "static/" + name)[0] == 200
    js = get(dash.url + "static/app.js")[2].decode()
    assert "innerHTML" not in js.replace("never innerHTML", "")  # data goes in as text only
    with pytest.raises(urllib.error.HTTPError) as e:
        get(dash.url + "static/../../etc/passwd")
    assert e.value.code == 404


def test_read_only(ward_run):
    dash, _, _ = ward_run
    req = urllib.request.Request(dash.url + "api/state", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_a_token_is_required_on_every_request_when_set():
    with Dashboard(Address.parse("127.0.0.1:0"), token="s3cret", note=None) as dash:
        for path in ("", "api/state", "metrics", "events", "static/app.js"):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(dash.url + path)
            assert e.value.code == 401
        assert get(dash.url + "metrics", {"Authorization": "Bearer s3cret"})[0] == 200
        assert get(dash.url + "api/state?token=s3cret")[0] == 200
        with pytest.raises(urllib.error.HTTPError):
            get(dash.url + "api/state?token=wrong")


# ------------------------------------------------------------------ options


def test_a_non_loopback_address_needs_a_token():
    with pytest.raises(ValueError, match="MONITOR_DASHBOARD_TOKEN"):
        Dashboard(Address.parse("0.0.0.0:0"), note=None)
    result = CliRunner().invoke(main, ["replay", "--stream", "sample", "--dashboard", "0.0.0.0:0"],
                                env={"MONITOR_DASHBOARD_TOKEN": ""})
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --dashboard 0.0.0.0:0: 0.0.0.0 is not a loopback address: set MONITOR_DASHBOARD_TOKEN to a "
        "secret that every request must carry, or listen on 127.0.0.1")


@pytest.mark.parametrize("spec, message", [
    ("http", "'http' is not a port number"),
    ("1.2.3.4:70000", "'70000' is not a port number"),
    ("::1:80", "write an IPv6 address in brackets"),
])
def test_bad_addresses_are_one_line_errors(spec, message):
    result = CliRunner().invoke(main, ["replay", "--stream", "sample", "--dashboard", spec])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_port_in_use_is_a_one_line_error():
    with Dashboard(Address.parse("127.0.0.1:0"), note=None) as dash:
        result = CliRunner().invoke(main, ["replay", "--stream", "sample", "--dashboard",
                                           f"127.0.0.1:{dash.server.port}"])
    assert result.exit_code == 2
    assert f"Error: --dashboard 127.0.0.1:{dash.server.port}: cannot listen on" in result.output


def test_help_says_the_token_rule():
    out = CliRunner().invoke(main, ["replay", "--help"]).output
    assert "--dashboard [HOST:]PORT" in out and "MONITOR_DASHBOARD_TOKEN" in " ".join(out.split())


# ------------------------------------------------------------------ the process


def test_the_page_stays_up_after_the_stream_until_ctrl_c():
    proc = ForkedCli(["replay", "--stream", "sample", "--dashboard", "127.0.0.1:0", "--out", os.devnull],
                     stdout=False)  # a real process (forked)
    try:
        url = None
        for line in map(bytes.decode, proc.stderr):
            url = url or (m.group(1) if (m := re.search(r"dashboard at (http://\S+)", line)) else None)
            if "stays up" in line:
                break
        state = json.loads(get(url + "api/state")[2])
        assert state["figures"]["finished"] and state["readings"] == state["summary"]["readings"] > 0
        assert state["keys"][0]["key"] is None  # one series
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
