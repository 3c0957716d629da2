"""A simulated ward: N synthetic patients, interleaved by time, some with tachycardia episodes.

Every patient has a resting heart rate of their own (55 to 78 bpm), a slow drift and beat-to-beat
noise, and now and then an artefact spike of a few readings, so readings of different patients differ
in level and spread; a seeded share of them also has
one or two tachycardia episodes of known start and end, during which the rate jumps to 110-140 bpm.
`Ward.episodes()` gives that ground truth, for tests and demos.

>>> ward = Ward(patients=3, minutes=10, seed=1)
>>> ward
Ward(patients=3, minutes=10, period=5.0, episode_share=0.4, seed=1, batch=1000)
>>> batches = list(ward)
>>> sum(len(b) for b in batches), sorted(set(batches[0].key.tolist()))
(360, ['P000', 'P001', 'P002'])
>>> bool((np.diff(batches[0].time) >= 0).all())   # readings arrive in time order
True
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from streams.batch import Batch

__all__ = ["Ward", "Episode"]

_BASELINE = (55.0, 78.0)  # resting heart rate of a patient, bpm, uniform
_SPREAD = (1.0, 2.5)  # standard deviation of a patient's beat-to-beat noise, bpm, uniform
_DRIFT = 3.0  # bpm, amplitude of the slow sinusoidal drift of the rest level
_DRIFT_CYCLE = 1800.0  # seconds, period of that drift
_NOISE_TIME = 20.0  # seconds, correlation time of the AR(1) noise
_EPISODE_BPM = (110.0, 140.0)  # level during a tachycardia episode, uniform
_EPISODE_MIN = (4.0, 10.0)  # length of an episode in minutes, uniform
_RAMP = 10.0  # seconds to rise to (and fall from) the episode level
_QUIET_START = 0.2  # no episode starts in this share of the stream (the model is still warming up)
_GAP_MIN = 10.0  # minutes between two episodes of one patient, at least
_SPIKE_EVERY = 1200.0  # seconds between artefact spikes of a patient, on average (not episodes)
_SPIKE_READINGS = (1, 3)  # readings a spike lasts, uniform inclusive
_SPIKE_BPM = (25.0, 40.0)  # rise of a spike, uniform


class Episode(NamedTuple):
    """A true tachycardia episode: the patient's key and the times its rise starts and its fall ends."""

    key: str
    start: float  # seconds
    end: float  # seconds
    level: float  # bpm the episode rises to


