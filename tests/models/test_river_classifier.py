"""OnlineMLPClassifier: river's own estimator checks, label mapping, mini-batch equivalences."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from models import OnlineMLPClassifier
from models.learner import OnlineLearner


def _checks(model):
    """river's checks for this model, each once (river repeats them on a copy of Phishing whose
    labels are numpy bools; the labels are tested separately below)."""
    from river import checks  # river's modules are imported where used, not at collection (~1 s of CPU
    # in every xdist worker)

    done = set()
    for check in checks.yield_checks(model):
        if check.__name__ not in done and check.__name__ not in model._unit_test_skips():
            done.add(check.__name__)
            yield check


def test_river_estimator_checks():
    model = OnlineMLPClassifier()
    names = []
    for check in _checks(model):
        check(model.clone())
        names.append(check.__name__)
    # the mini-batch and binary checks apply, so they ran
    for must in ("check_predict_proba_many_matches_predict_proba_one", "check_learn_many_matches_learn_one",
                 "check_predict_proba_one_binary", "check_emerging_features", "check_disappearing_features",
                 "check_pickling", "check_predict_one_before_any_learn", "check_shuffle_features_no_impact"):
        assert must in names


def test_is_one_implementation():
    model = OnlineMLPClassifier(seed=3)
    model.learn_one({"a": 1.0}, True)
    assert isinstance(model.learner_, OnlineLearner)


def _separable(n, seed, first_true):
    rng = np.random.default_rng(seed)
    xs = rng.normal(0, 1, n)
    xs[0] = abs(xs[0]) if first_true else -abs(xs[0])
    return [({"u": float(v), "noise": float(rng.normal())}, v > 0) for v in xs]


@pytest.mark.parametrize("first_true", [True, False])
@pytest.mark.parametrize("kind", [bool, np.bool_, int])
def test_labels_cannot_come_out_inverted(first_true, kind):
    """Whatever label comes first and however it is typed, P(True) is high where y is True."""
    model = OnlineMLPClassifier(seed=0)
    for x, y in _separable(300, 1, first_true):
        model.learn_one(x, kind(y))
    assert model.predict_proba_one({"u": 2.0, "noise": 0.0})[True] > 0.9
    assert model.predict_proba_one({"u": -2.0, "noise": 0.0})[True] < 0.1
    assert model.predict_one({"u": 2.0, "noise": 0.0}) is True


def test_phishing_beats_the_majority_class_in_a_pipeline():
    from river import datasets, evaluate, metrics, preprocessing

    data = datasets.Phishing().take(500)
    model = preprocessing.StandardScaler() | OnlineMLPClassifier(seed=0)
    acc = evaluate.progressive_val_score(data, model, metrics.Accuracy()).get()
    ys = [y for _, y in datasets.Phishing().take(500)]
    majority = max(np.mean(ys), 1 - np.mean(ys))
    assert acc > majority + 0.2  # an inverted mapping would score far below the majority class


def test_bad_labels_are_refused():
    model = OnlineMLPClassifier()
    with pytest.raises(ValueError, match="True/False or 1/0, got 'yes'"):
        model.learn_one({"a": 1.0}, "yes")
    with pytest.raises(ValueError, match="got 2"):
        model.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([0, 2]))


def test_before_learning_it_says_the_prior_and_keys_are_exactly_false_true():
    model = OnlineMLPClassifier(prior=0.2)
    assert model.predict_proba_one({"a": 1.0}) == {False: 0.8, True: 0.2}
    frame = model.predict_proba_many(pd.DataFrame({"a": [1.0, 2.0]}))
    assert list(frame.columns) == [False, True]
    model.learn_one({"a": 1.0}, 1)
    assert set(model.predict_proba_one({"a": 1.0})) == {False, True}


def _stream(n=120, seed=5):
    """Rows whose features come and go, with NaN and None among the values."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = {"a": float(rng.normal(3, 2)), "b": float(rng.normal(-1, 1))}
        if i >= 30:
            x["c"] = float(rng.normal(10, 3))  # emerges
        if 60 <= i < 80:
            del x["a"]  # disappears for a while
        if i % 17 == 0:
            x["b"] = math.nan
        rows.append((x, bool(x.get("a", 0) + (x["b"] if x["b"] == x["b"] else 0) > 2)))
    return rows


