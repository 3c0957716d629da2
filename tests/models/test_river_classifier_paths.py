"""OnlineMLPClassifier's per-sample paths (issue 18's time target): the folded one-row score, predict_one
without the dict, pending rows kept as lists and added to the running means when handed on."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from models import OnlineMLPClassifier


def _rows(n=150, seed=7, missing=True):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = {"a": float(rng.normal(2, 3)), "b": float(rng.normal(-1, 2)), "c": float(rng.normal())}
        if missing and i % 11 == 3:
            x["b"] = math.nan
        if missing and i % 13 == 5:
            del x["a"]
        out.append((x, x.get("a", 2.0) - x["c"] > 2.0))
    return out


def test_equal_seeds_give_equal_predictions_and_other_seeds_do_not():
    rows = _rows()
    models = [OnlineMLPClassifier(seed=s) for s in (3, 3, 4)]
    for x, y in rows:
        for m in models:
            m.learn_one(x, y)
    probe = [x for x, _ in rows[::7]]
    p = [[m.predict_proba_one(x)[True] for x in probe] for m in models]
    assert p[0] == p[1]
    assert p[0] != p[2]


def test_predict_one_is_the_larger_probability():
    model = OnlineMLPClassifier(seed=0)
    for x, y in _rows():
        model.learn_one(x, y)
    for x, _ in _rows(60, seed=8):
        proba = model.predict_proba_one(x)
        assert model.predict_one(x) is max(proba, key=proba.get)
    # a tie says False, as max over {False: 0.5, True: 0.5} does (the prior, before learning)
    assert OnlineMLPClassifier(prior=0.5).predict_one({"a": 1.0}) is False


def test_one_row_score_equals_the_learners_row_wise_score():
    """The folded (d + 1, h) product scores a row as the learner's float64 row-wise scorer, to rounding."""
    model = OnlineMLPClassifier(seed=1, max_features=3)
    for x, y in _rows():
        model.learn_one(x, y)
    X = pd.DataFrame([x for x, _ in _rows(40, seed=9)])
    many = model.predict_proba_many(X)[True].to_numpy()
    one = np.array([model.predict_proba_one(row.dropna().to_dict())[True] for _, row in X.iterrows()])
    np.testing.assert_allclose(one, many, rtol=0, atol=1e-12)


@pytest.mark.parametrize("normalise", [False, True])
def test_missing_values_take_the_mean_of_every_row_learned_so_far(normalise):
    """Rows still waiting for a mini-batch count in the running means, for scoring and for filling."""
    rows = _rows(missing=False)
    model = OnlineMLPClassifier(seed=2, normalise=normalise)
    for x, y in rows[:37]:  # 37: some rows wait in the buffer
        model.learn_one(x, y)
    assert model._pend_rows  # the case under test
    means = {k: np.mean([x[k] for x, _ in rows[:37]]) for k in "abc"}
    full = {"a": means["a"], "b": 0.5, "c": -1.0}
    before = pickle.dumps(model)
    assert model.predict_proba_one({"b": 0.5, "c": -1.0}) == pytest.approx(model.predict_proba_one(full), abs=1e-12)
    frame = model.predict_proba_many(pd.DataFrame({"a": [math.nan], "b": [0.5], "c": [-1.0]}))
    assert frame[True].iloc[0] == pytest.approx(model.predict_proba_one(full)[True], abs=1e-12)
    assert pickle.dumps(model) == before  # scoring changed nothing
    # learning a row with a missing value fills it with the mean of all 37 rows before it
    model.learn_one({"b": 0.5, "c": -1.0}, True)
    assert model._pend_rows[-1][model.slots_["a"]] == pytest.approx(means["a"], abs=1e-12)
    s, c = model._unsettled()
    sums, counts = model._sum + s, model._count + c
    j = model.slots_
    assert counts[j["a"]] == 37 and counts[j["b"]] == counts[j["c"]] == 38  # a missing value is not counted
    assert sums[j["a"]] == pytest.approx(sum(x["a"] for x, _ in rows[:37]), abs=1e-9)
    assert sums[j["b"]] == pytest.approx(sum(x["b"] for x, _ in rows[:37]) + 0.5, abs=1e-9)
