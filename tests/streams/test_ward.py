"""streams.ward: the simulated ward is seeded, interleaved, and exposes its true episodes."""

from __future__ import annotations

import numpy as np

from streams.ward import Ward


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
