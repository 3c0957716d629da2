"""models.keyed_normaliser: per-key running mean and std against numpy, state round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.keyed_normaliser import KeyedNormaliser
from models.normaliser import RunningNormaliser
from tests.conftest import cuts


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
