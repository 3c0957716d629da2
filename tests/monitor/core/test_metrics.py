"""PrequentialMetrics against river (one reading at a time) and scikit-learn, at every step."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from monitor.core.metrics import PrequentialMetrics, first_sustained
from tests.conftest import ROOT, random_splits



def make_stream(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (30% class 1), probabilities that carry signal, flags = p > 0.5.

    The first readings are class 0 and unflagged, so precision and recall start undefined; a few
    probabilities are exactly 0 or 1 (on both classes) so the log-loss clip is exercised.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = 1.0 / (1.0 + np.exp(-(2.0 * y - 1.0 + rng.normal(0.0, 1.2, n))))
    y[:5] = 0
    p[:5] = [0.1, 0.2, 0.05, 0.3, 0.0]
    hard = rng.choice(np.arange(5, n), size=12, replace=False)
    p[hard] = np.tile([0.0, 1.0], 6)
    return y, p, p > 0.5


def test_matches_river_one_reading_at_a_time_and_sklearn_auc():
    from sklearn.metrics import roc_auc_score  # here, not at collection: 1 s a worker
    y, p, flag = make_stream(0)
    assert set(p[y == 1]) >= {0.0, 1.0} and set(p[y == 0]) >= {0.0, 1.0}
    ours = PrequentialMetrics()
    from river import metrics as rm  # here, not at collection (0.75 s in every worker)

    acc, loss, prec, rec = rm.Accuracy(), rm.LogLoss(), rm.Precision(), rm.Recall()
    checked_auc = undefined_precision = 0
    for a, b in random_splits(np.random.default_rng(1), len(y), max_size=40):
        ours.update(y[a:b], p[a:b], flag[a:b])
        for yi, pi, fi in zip(y[a:b].tolist(), p[a:b].tolist(), flag[a:b].tolist()):
            acc.update(bool(yi), bool(fi))
            loss.update(bool(yi), pi)
            prec.update(bool(yi), bool(fi))
            rec.update(bool(yi), bool(fi))
        if b == 0:
            continue
        r = ours.result()
        assert r["readings"] == b
        assert math.isclose(r["accuracy"], acc.get(), rel_tol=1e-9)
        assert math.isclose(r["log_loss"], loss.get(), rel_tol=1e-9)
        assert math.isclose(r["precision"], prec.get(), rel_tol=1e-9)  # 0.0 == 0.0 early on
        assert math.isclose(r["recall"], rec.get(), rel_tol=1e-9)
        assert r["flags"] == int(flag[:b].sum()) == r["tp"] + r["fp"]
        undefined_precision += r["flags"] == 0
        assert r["tp"] + r["fp"] + r["tn"] + r["fn"] == b
        if 0 < y[:b].sum() < b:
            assert abs(r["roc_auc"] - roc_auc_score(y[:b], p[:b])) < 1e-3
            checked_auc += 1
        else:
            assert r["roc_auc"] is None
    assert checked_auc > 100 and undefined_precision >= 3


def test_log_loss_clip_is_rivers_not_sklearns():
    """p is clipped to [1e-15, 1 - 1e-15] as river does; sklearn clips at float64 eps (2.2e-16).

    Inside the clip the two agree; a confident miss (p == 0 on class 1) costs -log(1e-15) = 34.54
    here and in river, but -log(2.2e-16) = 36.04 in sklearn.
    """
    from sklearn.metrics import log_loss  # here, not at collection: 1 s a worker
    m = PrequentialMetrics()
    m.update(np.array([1, 0, 1]), np.array([0.7, 0.2, 0.9]), np.array([True, False, True]))
    assert math.isclose(m.result()["log_loss"], log_loss([1, 0, 1], [0.7, 0.2, 0.9]), rel_tol=1e-12)
    miss = PrequentialMetrics()
    miss.update(np.array([1]), np.array([0.0]), np.array([False]))
    from river import metrics as rm  # here, not at collection (0.75 s in every worker)

    river_loss = rm.LogLoss()
    river_loss.update(True, 0.0)
    assert miss.result()["log_loss"] == river_loss.get() == -math.log(1e-15)
    assert log_loss([1, 0], [0.0, 0.0]) * 2 == pytest.approx(-math.log(np.finfo(float).eps))


def test_auc_equals_river_rocauc_with_matching_thresholds():
    """river's ROCAUC with T thresholds i / (T - 1) is a trapezoid over T - 1 equal bins: the same
    estimate as ours with n_bins = T - 1, so the two agree to rounding.

    river's default (n_thresholds=10) is a coarse approximation: on this stream it reads 0.8560
    against sklearn's exact 0.8611 (off by 5.1e-3), where ours with the default 4096 bins reads
    0.8611242 (off by 4.2e-6).
    """
    from sklearn.metrics import roc_auc_score  # here, not at collection: 1 s a worker
    y, p, flag = make_stream(5, n=1500)
    ours = PrequentialMetrics(n_bins=64)
    from river import metrics as rm  # here, not at collection (0.75 s in every worker)

    river_auc = rm.ROCAUC(n_thresholds=65)
    for a, b in random_splits(np.random.default_rng(6), len(y), max_size=200):
        ours.update(y[a:b], p[a:b], flag[a:b])
        for yi, pi in zip(y[a:b].tolist(), p[a:b].tolist()):
            river_auc.update(bool(yi), pi)
        if 0 < y[:b].sum() < b:
            assert math.isclose(ours.result()["roc_auc"], river_auc.get(), rel_tol=1e-9)
    fine = PrequentialMetrics()
    fine.update(y, p, flag)
    assert abs(fine.result()["roc_auc"] - roc_auc_score(y, p)) < 1e-4


def test_one_class_stream_gives_no_auc_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for label in (0, 1):
            m = PrequentialMetrics()
            m.update(np.full(20, label), np.linspace(0, 1, 20), np.linspace(0, 1, 20) > 0.5)
            r = m.result()
            assert r["roc_auc"] is None
            assert r["accuracy"] == 0.5 and r["readings"] == 20
            assert (r["precision"], r["recall"]) == ((1.0, 0.5) if label else (0.0, 0.0))


def test_empty_metrics():
    m = PrequentialMetrics()
    m.update(np.empty(0), np.empty(0), np.empty(0, dtype=bool))
    assert m.result() == {
        "readings": 0, "accuracy": None, "log_loss": None, "roc_auc": None, "precision": 0.0,
        "recall": 0.0, "flags": 0, "tp": 0, "fp": 0, "tn": 0, "fn": 0,
    }
    assert repr(m) == "PrequentialMetrics(n_bins=4096, readings=0)"
    assert vars(m) == {"n_bins": 4096}  # the constructor only stores its argument


def test_state_dict_round_trip_through_json():
    y, p, flag = make_stream(2, n=800)
    m = PrequentialMetrics()
    m.update(y[:300], p[:300], flag[:300])
    state = json.loads(json.dumps(m.state_dict()))
    other = PrequentialMetrics()
    other.load_state_dict(state)
    assert other.result() == m.result()
    m.update(y[300:], p[300:], flag[300:])
    other.update(y[300:], p[300:], flag[300:])
    assert other.result() == m.result()
    assert repr(other) == repr(m)
    # an empty state is JSON-able and loads as empty
    fresh = PrequentialMetrics()
    fresh.load_state_dict(json.loads(json.dumps(PrequentialMetrics().state_dict())))
    assert fresh.result()["readings"] == 0 and fresh.result()["accuracy"] is None


def test_load_state_dict_checks_bins_and_counts():
    m = PrequentialMetrics(n_bins=16)
    m.update(np.array([0, 1]), np.array([0.2, 0.7]), np.array([False, True]))
    state = m.state_dict()
    with pytest.raises(ValueError, match=r"n_bins=16.*n_bins=4096"):
        PrequentialMetrics().load_state_dict(state)
    with pytest.raises(ValueError, match="inconsistent"):
        PrequentialMetrics(n_bins=16).load_state_dict(dict(state, tp=5))


def test_inputs_are_not_mutated():
    y, p, flag = make_stream(3, n=200)
    copies = [a.copy() for a in (y, p, flag)]
    for a in (y, p, flag):
        a.setflags(write=False)
    PrequentialMetrics().update(y, p, flag)
    for a, c in zip((y, p, flag), copies):
        np.testing.assert_array_equal(a, c)


def test_bad_inputs_name_the_rows():
    m = PrequentialMetrics()
    ok_p, ok_f = np.array([0.1, 0.2, 0.3]), np.array([False, False, True])
    with pytest.raises(ValueError, match=r"y_true must hold only 0 and 1.*rows \[1\] \(values \[nan\]\)"):
        m.update(np.array([0.0, np.nan, 1.0]), ok_p, ok_f)
    with pytest.raises(ValueError, match=r"p must be probabilities in \[0, 1\].*rows \[0, 2\]"):
        m.update(np.array([0, 1, 1]), np.array([1.5, 0.2, np.nan]), ok_f)
    with pytest.raises(ValueError, match="same shape"):
        m.update(np.array([0, 1]), ok_p, ok_f)
    assert m.result()["readings"] == 0  # nothing was counted


def brute_first_sustained(correct: list[bool], window: int, level: float) -> int | None:
    for t in range(window, len(correct) + 1):
        if sum(correct[t - window:t]) / window >= level:
            return t
    return None


def test_first_sustained_matches_brute_force():
    hypothesis = pytest.importorskip("hypothesis")  # the `test` extra; the rest of the file runs without it
    st = hypothesis.strategies

    @hypothesis.settings(derandomize=True, database=None, max_examples=300, deadline=None)
    @hypothesis.given(
        correct=st.lists(st.booleans(), max_size=120),
        window=st.integers(1, 25),
        level=st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), st.floats(0.0, 1.0)),
    )
    def check(correct, window, level):
        expected = brute_first_sustained(correct, window, level)
        assert first_sustained(np.array(correct, dtype=bool), window, level) == expected
        assert first_sustained(np.array(correct, dtype=np.int64), window, level) == expected

    check()


def test_first_sustained_rejects_bad_arguments():
    with pytest.raises(ValueError, match="window"):
        first_sustained(np.ones(5, dtype=bool), 0, 0.9)
    with pytest.raises(ValueError, match="level"):
        first_sustained(np.ones(5, dtype=bool), 2, 1.5)
    with pytest.raises(ValueError, match="0 and 1"):
        first_sustained(np.array([0, 2, 1]), 2, 0.5)


def test_import_does_not_pull_torch_or_pandas():
    code = "import sys, monitor.core.metrics; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
