"""Inline training (a file): the scorer looks ahead to the learner's next step, so it scores in few,
large slices, each reading once, with the scores of the slices of at most ``lag`` readings."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from models.network import NumpyScorer
from monitor.core.background_learner import BackgroundLearner, Lag
from monitor.core.monitor import Monitor
from test_background_clock import _scores


def _values(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(90 + 6 * np.sin(np.arange(n) / 300) + rng.normal(0, 2, n), 2)


def _run(values: np.ndarray, sizes, *, threaded: bool, lag=None) -> tuple[np.ndarray, Monitor]:
    p, mon = _scores(values, sizes, lag=lag, threaded=threaded)
    mon.summary()  # (waits for the worker)
    return p, mon


def _count(monkeypatch) -> dict:
    """Counts slices asked for (room) and rows scored by the network for the records and the early-step
    triggers."""
    seen = {"rooms": 0, "rows": 0}
    room, score = BackgroundLearner.room, NumpyScorer.predict_proba

    def counted_room(self, x=None, y=None):
        seen["rooms"] += 1
        return room(self, x, y)

    def counted_score(self, x):
        if sys._getframe(1).f_code.co_name != "_keep_margin":  # (the margin memory rescores each step's readings)
            seen["rows"] += len(x)
        return score(self, x)
    monkeypatch.setattr(BackgroundLearner, "room", counted_room)
    monkeypatch.setattr(NumpyScorer, "predict_proba", counted_score)
    return seen


@pytest.mark.parametrize("lag", [None, Lag(step=0.5), 3])
def test_inline_scores_are_those_of_the_worker_whatever_the_batches(lag):
    v = _values(6000)
    worker, mon = _run(v, [1] * 700 + [5300], threaded=True, lag=lag)
    mon.learner.close()
    whole, _ = _run(v, [6000], threaded=False, lag=lag)
    pieces, _ = _run(v, _sizes(6000, 2), threaded=False, lag=lag)
    assert np.array_equal(whole, worker)
    assert np.array_equal(pieces, worker)


def _sizes(n: int, seed: int) -> list[int]:
    sizes = np.random.default_rng(seed).integers(1, 900, n).tolist()
    out, total = [], 0
    for k in sizes:
        k = min(k, n - total)
        out.append(k)
        total += k
        if total == n:
            return out
    return out


def test_inline_slices_reach_past_the_lag_and_each_reading_is_scored_about_once(monkeypatch):
    v = _values(60_000)
    seen = _count(monkeypatch)
    p, _ = _run(v, [60_000], threaded=False)
    ahead = dict(seen)
    seen.update(rooms=0, rows=0)
    monkeypatch.setattr(BackgroundLearner, "_ahead", lambda self, x, y: None)  # as before: lag readings at most
    p_before, _ = _run(v, [60_000], threaded=False)
    assert np.array_equal(p, p_before)
    assert seen["rooms"] >= 60_000 / 256  # a slice every lag (<= 256) readings at most
    assert ahead["rooms"] * 4 < seen["rooms"], (ahead, seen)
    assert ahead["rows"] < 1.25 * 60_000, ahead  # (before issue 15's third session: twice)
