"""monitor.keyed.alerts: alert episodes against reading-by-reading rules, spans, hysteresis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.config import Span
from monitor.keyed.alerts import AlertTracker
from tests.conftest import cuts


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


# The scan that folds runs in bulk (issue 15) against the run-by-run scan it replaced
class RunByRun(AlertTracker):
    """The scan as it was before issue 15: every run of flags or normal readings one Python call."""

    def _scan(self, k, key, t, v, f, pos, events) -> None:
        edges = np.flatnonzero(f[1:] != f[:-1]) + 1
        for a, b in zip(np.r_[0, edges].tolist(), np.r_[edges, len(f)].tolist()):
            if f[a]:
                self._flag_run(k, key, t[a:b], v[a:b], pos[a:b], events)
            else:
                self._normal_run(k, key, t[a:b], v[a:b], pos[a:b], events)


SPANS = [(Span(readings=3), Span(readings=4)), (Span(readings=1), Span(readings=1)),
         (Span(seconds=2.0), Span(seconds=3.0)), (Span(seconds=0.0), Span(seconds=1.5))]


@pytest.mark.parametrize("after, clear", SPANS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("keys", [1, 3])
def test_same_records_and_state_as_run_by_run(after, clear, seed, keys):
    rng = np.random.default_rng(seed)
    n = 3000
    stay = rng.uniform(0.5, 0.95)  # how sticky flags are: from flickering to long runs
    flag = np.empty(n, bool)
    flag[0] = False
    for i in range(1, n):
        flag[i] = flag[i - 1] if rng.random() < stay else not flag[i - 1]
    time = np.cumsum(rng.choice([0.5, 0.5, 1.0, -0.25], n))  # mostly forward, sometimes back
    value = rng.normal(90, 8, n)
    ids = rng.integers(0, keys, n)
    names = [f"k{i}" for i in range(keys)]
    fast, slow = AlertTracker(after=after, clear=clear), RunByRun(after=after, clear=clear)
    cuts = np.sort(rng.choice(np.arange(1, n), 25, replace=False))
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, n]):
        args = (ids[a:b], names, time[a:b], value[a:b], flag[a:b])
        assert fast.update(*args) == slow.update(*args)
    assert fast.state_dict() == slow.state_dict()
    assert slow.n_episodes_ > 0
