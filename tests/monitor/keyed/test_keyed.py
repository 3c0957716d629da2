"""monitor.keyed.keyed_monitor: the keyed monitor (per-key state, key models, bounded keys, alerts on a ward)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.config import Span
from monitor.keyed.alerts import AlertTracker
from monitor.keyed.keyed_monitor import KeyedMonitor
from monitor.core.monitor import Monitor
from models.normaliser import RunningNormaliser
from streams import Batch
from streams.ward import Ward
from tests.conftest import cuts


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
    ward = interleaved(patients=3)  # one network per patient: each warms up alone
    mon, parts = run_keyed(ward, model="per-key", alert_after=Span(readings=4), alert_clear=Span(readings=6))
    p = np.concatenate([s.p for s in parts])
    arr = ward.arrays()
    for key in ("P001", "P002"):
        mine = arr["key"] == key
        alone = Batch(time=arr["time"][mine], x=arr["hr"][mine].reshape(-1, 1), y=np.full(mine.sum(), np.nan),
                      line=np.arange(mine.sum()), key=arr["key"][mine])
        mon1, parts1 = run_keyed([alone], model="per-key", alert_after=Span(readings=4), alert_clear=Span(readings=6))
        np.testing.assert_array_equal(p[mine], parts1[0].p)
        assert [e for s in parts for e in s.alerts if e["key"] == key] == list(parts1[0].alerts)
        assert mon.summary()["keys"][key] == mon1.summary()["keys"][key]


@pytest.fixture(scope="module")
def shared_run():
    """The interleaved ward through a shared network in slices of 97 readings (tests only read it)."""
    return run_keyed(interleaved(), model="shared")


def test_shared_network_per_key_state_equals_the_patient_alone(shared_run):
    """With a shared network the scores depend on every patient; the per-key state does not."""
    ward = interleaved()
    mon, parts = shared_run
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


def test_keyed_scores_do_not_depend_on_the_chunking(shared_run):
    """Random slices of 1-40 readings score as the slices of 97 of shared_run."""
    whole = next(iter(interleaved(batch=100_000)))
    rng = np.random.default_rng(5)
    _, many = run_keyed([whole.slice(a, b) for a, b in cuts(rng, len(whole), most=40)])
    _, by97 = shared_run
    np.testing.assert_allclose(np.concatenate([s.p for s in many]), np.concatenate([s.p for s in by97]),
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.concatenate([s.flag for s in many]), np.concatenate([s.flag for s in by97]))
    assert [e for s in many for e in s.alerts] == [e for s in by97 for e in s.alerts]


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
    # 10 patients round-robin through 4 slots: every reading but the first 4 evicts the least recent key
    assert s["keys_held"] == 4 and len(s["keys"]) == 4 and s["evicted_keys"] == 1196
    assert s["keys_seen"] == 4 + s["evicted_keys"] == s["readings"] == 1200
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


def test_per_key_learners_run_the_monitors_loop_so_an_unscoreable_reading_is_finalised(monkeypatch):
    """Per-key mode scores through Monitor.test_then_train: a NaN score becomes 0.5 and is counted, as unkeyed."""
    from models.learner import OnlineLearner

    score = OnlineLearner.predict_proba_many
    monkeypatch.setattr(OnlineLearner, "predict_proba_many",
                        lambda self, x: np.where(x[:, 0] >= 1e300, np.nan, score(self, x)))
    x = np.array([[80.0], [1e300], [95.0], [88.0], [1e301], [99.0]])
    b = Batch(time=np.arange(6.0), x=x, y=np.full(6, np.nan), line=np.arange(1, 7),
              key=np.array(list("ababab"), dtype=object))
    mon = KeyedMonitor(seed=0, model="per-key")
    s = mon.process(b)
    assert not np.isnan(s.p).any() and s.p[[1, 4]].tolist() == [0.5, 0.5]
    summary = mon.summary()
    assert summary["nan_scores"] == 2 and summary["steps"] > 0 and summary["final_loss"] is not None
