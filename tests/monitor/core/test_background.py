"""Training on a worker thread: scores do not depend on timing, and the learner ends as without it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from models.learner import OnlineLearner
from models.manual_step import ManualStepLearner
from monitor.core.background_learner import BackgroundLearner
from monitor.core.labels import label
from monitor.core.monitor import Monitor
from streams import Batch


def _values(n: int = 1500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(90 + 6 * np.sin(np.arange(n) / 60) + rng.normal(0, 3, n), 2)


def _run(values: np.ndarray, sizes, *, lag: int | None, slow: float = 0.0, monkeypatch=None):
    mon = Monitor(seed=0)
    if lag is not None:
        mon.train_behind(lag)
    if slow and monkeypatch is not None:  # a worker that falls behind: the scorer must wait, not guess
        learn = OnlineLearner.learn_many

        def sluggish(self, x, y):
            time.sleep(slow)
            return learn(self, x, y)
        monkeypatch.setattr(OnlineLearner, "learn_many", sluggish)
    p, i = [], 0
    for k in sizes:
        if i >= len(values):
            break
        p.append(mon.process(Batch.of_values(values[i:i + k])).p)
        i += k
    summary = mon.summary()
    return np.concatenate(p), summary, mon.learner


@pytest.mark.parametrize("lag", [1, 16, 256])
def test_scores_are_the_same_whatever_the_timing_and_slicing(lag, monkeypatch):
    v = _values()
    ones = [1] * len(v)
    rng = np.random.default_rng(1)
    mixed = rng.integers(1, 40, len(v)).tolist()
    p1, s1, _ = _run(v, ones, lag=lag)
    p2, s2, _ = _run(v, mixed, lag=lag)
    p3, s3, _ = _run(v[:400], [3] * 400, lag=lag, slow=0.002, monkeypatch=monkeypatch)
    assert np.array_equal(p1, p2)
    assert np.array_equal(p1[:400], p3)
    for name in ("accuracy", "flags", "steps", "final_loss"):  # (log loss: sums in batch order)
        assert s1[name] == s2[name], name


def test_the_learner_ends_exactly_as_without_the_worker():
    v = _values()
    _, s_sync, sync = _run(v, [7] * len(v), lag=None)
    _, s_bg, bg = _run(v, [1] * len(v), lag=64)
    assert isinstance(bg, BackgroundLearner)
    a, b = sync.state_dict(), bg.state_dict()
    for name in ("n_seen", "n_steps", "n_skipped", "target", "replay_at", "warm_end"):
        assert a[name] == b[name], name
    for name, t in a["net"].items():
        assert np.array_equal(t.numpy(), b["net"][name].numpy()), name
    assert s_sync["steps"] == s_bg["steps"]
    bg.close()


def test_scores_lag_by_exactly_lag_readings():
    """Reading i is scored by the model of the last step that ended at or before i - lag."""
    v = _values(600)
    lag = 10
    mon = Monitor(seed=0)
    mon.train_behind(lag)
    got = np.concatenate([mon.process(Batch.of_values(v[i:i + 1])).p for i in range(len(v))])
    ref = ManualStepLearner(mon.learner.config, seed=0)  # the monitor's learner (hand-written step), stepped by hand
    y = label(v.reshape(-1, 1), np.full(len(v), np.nan))
    snaps, want = [(0, ref.frozen())], np.empty(len(v))
    i = 0
    while i < len(v):
        room = ref.room(v[i:].reshape(-1, 1), y[i:])  # with the readings: it ends after a wrong one (early step)
        k = min(room, len(v) - i)
        stepped = k == room
        ref.learn_many(v[i:i + k].reshape(-1, 1), y[i:i + k])
        i += k
        if stepped:
            snaps.append((i + lag, ref.frozen()))
    for j in range(len(v)):
        snap = [s for start, s in snaps if start <= j][-1]
        want[j] = snap.predict_proba_many(v[j:j + 1].reshape(-1, 1))[0]
    assert np.array_equal(got, want)


def test_a_failing_step_is_raised_on_the_scoring_side(monkeypatch):
    def boom(self, x, y):
        raise RuntimeError("step failed")
    monkeypatch.setattr(OnlineLearner, "learn_many", boom)
    mon = Monitor(seed=0)
    mon.train_behind(2)
    with pytest.raises(RuntimeError, match="step failed"):
        for i in range(50):
            mon.process(Batch.of_values(np.array([80.0 + i])))


def test_the_lag_schedule_grows_and_its_inverse_is_exact():
    from monitor.core.background_learner import Lag
    lag = Lag()
    ends = np.arange(0, 40_000)
    starts = ends + np.array([lag(int(e)) for e in ends])
    assert (np.diff(starts) >= 0).all()  # a later step never scores before an earlier one
    assert lag(0) == 1 and lag(6400) == 100 and lag(10**9) == 256
    for i in [0, 1, 2, 63, 64, 100, 6500, 16_639, 16_640, 39_000]:
        want = int(ends[starts <= i].max()) if (starts <= i).any() else -1
        assert lag.last_end(i) == want, i
    assert Lag.fixed(7)(0) == Lag.fixed(7)(10**6) == 7
    with pytest.raises(ValueError, match="least"):
        Lag(least=0)


def _scores(values, sizes, *, threaded: bool):
    mon = Monitor(seed=0)
    mon.train_behind(threaded=threaded)
    p, i = [], 0
    for k in sizes:
        p.append(mon.process(Batch.of_values(values[i:i + k])).p)
        i += k
    return np.concatenate(p), mon.summary(), mon


def test_training_inline_gives_the_scores_of_the_worker_thread():
    """A file (inline, big batches) scores exactly as the same readings fed live (worker, one by one)."""
    v = _values(3000, seed=2)
    rng = np.random.default_rng(3)
    cuts = rng.integers(1, 300, 100).tolist()
    cuts = cuts[:np.searchsorted(np.cumsum(cuts), len(v))]
    cuts.append(len(v) - sum(cuts))
    p_file, s_file, m_file = _scores(v, [len(v)], threaded=False)
    p_chunks, s_chunks, _ = _scores(v, cuts, threaded=False)
    p_live, s_live, m_live = _scores(v, [1] * len(v), threaded=True)
    assert np.array_equal(p_file, p_live) and np.array_equal(p_file, p_chunks)
    assert s_file["steps"] == s_live["steps"] > 0 and s_file["accuracy"] == s_live["accuracy"]
    assert not m_file.trains_behind and m_live.trains_behind
    assert m_file.learner._thread is None
    m_live.learner.close()


def test_scores_lag_the_synchronous_ones_only_by_the_schedule():
    """The lagged scores differ from the synchronous ones, and only after the first step."""
    v = _values(600)
    p_sync = Monitor(seed=0).process(Batch.of_values(v)).p
    p_lag, _, _ = _scores(v, [len(v)], threaded=False)
    assert p_sync[0] == p_lag[0]  # the first mini-batch is scored by the initial model either way
    assert not np.array_equal(p_sync, p_lag)
