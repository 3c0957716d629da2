"""Keyed streams: per-key normaliser, key table, alert episodes, the ward, the keyed monitor."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from models.keyed_normaliser import KeyedNormaliser
from models.normaliser import RunningNormaliser
from monitor.alerts import AlertTracker, Span
from monitor.cli import main
from monitor.keyed import KeyedMonitor
from monitor.keytable import KeyTable, TooManyKeys
from monitor.pipeline import Monitor
from streams import Batch
from streams.ward import Ward


def cuts(rng, n, most=50):
    """Random chunk boundaries of 0..n (chunks of 1..most readings)."""
    out = [0]
    while out[-1] < n:
        out.append(min(n, out[-1] + int(rng.integers(1, most + 1))))
    return list(zip(out[:-1], out[1:]))


# ---------------------------------------------------------------- KeyedNormaliser

def test_keyed_normaliser_matches_numpy_per_reading_whatever_the_chunks():
    rng = np.random.default_rng(0)
    n = 400
    ids = rng.integers(0, 7, n)
    x = np.c_[rng.normal(60, 5, n) + 10 * ids, rng.normal(0, 1, n)]  # (n, 2), levels differ by key
    x[ids == 3, 1] = 4.0  # a feature constant for one key: always 0.0
    expected = np.zeros_like(x)
    for i in range(n):
        past = x[:i][ids[:i] == ids[i]]
        if len(past):
            std = past.std(axis=0)
            ok = std > 1e-12 * np.maximum(1, np.abs(past.mean(axis=0)))
            expected[i] = np.where(ok, (x[i] - past.mean(axis=0)) / np.where(ok, std, 1), 0.0)
    for seed in range(3):
        norm = KeyedNormaliser()
        got = np.concatenate([norm.transform_update(ids[a:b], x[a:b]) for a, b in cuts(np.random.default_rng(seed), n)])
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
        assert (got[ids == 3, 1] == 0.0).all()
    for k in range(7):  # each key's state is what a RunningNormaliser of that key alone holds
        alone = RunningNormaliser()
        alone.update(x[ids == k])
        np.testing.assert_allclose(norm.mean_[k], alone.mean_, rtol=1e-12)
        np.testing.assert_allclose(norm.var_[k], alone.var_, rtol=1e-9)
        assert norm.n_seen_[k] == alone.n_seen_


def test_keyed_normaliser_state_round_trip_and_reset():
    rng = np.random.default_rng(1)
    ids, x = rng.integers(0, 4, 100), rng.normal(80, 5, (100, 1))
    a = KeyedNormaliser()
    a.transform_update(ids[:60], x[:60])
    b = KeyedNormaliser()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    np.testing.assert_array_equal(a.transform_update(ids[60:], x[60:]), b.transform_update(ids[60:], x[60:]))
    a.reset(np.array([2]))
    assert a.n_seen_[2] == 0 and a.transform(np.array([2]), np.array([[99.0]])).tolist() == [[0.0]]
    with pytest.raises(ValueError, match="features"):
        a.transform_update(np.array([0]), np.zeros((1, 3)))


# ---------------------------------------------------------------- KeyTable

def test_key_table_evicts_least_recently_seen_and_counts():
    table = KeyTable(max_keys=3)
    ids, ev = table.lookup(np.array(["a", "b", "c", "a"], dtype=object))
    assert ids.tolist() == [0, 1, 2, 0] and ev == []
    ids, ev = table.lookup(np.array(["d", "c"], dtype=object))  # b is the least recently seen
    assert ev == [("b", 1)] and ids.tolist() == [1, 2]
    ids, ev = table.lookup(np.array(["b"], dtype=object))  # now a (seen at reading 4) goes
    assert ev == [("a", 0)] and ids.tolist() == [0]
    assert table.n_evicted_ == 2 and set(table.keys()) == {"b", "c", "d"}
    with pytest.raises(TooManyKeys):
        table.lookup(np.array(list("wxyz"), dtype=object))
    copy = KeyTable(max_keys=3)
    copy.load_state_dict(json.loads(json.dumps(table.state_dict())))
    assert copy.lookup(np.array(["e"], dtype=object)) == table.lookup(np.array(["e"], dtype=object))


# ---------------------------------------------------------------- alerts

def reference_alerts(keys, t, v, f, after: Span, clear: Span):
    """The alert rules reading by reading, in plain Python: the oracle for the vectorised scan."""
    st, out = {}, []
    for k, ti, vi, fi in zip(keys, t, v, f):
        s = st.setdefault(k, {"open": False, "run": 0, "vals": [], "tent": []})
        if fi:
            if s["open"]:
                s["vals"] += s["tent"] + [vi]
                s["tent"], s["run"], s["last"] = [], 0, ti
                continue
            if s["run"] == 0:
                s["start"], s["vals"] = ti, []
            s["run"] += 1
            s["vals"].append(vi)
            s["last"] = ti
            held = s["run"] >= after.readings if after.readings else ti - s["start"] >= after.seconds
            if held:
                out.append(("open", k, s["start"], None, max(s["vals"]), np.mean(s["vals"]), ti))
                s["open"], s["run"], s["tent"] = True, 0, []
        else:
            if not s["open"]:
                s["run"] = 0
                continue
            s["run"] += 1
            s["tent"].append(vi)
            held = s["run"] >= clear.readings if clear.readings else ti - s["last"] >= clear.seconds
            if held:
                out.append(("close", k, s["start"], s["last"], max(s["vals"]), np.mean(s["vals"]), ti))
                s["open"], s["run"], s["tent"] = False, 0, []
    return out


@pytest.mark.parametrize("after,clear", [("3", "2"), ("1", "1"), ("4s", "3s"), ("2", "5s")])
def test_alert_scan_matches_reading_by_reading_rules(after, clear):
    after, clear = Span.parse(after), Span.parse(clear)
    rng = np.random.default_rng(3)
    n = 3000
    keys = rng.integers(0, 5, n)
    t = np.cumsum(rng.uniform(0.1, 1.0, n))
    # bursty flags: a two-state Markov chain per reading
    f = np.zeros(n, bool)
    for i in range(1, n):
        f[i] = rng.random() < (0.85 if f[i - 1] else 0.08)
    v = np.round(np.where(f, rng.normal(120, 8, n), rng.normal(70, 4, n)), 1)
    want = reference_alerts(keys.tolist(), t.tolist(), v.tolist(), f.tolist(), after, clear)
    assert len(want) > 20
    names = [f"k{i}" for i in range(5)]
    for seed in range(3):
        tracker = AlertTracker(after=after, clear=clear)
        got = []
        for a, b in cuts(np.random.default_rng(seed), n, most=200):
            got += tracker.update(keys[a:b], names, t[a:b], v[a:b], f[a:b])
        got_t = [(e["event"], int(e["key"][1:]), e["start"], e["end"], e["peak"], e["mean"],
                  e["opened_at"] if e["event"] == "open" else e["closed_at"]) for e in got]
        got_t, want_s = sorted(got_t, key=lambda r: (r[6], r[1])), sorted(want, key=lambda r: (r[6], r[1]))
        assert [(r[0], r[1], r[3] is None) for r in got_t] == [(r[0], r[1], r[3] is None) for r in want_s]
        nums = lambda rows: np.array([[r[2], r[3] or 0.0, r[4], r[5], r[6]] for r in rows])  # noqa: E731
        np.testing.assert_allclose(nums(got_t), nums(want_s), rtol=1e-8)
    # state survives a JSON round trip mid-stream
    tracker, copy = AlertTracker(after=after, clear=clear), AlertTracker(after=after, clear=clear)
    tracker.update(keys[:1000], names, t[:1000], v[:1000], f[:1000])
    copy.load_state_dict(json.loads(json.dumps(tracker.state_dict())))
    assert (tracker.update(keys[1000:], names, t[1000:], v[1000:], f[1000:])
            == copy.update(keys[1000:], names, t[1000:], v[1000:], f[1000:]))


@pytest.mark.parametrize("text", ["", "0", "2.5", "10x", "-3m"])
def test_span_refuses_bad_text(text):
    with pytest.raises(ValueError):
        Span.parse(text)


def test_a_noisy_reading_does_not_open_or_close_an_episode():
    tracker = AlertTracker(after=Span(readings=3), clear=Span(readings=3))
    f = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)
    events = tracker.update(np.zeros(20, dtype=np.intp), ["x"], np.arange(20.0), np.where(f, 120.0, 70.0), f)
    assert [(e["event"], e["start"], e["end"]) for e in events] == [("open", 6.0, None), ("close", 6.0, 16.0)]


# ---------------------------------------------------------------- the ward

def test_ward_is_seeded_interleaved_and_exposes_its_episodes():
    a, b = Ward(patients=8, minutes=20, seed=4), Ward(patients=8, minutes=20, seed=4)
    assert a.episodes() == b.episodes()
    arr = a.arrays()
    np.testing.assert_array_equal(arr["hr"], b.arrays()["hr"])
    assert (np.diff(arr["time"]) >= 0).all() and len(set(arr["key"][:8].tolist())) == 8
    big = Ward(patients=50, seed=0)
    eps, arr = big.episodes(), big.arrays()
    assert 5 <= len({e.key for e in eps}) < 50
    for e in eps:  # inside an episode the rate is high, before and after it is not
        mine = arr["key"] == e.key
        mid = mine & (arr["time"] > e.start + 20) & (arr["time"] < e.end - 20)
        assert arr["hr"][mid].min() >= 105


def run_keyed(batches, **kw):
    mon = KeyedMonitor(seed=0, **kw)
    parts = [mon.process(b) for b in batches]
    return mon, parts


def test_ward_of_50_every_episode_alerted_within_the_delay_and_no_false_alert():
    ward = Ward(patients=50, minutes=60, seed=0)
    truth = ward.episodes()
    after, clear = Span(seconds=60.0), Span(seconds=120.0)
    mon, parts = run_keyed(ward, alert_after=after, alert_clear=clear)
    alerts = [e for s in parts for e in s.alerts]
    opens = [e for e in alerts if e["event"] == "open"]
    closes = [e for e in alerts if e["event"] == "close"]
    with_episode = {e.key for e in truth}
    assert not [e for e in opens if e["key"] not in with_episode]
    assert len(opens) == len(closes) == len(truth)
    for ep in truth:
        mine = [e for e in closes if e["key"] == ep.key and e["start"] <= ep.end and e["end"] >= ep.start]
        assert len(mine) == 1, (ep, mine)
        e = mine[0]
        assert abs(e["start"] - ep.start) <= after.seconds and abs(e["end"] - ep.end) <= clear.seconds
        assert e["opened_at"] - ep.start <= 2 * after.seconds
        assert e["closed_at"] - ep.end <= 2 * clear.seconds
        assert e["peak"] >= ep.level - 5
    keys = mon.summary()["keys"]
    assert len(keys) == 50 and sum(k["episodes"] for k in keys.values()) == len(truth)
    assert all(set(k) == {"readings", "flags", "episodes", "accuracy"} for k in keys.values())


def interleaved(patients=6, minutes=30, seed=2, batch=97):
    return Ward(patients=patients, minutes=minutes, seed=seed, batch=batch)


def test_per_key_network_result_equals_the_patient_replayed_alone():
    ward = interleaved()
    mon, parts = run_keyed(ward, model="per-key", alert_after=Span(readings=4), alert_clear=Span(readings=6))
    p = np.concatenate([s.p for s in parts])
    arr = ward.arrays()
    for key in ("P001", "P004"):
        mine = arr["key"] == key
        alone = Batch(time=arr["time"][mine], x=arr["hr"][mine].reshape(-1, 1), y=np.full(mine.sum(), np.nan),
                      line=np.arange(mine.sum()), key=arr["key"][mine])
        mon1, parts1 = run_keyed([alone], model="per-key", alert_after=Span(readings=4), alert_clear=Span(readings=6))
        np.testing.assert_array_equal(p[mine], parts1[0].p)
        assert [e for s in parts for e in s.alerts if e["key"] == key] == list(parts1[0].alerts)
        assert mon.summary()["keys"][key] == mon1.summary()["keys"][key]


def test_shared_network_per_key_state_equals_the_patient_alone():
    """With a shared network the scores depend on every patient; the per-key state does not."""
    ward = interleaved()
    mon, parts = run_keyed(ward, model="shared")
    arr = ward.arrays()
    flags = np.concatenate([s.flag for s in parts])
    after, clear = Span(seconds=60.0), Span(seconds=120.0)
    for key in ("P000", "P003"):
        mine = arr["key"] == key
        k = mon.table.keys()[key]
        alone = RunningNormaliser()
        alone.update(arr["hr"][mine].reshape(-1, 1))
        np.testing.assert_allclose(mon.normaliser.mean_[k], alone.mean_, rtol=1e-12)
        np.testing.assert_allclose(mon.normaliser.var_[k], alone.var_, rtol=1e-9)
        tracker = AlertTracker(after=after, clear=clear)
        solo = tracker.update(np.zeros(mine.sum(), dtype=np.intp), [key], arr["time"][mine], arr["hr"][mine], flags[mine])
        assert [e for s in parts for e in s.alerts if e["key"] == key] == solo


def test_keyed_scores_do_not_depend_on_the_chunking():
    ward = interleaved(batch=100_000)
    whole = next(iter(ward))
    _, one = run_keyed([whole])
    rng = np.random.default_rng(5)
    _, many = run_keyed([whole.slice(a, b) for a, b in cuts(rng, len(whole), most=40)])
    p1, p2 = one[0].p, np.concatenate([s.p for s in many])
    np.testing.assert_allclose(p2, p1, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.concatenate([s.flag for s in many]), one[0].flag)
    assert [e for s in many for e in s.alerts] == list(one[0].alerts)


def test_unkeyed_stream_scores_exactly_as_the_plain_monitor(hr_values):
    batches = [Batch.of_values(hr_values[a:a + 100], first_line=a + 1) for a in range(0, 1000, 100)]
    plain = Monitor(seed=0)
    want = np.concatenate([plain.process(b).p for b in batches])
    mon, parts = run_keyed(batches)
    np.testing.assert_array_equal(np.concatenate([s.p for s in parts]), want)
    assert "keys" not in mon.summary() and mon.summary()["readings"] == 1000


def test_max_keys_bounds_the_state_and_counts_evictions():
    ward = interleaved(patients=10, minutes=10, batch=7)
    mon, parts = run_keyed(ward, max_keys=4)
    s = mon.summary()
    assert s["keys_held"] == 4 and len(s["keys"]) == 4 and s["evicted_keys"] > 0
    assert s["keys_seen"] == 4 + s["evicted_keys"]
    assert (mon.normaliser.n_seen_ > 0).sum() <= 4 and sum(len(p) for p in parts) == s["readings"]
    mon, parts = run_keyed([next(iter(interleaved(patients=10, minutes=5, batch=10_000)))], max_keys=3)
    assert sum(len(p) for p in parts) == 10 * 60 and mon.summary()["keys_held"] == 3  # a batch split to fit


def test_new_keys_cold_start_with_the_shared_network():
    """Patients joining a trained ward are scored right from their first readings."""
    old = Ward(patients=20, minutes=30, seed=0).arrays()
    new = Ward(patients=5, minutes=30, seed=9, episode_share=1.0).arrays()
    t0 = old["time"][-1] + 1
    mon, _ = run_keyed([Batch(time=old["time"], x=old["hr"].reshape(-1, 1), y=np.full(len(old["hr"]), np.nan),
                              line=np.arange(len(old["hr"])), key=old["key"])])
    key = np.array(["new-" + k for k in new["key"].tolist()], dtype=object)
    s = mon.process(Batch(time=new["time"] + t0, x=new["hr"].reshape(-1, 1), y=np.full(len(key), np.nan),
                          line=np.arange(len(key)), key=key))
    first = np.zeros(len(key), bool)
    for k in set(key.tolist()):
        first[np.flatnonzero(key == k)[:20]] = True
    assert (s.flag[first] == (s.label[first] > 0.5)).mean() >= 0.95


# ---------------------------------------------------------------- CLI

def test_cli_ward_alerts_only_and_file(tmp_path):
    alerts, summary = tmp_path / "alerts.jsonl", tmp_path / "s.json"
    r = CliRunner().invoke(main, ["replay", "--stream", "ward", "--patients", "12", "--n", "30", "--alert-after", "12",
                                  "--alert-clear", "1m", "--alerts", str(alerts), "--alerts-only", "--summary-json",
                                  str(summary), "-q"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and alerts.read_text().splitlines() == lines
    recs = [json.loads(ln) for ln in lines]
    assert {e["event"] for e in recs} <= {"open", "close"} and all({"key", "start", "end", "peak", "mean"} <= set(e) for e in recs)
    s = json.loads(summary.read_text())
    assert s["alert_after"] == "12" and len(s["keys"]) == 12 and s["episodes"] == sum(e["event"] == "open" for e in recs)


def test_cli_picks_the_patient_column_and_records_carry_the_key(tmp_path):
    path = tmp_path / "ward.csv"
    Ward(patients=3, minutes=5, seed=1).to_csv(path)
    r = CliRunner().invoke(main, ["replay", str(path), "--summary-json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.stderr
    assert "key column 'patient'" in r.stderr
    recs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(recs) == 180 and {rec["key"] for rec in recs} == {"P000", "P001", "P002"}
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["key_model"] == "shared" and sum(k["readings"] for k in s["keys"].values()) == 180


def test_cli_bad_alert_span_is_a_one_line_error():
    r = CliRunner().invoke(main, ["replay", "--stream", "ward", "--alert-after", "10x"])
    assert r.exit_code == 2
    err = r.stderr.strip().splitlines()
    assert "--alert-after" in err[-1] and "10x" in err[-1]
