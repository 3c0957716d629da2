"""Running per-feature mean and standard deviation, to centre and scale readings.

Heart rate sits around 92 with a spread of 5; a network initialised for zero-centred inputs
learns far faster on ``(x - mean) / std``. The statistics are running ones, merged batch by batch
with Chan et al.'s parallel algorithm, so a stream can arrive in chunks of any size (one reading,
a thousand, none) and the result matches ``np.mean`` / ``np.std`` of everything seen so far.

>>> import numpy as np
>>> norm = RunningNormaliser()
>>> for batch in ([[88.0]], [[92.0], [96.0]], np.empty((0, 1)), [[100.0]]):
...     norm.update(np.asarray(batch))
...     mean, std = norm.get()
...     print(norm.n_seen_, mean.round(3).tolist(), std.round(3).tolist())
1 [88.0] [0.0]
3 [92.0] [3.266]
3 [92.0] [3.266]
4 [94.0] [4.472]
>>> norm.transform(np.array([[94.0], [98.472]])).round(3).tolist()
[[0.0], [1.0]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["RunningNormaliser"]


def _check_finite(x: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)  # (n,) True where a row holds NaN or inf
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = rows[:10].tolist()
        more = f" and {rows.size - 10} more" if rows.size > 10 else ""
        raise ValueError(
            f"{where}: x has non-finite values (NaN or inf) in rows {shown}{more} of {x.shape[0]}; "
            "drop or impute those readings before calling it"
        )


class RunningNormaliser:
    """Per-feature running mean and standard deviation, and the transform that uses them.

    Batches are merged with Chan et al.'s parallel algorithm: the batch mean and the batch
    variance are computed around the batch's own mean, then combined with the running ones.
    Nothing is ever computed as ``E[x^2] - E[x]^2``, so a feature with mean 1e6 and spread 1 is
    as exact as one with mean 0. Everything is float64 and vectorised over the batch.

    Parameters
    ----------
    eps
        A feature whose standard deviation is at most ``eps * max(1, |mean|)`` is treated as
        constant and transforms to exactly 0.0. The scale by ``|mean|`` keeps rounding noise on a
        large constant from being blown up into ``+-1``. A feature that has been exactly constant
        so far always has a variance of exactly 0.0, whatever ``eps`` is.

    Attributes
    ----------
    n_seen_ : int
        Number of readings (rows) seen.
    mean_ : np.ndarray of shape (d,)
        Running mean of each feature.
    var_ : np.ndarray of shape (d,)
        Running population variance (``ddof=0``) of each feature.
    std_ : np.ndarray of shape (d,)
        ``sqrt(var_)``.
    n_refused_ : int
        Batches left out because merging them would overflow the statistics (readings near
        1e300); exists only once that happened.

    The attributes exist from the first update with at least one reading on (the scikit-learn
    convention: no learned state before learning). Before that the normaliser is "not fitted":
    `transform` returns zeros, so the network sees the centre of the normalised space rather
    than a NaN, and `get` raises.

    Examples
    --------
    >>> import numpy as np
    >>> norm = RunningNormaliser()
    >>> norm
    RunningNormaliser(eps=1e-12, n_seen=0)
    >>> norm.transform(np.array([[91.0, 1.0]])).tolist()   # not fitted: the centre
    [[0.0, 0.0]]
    >>> stream = np.array([[90.0, 1.0], [94.0, 1.0], [86.0, 1.0], [98.0, 1.0]])
    >>> for i in range(0, 4, 2):
    ...     norm.update(stream[i:i + 2])
    ...     print(norm.mean_.tolist(), norm.std_.round(4).tolist())
    [92.0, 1.0] [2.0, 0.0]
    [92.0, 1.0] [4.4721, 0.0]
    >>> norm.transform(stream).round(4).tolist()   # the constant feature maps to 0.0
    [[-0.4472, 0.0], [0.4472, 0.0], [-1.3416, 0.0], [1.3416, 0.0]]
    >>> norm
    RunningNormaliser(eps=1e-12, n_seen=4, d=2, mean=[92, 1], std=[4.472, 0])

    References
    ----------
    Chan, Golub and LeVeque (1979), "Updating formulae and a pairwise algorithm for computing
    sample variances".
    """

    def __init__(self, *, eps: float = 1e-12) -> None:
        self.eps = eps

    # ------------------------------------------------------------------ learning

    def update(self, x: np.ndarray) -> None:
        """Merge a batch of readings into the running statistics.

        Parameters
        ----------
        x
            Array of shape (n, d); n may be 0 (nothing happens) or 1. Not modified.

        Raises
        ------
        ValueError
            If x is not 2-D, if d differs from the batches seen before, or if x holds NaN or inf
            (the message names the rows; filter them out first).
        """
        x = self._as_batch(x, "update()")
        nb = x.shape[0]
        if self._fitted() and x.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"update(): got x of shape {x.shape} but this normaliser has seen "
                f"d={self.mean_.shape[0]} features (shape (n, {self.mean_.shape[0]})); "
                "use one RunningNormaliser per feature set"
            )
        if nb == 0:
            return
        _check_finite(x, "update()")

        # Batch statistics around the batch's own mean. Shifting by the first row first makes an
        # exactly constant column give mean == that value and variance == 0.0 exactly.
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
            shift = x[0]  # (d,)
            mean_b = shift + (x - shift).mean(axis=0)  # (d,)
            dev = x - mean_b  # (nb, d), a new array: x is never written to
            var_b = np.einsum("ij,ij->j", dev, dev) / nb  # (d,) population variance of the batch
            if not self._fitted():
                n, mean, var = int(nb), mean_b, var_b
            else:
                na = self.n_seen_
                n = na + nb
                a, b = na / n, nb / n
                delta = mean_b - self.mean_  # (d,)
                # Chan et al.: M2 = M2_a + M2_b + delta^2 na nb / n, written per reading (var = M2 / n).
                # Every term is non-negative, so nothing cancels.
                var = a * self.var_ + b * var_b + (a * b) * delta * delta
                mean = self.mean_ + b * delta
        if not (np.isfinite(mean).all() and np.isfinite(var).all()):
            # Readings so extreme (1e300) that the statistics would overflow: the batch is left
            # out and counted, rather than turn every later transform into NaN.
            self.n_refused_ = getattr(self, "n_refused_", 0) + 1
            return
        self.n_seen_, self.mean_, self.var_ = int(n), mean, var

    # ------------------------------------------------------------------ reading

    @property
    def std_(self) -> np.ndarray:
        """Running population standard deviation of each feature, shape (d,)."""
        return np.sqrt(self.var_)

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of ``(mean, std)``, each of shape (d,).

        Raises
        ------
        ValueError
            If no reading has been seen yet.
        """
        if not self._fitted():
            raise ValueError("RunningNormaliser is not fitted yet: call update() with at least one reading first")
        return self.mean_.copy(), self.std_

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean) / std`` as a new float64 array of the same shape as x.

        Parameters
        ----------
        x
            Array of shape (n, d), or (d,) for a single reading. Not modified.

        Returns
        -------
        np.ndarray
            Same shape as x, float64. A feature that is constant so far gives exactly 0.0; before
            any update the whole result is 0.0 (the centre of the normalised space).

        Raises
        ------
        ValueError
            If the last dimension is not d, or x holds NaN or inf.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim not in (1, 2):
            raise ValueError(f"transform(): x must have shape (n, d) or (d,), got {x.shape}")
        _check_finite(x.reshape(-1, x.shape[-1]) if x.size else x.reshape(0, 1), "transform()")
        if not self._fitted():
            return np.zeros(x.shape, dtype=np.float64)
        d = self.mean_.shape[0]
        if x.shape[-1] != d:
            raise ValueError(
                f"transform(): got x of shape {x.shape} but this normaliser has seen d={d} "
                f"features; pass shape (n, {d})"
            )
        std = self.std_
        scaled = std > self.eps * np.maximum(1.0, np.abs(self.mean_))  # (d,) False: constant
        out = np.zeros(x.shape, dtype=np.float64)
        np.divide(x - self.mean_, std, out=out, where=scaled)
        return out

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Return the learned state as a plain, JSON-able dict (ints and lists of floats).

        ``{"n_seen": 0, "mean": [], "var": []}`` when not fitted. ``eps`` is a constructor
        argument, not state: it is not included.
        """
        refused = {"n_refused": self.n_refused_} if getattr(self, "n_refused_", 0) else {}
        if not self._fitted():
            return {"n_seen": 0, "mean": [], "var": [], **refused}
        return {"n_seen": self.n_seen_, "mean": self.mean_.tolist(), "var": self.var_.tolist(), **refused}

    def load_state_dict(self, state: dict) -> None:
        """Replace the learned state with one returned by `state_dict` (possibly via JSON)."""
        n_seen = state["n_seen"]
        mean = np.array(state["mean"], dtype=np.float64)
        var = np.array(state["var"], dtype=np.float64)
        if isinstance(n_seen, bool) or int(n_seen) != n_seen or n_seen < 0:
            raise ValueError(f"load_state_dict(): n_seen must be an int >= 0, got {n_seen!r}")
        if mean.ndim != 1 or mean.shape != var.shape or (n_seen > 0) != (mean.size > 0):
            raise ValueError(
                f"load_state_dict(): mean and var must be lists of the same length d, empty only "
                f"when n_seen == 0; got n_seen={n_seen}, {mean.size} means, {var.size} variances"
            )
        if not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all()):
            raise ValueError("load_state_dict(): mean and var must be finite, and var >= 0")
        for name in ("n_seen_", "mean_", "var_", "n_refused_"):
            self.__dict__.pop(name, None)
        if state.get("n_refused", 0):
            self.n_refused_ = int(state["n_refused"])
        if n_seen > 0:
            self.n_seen_ = int(n_seen)
            self.mean_ = mean
            self.var_ = var

    # ------------------------------------------------------------------ helpers

    def _fitted(self) -> bool:
        return hasattr(self, "mean_")

    @staticmethod
    def _as_batch(x: np.ndarray, where: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(
                f"{where}: x must have shape (n, d), got {x.shape}; "
                "use x.reshape(-1, 1) for one feature or x.reshape(1, -1) for one reading"
            )
        return x

    def __repr__(self) -> str:
        if not self._fitted():
            return f"RunningNormaliser(eps={self.eps!r}, n_seen=0)"
        def short(v: np.ndarray) -> str:  # at most 4 values, 4 significant digits
            head = ", ".join(f"{float(t):.4g}" for t in v[:4])
            return f"[{head}{', ...' if v.size > 4 else ''}]"

        return (
            f"RunningNormaliser(eps={self.eps!r}, n_seen={self.n_seen_}, d={self.mean_.shape[0]}, "
            f"mean={short(self.mean_)}, std={short(self.std_)})"
        )
