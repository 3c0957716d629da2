"""RunningNormaliser against oracles at every step: numpy on everything seen, and river."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from models.normaliser import RunningNormaliser
from tests.conftest import ROOT, random_splits



@pytest.fixture
def stream() -> np.ndarray:
    """600 seeded readings of 3 features on different scales (heart rate, a z-score, a big one)."""
    rng = np.random.default_rng(42)
    return np.column_stack([
        rng.normal(92.0, 5.0, 600),
        rng.normal(0.0, 1.0, 600),
        rng.normal(3e4, 250.0, 600),
    ])


def test_matches_numpy_after_every_batch(stream):
    rng = np.random.default_rng(0)
    splits = random_splits(rng, len(stream))
    sizes = {b - a for a, b in splits}
    assert {0, 1} <= sizes and max(sizes) > 1
    norm = RunningNormaliser()
    for a, b in splits:
        norm.update(stream[a:b])
        if b == 0:
            continue
        seen = stream[:b]
        assert norm.n_seen_ == b
        np.testing.assert_allclose(norm.mean_, np.mean(seen, axis=0), rtol=1e-9, atol=0)
        np.testing.assert_allclose(norm.std_, np.std(seen, axis=0), rtol=1e-9, atol=0)
        np.testing.assert_allclose(norm.var_, np.var(seen, axis=0), rtol=1e-9, atol=0)


def test_matches_river_standard_scaler_learn_one(stream):
    rng = np.random.default_rng(1)
    from river import preprocessing  # here, not at collection: 1 s of CPU in every worker

    ours, river_scaler = RunningNormaliser(), preprocessing.StandardScaler()
    for a, b in random_splits(rng, len(stream)):
        ours.update(stream[a:b])
        for row in stream[a:b]:  # river: one reading at a time (the oracle, not the code under test)
            river_scaler.learn_one(dict(enumerate(row.tolist())))
        if b == 0:
            continue
        d = stream.shape[1]
        np.testing.assert_allclose(ours.mean_, [river_scaler.means[j] for j in range(d)], rtol=1e-9, atol=0)
        np.testing.assert_allclose(ours.var_, [river_scaler.vars[j] for j in range(d)], rtol=1e-9, atol=0)


def test_large_mean_is_exact_where_sum_of_squares_is_not():
    """Mean 1e6, std 1: river's learn_many computes the batch variance as E[x^2] - E[x]^2.

    Measured with this seed (river 0.26.1, 4,000 readings, batches of 100): river's std is off
    from np.std by 2.9e-5 relative (its variance by 5.9e-5); ours by 1.9e-12. River's error grows
    with the batch size: 9e-7 with batches of 10, 2.4e-4 with batches of 1,000; with batches of one
    reading its formula is exact (x^2 - x^2 = 0, 1.4e-11).
    """
    rng = np.random.default_rng(2024)
    x = 1e6 + rng.standard_normal((4000, 1))
    from river import preprocessing  # here, not at collection: 1 s of CPU in every worker

    ours, river_scaler = RunningNormaliser(), preprocessing.StandardScaler()
    for a in range(0, len(x), 100):
        ours.update(x[a:a + 100])
        river_scaler.learn_many(pd.DataFrame({"hr": x[a:a + 100, 0]}))
    truth = np.std(x)
    ours_err = abs(ours.std_[0] - truth) / truth
    river_err = abs(river_scaler.vars["hr"] ** 0.5 - truth) / truth
    assert ours_err < 1e-9
    assert river_err > 1e-6  # measurably off: 2.9e-5 here
    assert river_err > 1000 * ours_err
    # the means agree: only the variance suffers from the sum of squares
    assert abs(river_scaler.means["hr"] - ours.mean_[0]) / 1e6 < 1e-12


def test_constant_feature_transforms_to_zero_not_nan():
    x = np.column_stack([np.full(50, 0.1), np.full(50, 1e6 + 0.3), np.linspace(60, 120, 50)])
    norm = RunningNormaliser()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning either
        for a in range(0, 50, 7):
            norm.update(x[a:a + 7])
            assert norm.var_[0] == 0.0 and norm.var_[1] == 0.0
            z = norm.transform(x)
            assert np.isfinite(z).all()
            assert (z[:, :2] == 0.0).all()
    assert norm.mean_[:2].tolist() == [0.1, 1e6 + 0.3]  # exact, thanks to the shift by the first row
    np.testing.assert_allclose(z[:, 2], (x[:, 2] - x[:, 2].mean()) / x[:, 2].std(), rtol=1e-9)


def test_single_reading_gives_zero_std_and_zero_transform():
    norm = RunningNormaliser()
    norm.update(np.array([[91.0, -3.0]]))
    mean, std = norm.get()
    assert mean.tolist() == [91.0, -3.0] and std.tolist() == [0.0, 0.0]
    assert norm.transform(np.array([[200.0, 5.0]])).tolist() == [[0.0, 0.0]]


def test_not_fitted_transform_is_the_centre():
    norm = RunningNormaliser()
    norm.update(np.empty((0, 2)))  # an empty batch does not fit anything
    z = norm.transform(np.array([[91.0, 3.0], [80.0, 1.0], [70.0, 2.0]]))
    assert z.dtype == np.float64 and z.shape == (3, 2) and (z == 0.0).all()
    assert norm.transform(np.array([91.0, 3.0])).tolist() == [0.0, 0.0]
    assert not hasattr(norm, "mean_")
    with pytest.raises(ValueError, match="not fitted"):
        norm.get()


def test_state_dict_round_trip_through_json(stream):
    norm = RunningNormaliser()
    norm.update(stream[:123])
    state = json.loads(json.dumps(norm.state_dict()))
    assert set(state) == {"n_seen", "mean", "var"}
    other = RunningNormaliser()
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.transform(stream), norm.transform(stream))
    # and they go on identically
    norm.update(stream[123:])
    other.update(stream[123:])
    np.testing.assert_array_equal(other.transform(stream), norm.transform(stream))
    assert other.n_seen_ == norm.n_seen_ == len(stream)
    assert repr(other) == repr(norm)


def test_state_dict_round_trip_when_not_fitted():
    state = json.loads(json.dumps(RunningNormaliser().state_dict()))
    norm = RunningNormaliser()
    norm.update(np.ones((3, 1)))
    norm.load_state_dict(state)  # back to not fitted
    assert not hasattr(norm, "n_seen_")
    assert norm.transform(np.array([[5.0, 6.0]])).tolist() == [[0.0, 0.0]]


def test_load_state_dict_rejects_inconsistent_state():
    with pytest.raises(ValueError, match="same length"):
        RunningNormaliser().load_state_dict({"n_seen": 3, "mean": [1.0, 2.0], "var": [1.0]})
    with pytest.raises(ValueError, match="var >= 0"):
        RunningNormaliser().load_state_dict({"n_seen": 3, "mean": [1.0], "var": [-1.0]})


def test_inputs_are_not_mutated(stream):
    x = stream[:40].copy()
    x.setflags(write=False)  # any write into the caller's array would raise
    norm = RunningNormaliser()
    norm.update(x)
    z = norm.transform(x)
    np.testing.assert_array_equal(x, stream[:40])
    assert not np.shares_memory(z, x)
    mean, std = norm.get()
    mean[:] = 0.0
    std[:] = 0.0
    assert (norm.mean_ != 0.0).all() and (norm.std_ != 0.0).all()  # get() returned copies


def test_different_batch_splits_agree(stream):
    a, b = RunningNormaliser(), RunningNormaliser()
    for lo, hi in random_splits(np.random.default_rng(3), len(stream)):
        a.update(stream[lo:hi])
    for lo, hi in random_splits(np.random.default_rng(4), len(stream), max_size=60):
        b.update(stream[lo:hi])
    whole = RunningNormaliser()
    whole.update(stream)
    for other in (b, whole):
        np.testing.assert_allclose(a.mean_, other.mean_, rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.var_, other.var_, rtol=1e-12, atol=0)


def test_changing_number_of_features_names_both_shapes():
    norm = RunningNormaliser()
    norm.update(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"shape \(5, 3\).*d=2 features \(shape \(n, 2\)\)"):
        norm.update(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"shape \(5, 3\).*d=2"):
        norm.transform(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        norm.update(np.zeros(5))


def test_non_finite_input_names_rows_and_changes_nothing():
    norm = RunningNormaliser()
    norm.update(np.array([[90.0], [94.0]]))
    before = norm.state_dict()
    x = np.array([[91.0], [np.nan], [92.0], [np.inf]])
    with pytest.raises(ValueError, match=r"rows \[1, 3\] of 4"):
        norm.update(x)
    assert norm.state_dict() == before
    with pytest.raises(ValueError, match=r"rows \[1, 3\]"):
        norm.transform(x)


def test_constructor_only_stores_arguments_and_repr():
    norm = RunningNormaliser(eps=1e-9)
    assert vars(norm) == {"eps": 1e-9}
    assert repr(norm) == "RunningNormaliser(eps=1e-09, n_seen=0)"
    norm.update(np.array([[90.0, 1.0, 2.0, 3.0, 4.0], [94.0, 1.0, 2.0, 3.0, 4.0]]))
    assert repr(norm) == ("RunningNormaliser(eps=1e-09, n_seen=2, d=5, mean=[92, 1, 2, 3, ...], "
                          "std=[2, 0, 0, 0, ...])")
    with pytest.raises(TypeError):
        RunningNormaliser(1e-9)  # keyword-only


def test_import_does_not_pull_torch_or_pandas():
    code = "import sys, models.normaliser; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
