"""Two noisy concentric circles (sklearn make_circles): the sanity-check stream.

>>> source = Circles(n=5, batch=2)
>>> source
Circles(n=5, noise=0.1, factor=0.2, seed=0, batch=2)
>>> [len(b) for b in source], next(iter(source)).x.shape
([2, 2, 1], (2, 2))
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from streams.batch import Batch

__all__ = ["Circles"]


class Circles:
    """n points of sklearn's make_circles, shuffled, in batches; y is 0 (outer) or 1 (inner circle).

    Parameters
    ----------
    n
        Number of points.
    noise
        Standard deviation of the Gaussian noise added to the points.
    factor
        Radius of the inner circle relative to the outer one (0 < factor < 1).
    seed
        Random state, so that the same arguments give the same stream.
    batch
        Readings per Batch.

    Examples
    --------
    >>> b = next(iter(Circles(n=1000, batch=1000)))
    >>> b.x.shape, sorted(set(b.y.tolist())), b.time[:3].tolist(), b.line[:3].tolist()
    ((1000, 2), [0.0, 1.0], [0.0, 1.0, 2.0], [1, 2, 3])
    """

    live = False

    def __init__(self, *, n: int = 10_000, noise: float = 0.1, factor: float = 0.2, seed: int = 0,
                 batch: int = 1000) -> None:
        self.n = n
        self.noise = noise
        self.factor = factor
        self.seed = seed
        self.batch = batch

    def __repr__(self) -> str:
        return (f"Circles(n={self.n}, noise={self.noise}, factor={self.factor}, seed={self.seed}, "
                f"batch={self.batch})")

    def __iter__(self) -> Iterator[Batch]:
        from sklearn.datasets import make_circles

        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch!r}")
        x, y = make_circles(n_samples=self.n, shuffle=True, noise=self.noise,
                            random_state=self.seed, factor=self.factor)
        x = x.astype(np.float64)  # (n, 2)
        y = y.astype(np.float64)  # (n,) 0 outer, 1 inner
        index = np.arange(self.n)
        for start in range(0, self.n, self.batch):
            s = slice(start, start + self.batch)
            yield Batch(time=index[s].astype(np.float64), x=x[s], y=y[s],
                        line=(index[s] + 1).astype(np.int64))
