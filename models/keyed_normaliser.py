"""Running mean and standard deviation per key (patient), as (K, d) arrays indexed by key id.

Each reading is normalised with the statistics of the readings of *its own key* that came before it
(prequential: scored, then merged), computed for a whole batch at once: the batch is grouped by key
id with a stable argsort, prefix sums within each group give every reading's "before me" statistics,
and each group is merged into its key's running ones with Chan et al.'s parallel formula. No Python
loop runs per reading or per key, and the result does not depend on how the stream is cut into
batches (up to float rounding) nor on the other keys' readings.

>>> import numpy as np
>>> norm = KeyedNormaliser()
>>> ids = np.array([0, 1, 0, 1, 0])
>>> x = np.array([[60.0], [100.0], [62.0], [104.0], [64.0]])
>>> norm.transform_update(ids, x).ravel().round(3).tolist()   # 3rd: (62-60)/0 -> 0; 5th: (64-61)/1
[0.0, 0.0, 0.0, 0.0, 3.0]
>>> norm.mean_[:2].ravel().tolist(), norm.n_seen_[:2].tolist()
([62.0, 102.0], [3, 2])
"""

from __future__ import annotations

import numpy as np

__all__ = ["KeyedNormaliser"]


class KeyedNormaliser:
    """Per-key running mean and population variance; the per-key version of RunningNormaliser.

    Parameters
    ----------
    eps
        A key's feature whose standard deviation is at most ``eps * max(1, |mean|)`` transforms to
        0.0 (as in RunningNormaliser). A key with no reading yet also transforms to 0.0.

    Attributes
    ----------
    n_seen_ : np.ndarray of shape (K,)
        Readings merged per key id; K grows (doubling) to hold the largest id seen.
    mean_, var_ : np.ndarray of shape (K, d)
        Running mean and population variance per key id; zero for an unseen id.

    The arrays exist from the first update (the number of features d is known then).

    Examples
    --------
    >>> norm = KeyedNormaliser()
    >>> norm
    KeyedNormaliser(eps=1e-12, keys=0)
    >>> _ = norm.transform_update(np.array([3, 3]), np.array([[1.0], [3.0]]))
    >>> norm, norm.get(3)
    (KeyedNormaliser(eps=1e-12, keys=1, d=1, capacity=4), (array([2.]), array([1.])))
    >>> norm.reset(np.array([3])); norm.n_seen_[3]
    np.int64(0)
    """

    def __init__(self, *, eps: float = 1e-12) -> None:
        self.eps = eps

    def __repr__(self) -> str:
        if not hasattr(self, "n_seen_"):
            return f"KeyedNormaliser(eps={self.eps!r}, keys=0)"
        return (f"KeyedNormaliser(eps={self.eps!r}, keys={int((self.n_seen_ > 0).sum())}, "
                f"d={self.mean_.shape[1]}, capacity={len(self.n_seen_)})")

    # ------------------------------------------------------------------ state arrays

    def _ensure(self, top: int, d: int) -> None:
        """Arrays for ids 0..top-1 and d features (grown by doubling, new rows zero)."""
        if not hasattr(self, "n_seen_"):
            cap = max(1, top)
            self.n_seen_ = np.zeros(cap, dtype=np.int64)
            self.mean_ = np.zeros((cap, d))
            self.var_ = np.zeros((cap, d))
            return
        if self.mean_.shape[1] != d:
            raise ValueError(f"got readings with {d} features but this normaliser has seen "
                             f"{self.mean_.shape[1]}; use one KeyedNormaliser per feature set")
        cap = len(self.n_seen_)
        if top > cap:
            new = max(top, 2 * cap)
            self.n_seen_ = np.concatenate([self.n_seen_, np.zeros(new - cap, dtype=np.int64)])
            self.mean_ = np.concatenate([self.mean_, np.zeros((new - cap, d))])
            self.var_ = np.concatenate([self.var_, np.zeros((new - cap, d))])

    # ------------------------------------------------------------------ the work

    def transform_update(self, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Normalise each reading with its key's statistics before it, then merge the batch.

        Parameters
        ----------
        ids
            (n,) non-negative integer key ids.
        x
            (n, d) finite readings. Not modified.

        Returns
        -------
        np.ndarray
            (n, d) float64: ``(x - mean) / std`` of the same key's earlier readings (this batch's
            earlier ones included); 0.0 where the key has no earlier reading or a zero spread.
        """
        ids = np.asarray(ids, dtype=np.intp)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or ids.shape != (x.shape[0],):
            raise ValueError(f"ids must have shape (n,) and x shape (n, d); got {ids.shape} and {x.shape}")
        n, d = x.shape
        if n == 0:
            return np.empty((0, d))
        if ids.min() < 0:
            raise ValueError("key ids must be non-negative")
        if not np.isfinite(x).all():
            raise ValueError("x holds NaN or inf; drop those readings first")
        self._ensure(int(ids.max()) + 1, d)

        order = np.argsort(ids, kind="stable")  # (n,) readings grouped by key, in arrival order
        sid, sx = ids[order], x[order]
        first = np.empty(n, dtype=bool)
        first[0], first[1:] = True, sid[1:] != sid[:-1]
        starts = np.flatnonzero(first)  # (g,) first reading of each group
        group = np.cumsum(first) - 1  # (n,) group of each reading
        keys = sid[starts]  # (g,) key id of each group
        before = np.arange(n) - starts[group]  # (n,) readings of the same key earlier in the batch

        n0 = self.n_seen_[keys].astype(np.float64)  # (g,) running state of each group's key
        m0, v0 = self.mean_[keys], self.var_[keys]  # (g, d)
        shift = np.where(n0[:, None] > 0, m0, sx[starts])  # (g, d) keeps the sums small
        dv = sx - shift[group]  # (n, d)
        c1, c2 = np.cumsum(dv, axis=0), np.cumsum(dv * dv, axis=0)  # (n, d) inclusive
        base1, base2 = np.zeros((len(starts), d)), np.zeros((len(starts), d))
        base1[1:], base2[1:] = c1[starts[1:] - 1], c2[starts[1:] - 1]  # sums before each group
        s1 = c1 - dv - base1[group]  # (n, d) sums over the same key's earlier batch readings
        s2 = c2 - dv * dv - base2[group]

        z = self._prefix_z(sx, before.astype(np.float64), s1, s2, shift[group], n0[group],
                           m0[group], v0[group])
        out = np.empty_like(z)
        out[order] = z

        last = np.r_[starts[1:], n] - 1  # (g,) last reading of each group: merge it too
        cnt = before[last] + 1.0
        t1, t2 = s1[last] + dv[last], s2[last] + dv[last] ** 2
        mean_b = shift + t1 / cnt[:, None]
        m2_b = np.maximum(t2 - t1 * t1 / cnt[:, None], 0.0)
        total = n0 + cnt
        delta = mean_b - m0
        w = (cnt / total)[:, None]
        self.mean_[keys] = m0 + w * delta
        self.var_[keys] = (n0[:, None] * v0 + m2_b + delta * delta * (n0 * cnt / total)[:, None]) / total[:, None]
        self.n_seen_[keys] = total.astype(np.int64)
        return out

    def _prefix_z(self, sx, m, s1, s2, shift, n0, m0, v0) -> np.ndarray:
        """z of each reading from its key's running state (n0, m0, v0) and m earlier batch readings."""
        mc = m[:, None]
        has_b = mc > 0
        safe = np.where(has_b, mc, 1.0)
        mean_b = shift + s1 / safe  # (n, d) mean of the earlier batch readings (if any)
        m2_b = np.where(mc > 1, np.maximum(s2 - s1 * s1 / safe, 0.0), 0.0)  # one reading: exactly 0
        total = n0[:, None] + mc  # (n, 1)
        seen = total > 0
        tsafe = np.where(seen, total, 1.0)
        delta = mean_b - m0
        mean = np.where(has_b, m0 + delta * (mc / tsafe), m0)
        m2 = n0[:, None] * v0 + m2_b + np.where(has_b, delta * delta * (n0[:, None] * mc / tsafe), 0.0)
        std = np.sqrt(m2 / tsafe)
        scaled = seen & (std > self.eps * np.maximum(1.0, np.abs(mean)))
        z = np.zeros_like(sx)
        np.divide(sx - mean, std, out=z, where=scaled)
        return z

    def transform(self, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Normalise with the current statistics, without learning (0.0 for an unseen key)."""
        ids = np.asarray(ids, dtype=np.intp)
        x = np.asarray(x, dtype=np.float64)
        if not hasattr(self, "n_seen_"):
            return np.zeros_like(x)
        inside = ids < len(self.n_seen_)
        safe = np.where(inside, ids, 0)
        n = np.where(inside, self.n_seen_[safe], 0)[:, None]
        mean, std = self.mean_[safe], np.sqrt(self.var_[safe])
        scaled = (n > 0) & (std > self.eps * np.maximum(1.0, np.abs(mean)))
        z = np.zeros_like(x)
        np.divide(x - mean, std, out=z, where=scaled)
        return z

    def get(self, key_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (mean, std) of one key id, each (d,); raises if the key has no reading."""
        if not hasattr(self, "n_seen_") or key_id >= len(self.n_seen_) or self.n_seen_[key_id] == 0:
            raise ValueError(f"key id {key_id} has no reading yet")
        return self.mean_[key_id].copy(), np.sqrt(self.var_[key_id])

    def reset(self, ids: np.ndarray) -> None:
        """Forget the given key ids (an evicted key's id can then serve a new key)."""
        if hasattr(self, "n_seen_"):
            ids = np.asarray(ids, dtype=np.intp)
            ids = ids[ids < len(self.n_seen_)]
            self.n_seen_[ids] = 0
            self.mean_[ids] = 0.0
            self.var_[ids] = 0.0

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Learned state as a JSON-able dict: {"n_seen": [K], "mean": [K][d], "var": [K][d]}."""
        if not hasattr(self, "n_seen_"):
            return {"n_seen": [], "mean": [], "var": []}
        return {"n_seen": self.n_seen_.tolist(), "mean": self.mean_.tolist(), "var": self.var_.tolist()}

    def load_state_dict(self, state: dict) -> None:
        """Replace the learned state with one returned by `state_dict` (possibly via JSON)."""
        n = np.asarray(state["n_seen"], dtype=np.int64)
        mean = np.asarray(state["mean"], dtype=np.float64)
        var = np.asarray(state["var"], dtype=np.float64)
        for name in ("n_seen_", "mean_", "var_"):
            self.__dict__.pop(name, None)
        if n.size == 0:
            return
        if n.ndim != 1 or mean.ndim != 2 or mean.shape != var.shape or mean.shape[0] != n.size:
            raise ValueError(f"load_state_dict(): n_seen (K,), mean and var (K, d) expected; got "
                             f"{n.shape}, {mean.shape}, {var.shape}")
        if (n < 0).any() or not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all()):
            raise ValueError("load_state_dict(): n_seen must be >= 0, mean and var finite, var >= 0")
        self.n_seen_, self.mean_, self.var_ = n, mean, var