@pytest.mark.parametrize("max_features", [None, 3, 2])
def test_learn_many_equals_learn_one(max_features):
    rows = _stream()
    one = OnlineMLPClassifier(seed=1, max_features=max_features)
    many = OnlineMLPClassifier(seed=1, max_features=max_features)
    for x, y in rows:
        one.learn_one(x, y)
    for start in (0, 7, 40, 77, 100):  # uneven slices across every change of features
        stop = {0: 7, 7: 40, 40: 77, 77: 100, 100: 120}[start]
        part = rows[start:stop]
        many.learn_many(pd.DataFrame([x for x, _ in part]), pd.Series([y for _, y in part]))
    assert one.slots_ == many.slots_ and one.n_ignored_ == many.n_ignored_
    probe = [x for x, _ in rows[::9]]
    for x in probe:
        assert one.predict_proba_one(x)[True] == pytest.approx(many.predict_proba_one(x)[True], abs=1e-9)


def test_schema_and_slots():
    model = OnlineMLPClassifier(seed=0)
    for x, y in _stream():
        model.learn_one(x, y)
    assert model.slots_ == {"a": 0, "b": 1}  # frozen by the first reading: "c" emerged too late
    assert model.n_ignored_ == 90
    roomy = OnlineMLPClassifier(seed=0, max_features=3)
    for x, y in _stream():
        roomy.learn_one(x, y)
    assert roomy.slots_ == {"a": 0, "b": 1, "c": 2} and roomy.n_ignored_ == 0


def test_predict_proba_many_equals_per_row_and_is_pure():
    rows = _stream()
    model = OnlineMLPClassifier(seed=2, max_features=3)
    for x, y in rows[:90]:
        model.learn_one(x, y)
    X = pd.DataFrame([x for x, _ in rows[90:]], index=range(500, 530))
    before = pickle.dumps(model)
    many = model.predict_proba_many(X)
    assert pickle.dumps(model) == before
    assert list(many.index) == list(X.index)
    for i, (x, _) in enumerate(rows[90:]):
        one = model.predict_proba_one(x)
        assert one[True] == pytest.approx(many[True].iloc[i], abs=1e-12)
        assert one[False] + one[True] == pytest.approx(1.0)
    assert model.predict_many(X).tolist() == [model.predict_one(x) for x, _ in rows[90:]]


def test_pickle_round_trip_continues_identically():
    rows = _stream()
    model = OnlineMLPClassifier(seed=4)
    for x, y in rows[:50]:
        model.learn_one(x, y)
    copy = pickle.loads(pickle.dumps(model))
    for x, y in rows[50:]:
        model.learn_one(x, y)
        copy.learn_one(x, y)
    assert model.predict_proba_one(rows[0][0]) == copy.predict_proba_one(rows[0][0])
    assert model.learner_.n_steps_ == copy.learner_.n_steps_ > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_beat_logistic_regression_on_phishing_and_learn_bananas(seed):
    """The figures in the README (benchmarks/river_datasets.py): at least LogisticRegression's
    accuracy on Phishing, and at least 0.85 on Bananas, which a linear model cannot reach."""
    from river import datasets, evaluate, linear_model, metrics, preprocessing

    def accuracy(dataset, clf):
        return evaluate.progressive_val_score(dataset, preprocessing.StandardScaler() | clf, metrics.Accuracy()).get()

    lr = accuracy(datasets.Phishing(), linear_model.LogisticRegression())
    assert accuracy(datasets.Phishing(), OnlineMLPClassifier(seed=seed)) >= lr
    assert accuracy(datasets.Bananas(), OnlineMLPClassifier(seed=seed)) >= 0.85