class Ward:
    """Readings of ``patients`` patients every ``period`` seconds for ``minutes``, merged by time.

    Parameters
    ----------
    patients
        Number of patients, keyed "P000", "P001", ...
    minutes
        Length of the stream.
    period
        Seconds between two readings of one patient; each patient has its own phase within it.
    episode_share
        Expected share of patients with tachycardia episodes (one, or two when there is room).
    seed
        Seed of the numpy Generator: the same arguments give the same ward.
    batch
        Readings per Batch.

    Every Batch carries ``key`` (the patient) and ``time`` (seconds from the start); ``y`` is NaN
    (the monitor labels by its threshold).
    """

    live = False

    def __init__(self, *, patients: int = 50, minutes: float = 60.0, period: float = 5.0,
                 episode_share: float = 0.4, seed: int = 0, batch: int = 1000) -> None:
        self.patients = patients
        self.minutes = minutes
        self.period = period
        self.episode_share = episode_share
        self.seed = seed
        self.batch = batch

    def __repr__(self) -> str:
        return (f"Ward(patients={self.patients}, minutes={self.minutes:g}, period={self.period}, "
                f"episode_share={self.episode_share}, seed={self.seed}, batch={self.batch})")

    def _check(self) -> None:
        if self.patients < 1 or self.period <= 0 or self.minutes <= 0 or self.batch < 1:
            raise ValueError(f"{self!r}: patients and batch must be at least 1, minutes and period positive")
        if not 0 <= self.episode_share <= 1:
            raise ValueError(f"episode_share must be in [0, 1], got {self.episode_share!r}")

    def keys(self) -> list[str]:
        """The patients' keys, in patient order."""
        width = max(3, len(str(self.patients - 1)))
        return [f"P{i:0{width}d}" for i in range(self.patients)]

    def _generate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Episode]]:
        """(time, patient index, heart rate) of every reading in time order, and the true episodes."""
        from scipy.signal import lfilter

        self._check()
        rng = np.random.default_rng(self.seed)
        p, dt = self.patients, self.period
        m = int(self.minutes * 60 // dt)  # readings per patient
        keys = self.keys()
        phase = rng.uniform(0, dt, p)  # (p,)
        t = phase[:, None] + dt * np.arange(m)[None, :]  # (p, m) seconds
        base = rng.uniform(*_BASELINE, p)[:, None]  # (p, 1)
        spread = rng.uniform(*_SPREAD, p)[:, None]
        drift = _DRIFT * np.sin(2 * math.pi * t / _DRIFT_CYCLE + rng.uniform(0, 2 * math.pi, (p, 1)))
        phi = math.exp(-dt / _NOISE_TIME)
        e = rng.normal(0.0, 1.0, (p, m)) * math.sqrt(1 - phi * phi)
        e[:, 0] = rng.normal(0.0, 1.0, p)
        noise = lfilter([1.0], [1.0, -phi], e, axis=1) * spread  # (p, m) AR(1), stationary
        hr = base + drift + noise
        # Artefacts: a few readings jump up and come back; an alert must not open on them.
        for i, j in zip(*np.nonzero(rng.random((p, m)) < dt / _SPIKE_EVERY)):
            k = int(rng.integers(_SPIKE_READINGS[0], _SPIKE_READINGS[1] + 1))
            hr[i, j:j + k] += rng.uniform(*_SPIKE_BPM)
        episodes: list[Episode] = []
        total = m * dt
        for i in np.flatnonzero(rng.random(p) < self.episode_share).tolist():
            count = 1 + int(rng.random() < 0.5)
            earliest = _QUIET_START * total
            for _ in range(count):
                length = rng.uniform(*_EPISODE_MIN) * 60
                latest = total - length - 2 * _RAMP - 60  # ends a minute before the stream does
                if latest <= earliest:
                    break
                start = rng.uniform(earliest, latest)
                end = start + length + 2 * _RAMP
                level = rng.uniform(*_EPISODE_BPM)
                rise = np.clip(np.minimum(t[i] - start, end - t[i]) / _RAMP, 0.0, 1.0)  # (m,) 0..1..0
                hr[i] += rise * (level - hr[i])
                episodes.append(Episode(keys[i], float(start), float(end), float(level)))
                earliest = end + _GAP_MIN * 60
        order = np.argsort(t, axis=None, kind="stable")  # merge the patients by time
        who = np.repeat(np.arange(p), m)[order]
        return t.ravel()[order], who, np.round(hr.ravel()[order], 1), episodes

    def episodes(self) -> list[Episode]:
        """The true tachycardia episodes, by patient then time."""
        return sorted(self._generate()[3])

    def arrays(self) -> dict[str, np.ndarray]:
        """The whole stream as arrays: time (n,), key (n,) object, hr (n,)."""
        t, who, hr, _ = self._generate()
        return {"time": t, "key": np.array(self.keys(), dtype=object)[who], "hr": hr}

    def to_csv(self, path) -> None:
        """Write the stream as a CSV file with columns time,patient,hr."""
        a = self.arrays()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("time,patient,hr\n")
            fh.write("".join(map("{:.3f},{},{}\n".format, a["time"].tolist(), a["key"].tolist(),
                                 a["hr"].tolist())))

    def __iter__(self) -> Iterator[Batch]:
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch!r}")
        a = self.arrays()
        n = len(a["hr"])
        for start in range(0, n, self.batch):
            s = slice(start, start + self.batch)
            k = len(a["hr"][s])
            yield Batch(time=a["time"][s], x=a["hr"][s].reshape(-1, 1), y=np.full(k, np.nan),
                        line=np.arange(start + 1, start + k + 1, dtype=np.int64), key=a["key"][s])
