"""Synthetic heart rate: a drifting baseline, correlated noise and occasional tachycardic bursts.

>>> source = SyntheticHeartRate(n=4, batch=3)
>>> source
SyntheticHeartRate(n=4, baseline=90.0, drift=3.0, noise=4.0, seed=0, period=0.5, batch=3)
>>> [b.time.tolist() for b in source]
[[0.0, 0.5, 1.0], [1.5]]
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from streams.batch import Batch

__all__ = ["SyntheticHeartRate"]

_DRIFT_CYCLE = 900.0  # seconds, period of the slow sinusoid in the baseline
_WALK_TIME = 300.0  # seconds, time constant of the mean-reverting random walk
_NOISE_TIME = 5.0  # seconds, correlation time of the AR(1) noise
_BURST_EVERY = 600.0  # seconds between burst starts, on average
_BURST_SECONDS = (10.0, 40.0)  # duration of a burst, uniform
_BURST_BPM = (25.0, 45.0)  # peak rise of a burst above the rest, uniform
_LOW, _HIGH = 30.0, 220.0  # physiological range the values are clipped to


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> np.ndarray:
    """(n,) stationary AR(1) series x[i] = phi * x[i-1] + e[i] with standard deviation std."""
    from scipy.signal import lfilter  # scipy comes with scikit-learn

    e = rng.normal(0.0, std * math.sqrt(1.0 - phi * phi), n)
    if n:
        e[0] = rng.normal(0.0, std)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], e)


class SyntheticHeartRate:
    """n heart-rate readings ``period`` seconds apart, without labels (the monitor labels them).

    The value is baseline + drift * (a slow sinusoid + a mean-reverting random walk of unit
    spread) + AR(1) noise of standard deviation ``noise`` + a tachycardic burst every ten
    minutes or so (10 to 40 s, peaking 25 to 45 bpm higher), clipped to 30..220 bpm.

    Parameters
    ----------
    n
        Number of readings.
    baseline
        Resting heart rate, bpm.
    drift
        Size of the slow wander of the baseline, bpm.
    noise
        Standard deviation of the beat-to-beat noise, bpm.
    seed
        Seed of the numpy Generator: the same arguments give the same stream.
    period
        Seconds between readings.
    batch
        Readings per Batch.

    Examples
    --------
    >>> hr = np.concatenate([b.x.ravel() for b in SyntheticHeartRate()])
    >>> len(hr), 85 < float(hr.mean()) < 95, float(hr.min()) >= 30
    (5000, True, True)
    """

    live = False

    def __init__(self, *, n: int = 5000, baseline: float = 90.0, drift: float = 3.0,
                 noise: float = 4.0, seed: int = 0, period: float = 0.5, batch: int = 1000) -> None:
        self.n = n
        self.baseline = baseline
        self.drift = drift
        self.noise = noise
        self.seed = seed
        self.period = period
        self.batch = batch

    def __repr__(self) -> str:
        return (f"SyntheticHeartRate(n={self.n}, baseline={self.baseline}, drift={self.drift}, "
                f"noise={self.noise}, seed={self.seed}, period={self.period}, batch={self.batch})")

    def values(self) -> np.ndarray:
        """(n,) float64 heart rate of the whole stream."""
        if self.period <= 0:
            raise ValueError(f"period must be positive, got {self.period!r}")
        if self.noise < 0 or self.drift < 0:
            raise ValueError("noise and drift must not be negative, "
                             f"got noise={self.noise!r}, drift={self.drift!r}")
        rng = np.random.default_rng(self.seed)
        n, dt = self.n, self.period
        t = np.arange(n) * dt
        slow = np.sin(2 * math.pi * t / _DRIFT_CYCLE + rng.uniform(0, 2 * math.pi))
        walk = _ar1(rng, n, math.exp(-dt / _WALK_TIME), 1.0)
        hr = self.baseline + self.drift * (slow + walk) + _ar1(rng, n, math.exp(-dt / _NOISE_TIME),
                                                                self.noise)
        for start in np.flatnonzero(rng.random(n) < dt / _BURST_EVERY):
            length = max(1, int(rng.uniform(*_BURST_SECONDS) / dt))
            shape = np.sin(np.linspace(0, math.pi, length + 2)[1:-1])  # (length,) rise and fall
            end = min(n, start + length)
            hr[start:end] += rng.uniform(*_BURST_BPM) * shape[:end - start]
        return np.clip(hr, _LOW, _HIGH)

    def __iter__(self) -> Iterator[Batch]:
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch!r}")
        hr = self.values()
        index = np.arange(self.n)
        for start in range(0, self.n, self.batch):
            s = slice(start, start + self.batch)
            yield Batch(time=index[s] * float(self.period), x=hr[s].reshape(-1, 1),
                        y=np.full(len(hr[s]), np.nan), line=(index[s] + 1).astype(np.int64))
