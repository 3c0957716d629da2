"""Prequential (test-then-train) metrics of the abnormal-reading classifier, in constant memory.

Every reading is scored before it is learned from, so these running metrics are honest estimates
of how the monitor does on readings it has not seen (prequential evaluation, as river and MOA do
it). Updates take whole batches and are vectorised; memory does not grow with the stream.

>>> import numpy as np
>>> m = PrequentialMetrics()
>>> m.update(np.array([0, 1]), np.array([0.2, 0.9]), np.array([False, True]))
>>> m.result()["accuracy"], m.result()["roc_auc"]
(1.0, 1.0)
>>> first_sustained(np.array([0, 1, 1, 0, 1, 1, 1]), window=3, level=1.0)
7
"""

from __future__ import annotations

import numpy as np

__all__ = ["PrequentialMetrics", "first_sustained"]

# Probabilities are clipped to [EPS, 1 - EPS] before the log, as river does
# (river.metrics.base.ClassificationMetric._clamp_proba). scikit-learn's log_loss clips at the
# dtype's machine epsilon (2.2e-16) instead, so the two differ for p within 1e-15 of 0 or 1.
_EPS = 1e-15


def _bad_rows(bad: np.ndarray, values: np.ndarray) -> str:
    rows = np.flatnonzero(bad)
    shown = rows[:10]
    more = f" and {rows.size - 10} more" if rows.size > 10 else ""
    return f"rows {shown.tolist()}{more} (values {values[shown].tolist()})"


def _as_binary(a: np.ndarray, name: str) -> np.ndarray:
    """Check a (n,) array holds only 0/1 (or bools) and return it as bool (never written to)."""
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got {a.shape}")
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be bool or numeric 0/1, got dtype {a.dtype}")
    bad = (a != 0) & (a != 1)  # NaN is bad too
    if bad.any():
        raise ValueError(
            f"{name} must hold only 0 and 1, but has other values at {_bad_rows(bad, a)}; "
            "label (or drop) those readings before scoring them"
        )
    return a == 1


class PrequentialMetrics:
    """Running accuracy, log loss, ROC AUC, precision and recall of a binary classifier.

    Parameters
    ----------
    n_bins
        Number of equal-width bins over [0, 1] in the two histograms of p (one per class) that
        ROC AUC is computed from. Pairs of a positive and a negative reading whose p fall in the
        same bin count as ties (half a pair), so the AUC is exact up to
        ``0.5 * sum(hist_pos_ * hist_neg_) / (n_pos * n_neg)`` -- that bound is reached only when
        every such pair would have been ordered the same way. Memory is ``2 * n_bins`` counts.

    Attributes
    ----------
    readings_ : int
        Readings seen.
    tp_, fp_, tn_, fn_ : int
        Confusion counts of the flags against the labels (class 1, abnormal, is positive).
    log_loss_sum_ : float
        Sum of the per-reading log losses.
    hist_pos_, hist_neg_ : np.ndarray of shape (n_bins,), int64
        Histograms of p for the readings labelled 1 and 0.

    They exist from the first update with at least one reading on; `result` and `state_dict` work
    before that and report an empty stream.

    Notes
    -----
    Undefined values: with no readings, ``accuracy`` and ``log_loss`` are None (not 0.0: no
    reading has been scored, which is different from every reading scored wrong). ``roc_auc`` is
    None while only one class has been seen. ``precision`` and ``recall`` are 0.0 when their
    denominator is 0, as river returns them.

    Examples
    --------
    >>> import numpy as np
    >>> m = PrequentialMetrics()
    >>> m
    PrequentialMetrics(n_bins=4096, readings=0)
    >>> stream = [
    ...     ([0], [0.3], [False]),
    ...     ([0, 1, 1], [0.1, 0.8, 0.4], [False, True, False]),
    ...     ([1, 0], [0.7, 0.6], [True, True]),
    ... ]
    >>> for y, p, flag in stream:
    ...     m.update(np.array(y), np.array(p), np.array(flag))
    ...     r = m.result()
    ...     print(r["readings"], round(r["accuracy"], 4), round(r["log_loss"], 4), r["roc_auc"] and round(r["roc_auc"], 4))
    1 1.0 0.3567 None
    4 0.75 0.4004 1.0
    6 0.6667 0.4791 0.8889
    >>> {k: round(v, 4) if isinstance(v, float) else v for k, v in m.result().items()}
    {'readings': 6, 'accuracy': 0.6667, 'log_loss': 0.4791, 'roc_auc': 0.8889, 'precision': 0.6667, 'recall': 0.6667, 'flags': 3, 'tp': 2, 'fp': 1, 'tn': 2, 'fn': 1}
    >>> m
    PrequentialMetrics(n_bins=4096, readings=6, accuracy=0.6667, log_loss=0.4791, roc_auc=0.8889, flags=3)
    """

    def __init__(self, *, n_bins: int = 4096) -> None:
        self.n_bins = n_bins

    # ------------------------------------------------------------------ learning

    def update(self, y_true: np.ndarray, p: np.ndarray, flag: np.ndarray) -> None:
        """Add a batch of scored readings.

        Parameters
        ----------
        y_true
            (n,) labels, 0/1 or bool.
        p
            (n,) predicted probabilities of class 1, in [0, 1].
        flag
            (n,) the monitor's decisions, bool or 0/1.

        None of them is modified. n may be 0.

        Raises
        ------
        ValueError
            If the shapes differ, a label or flag is not 0/1 (NaN included), or p is outside
            [0, 1] or not finite; the message names the rows.
        """
        y = _as_binary(y_true, "y_true")  # (n,) bool
        f = _as_binary(flag, "flag")  # (n,) bool
        p = np.asarray(p)
        if p.ndim != 1 or p.dtype.kind not in "biuf":
            raise ValueError(f"p must be a numeric array of shape (n,), got {p.dtype} {p.shape}")
        p = p.astype(np.float64)  # a new array
        if not (y.shape == p.shape == f.shape):
            raise ValueError(
                f"y_true, p and flag must have the same shape (n,), got {y.shape}, {p.shape}, {f.shape}"
            )
        bad = ~((p >= 0.0) & (p <= 1.0))  # NaN and inf are bad too
        if bad.any():
            raise ValueError(f"p must be probabilities in [0, 1], got {_bad_rows(bad, p)}")
        n = y.shape[0]
        if n == 0:
            return
        if not hasattr(self, "readings_"):
            self._start()

        tp = int(np.count_nonzero(y & f))
        fp = int(np.count_nonzero(f)) - tp
        fn = int(np.count_nonzero(y)) - tp
        self.tp_ += tp
        self.fp_ += fp
        self.fn_ += fn
        self.tn_ += n - tp - fp - fn
        self.readings_ += n

        pc = np.clip(p, _EPS, 1.0 - _EPS)
        self.log_loss_sum_ += float(-np.log(np.where(y, pc, 1.0 - pc)).sum())

        bins = np.minimum((p * self.n_bins).astype(np.int64), self.n_bins - 1)  # (n,) bin of each p
        if n == 1:  # a live line: one count (np.add.at costs ~15 us a call)
            (self.hist_pos_ if y[0] else self.hist_neg_)[bins[0]] += 1
        elif n < 256:  # a live feed's few readings: touch their bins, not all n_bins (bincount would)
            np.add.at(self.hist_pos_, bins[y], 1)
            np.add.at(self.hist_neg_, bins[~y], 1)
        else:
            self.hist_pos_ += np.bincount(bins[y], minlength=self.n_bins)
            self.hist_neg_ += np.bincount(bins[~y], minlength=self.n_bins)

    # ------------------------------------------------------------------ reading

    def roc_auc(self) -> float | None:
        """ROC AUC from the two histograms, ties within a bin counted half; None with one class."""
        if not hasattr(self, "readings_"):
            return None
        n_pos = self.tp_ + self.fn_
        n_neg = self.fp_ + self.tn_
        if n_pos == 0 or n_neg == 0:
            return None
        pos = self.hist_pos_.astype(np.float64)
        neg = self.hist_neg_.astype(np.float64)
        neg_below = np.cumsum(neg) - neg  # (n_bins,) negatives in strictly lower bins
        return float(pos @ (neg_below + 0.5 * neg)) / (float(n_pos) * float(n_neg))

    def result(self) -> dict:
        """Return the metrics so far as a dict of plain Python numbers (or None).

        Keys: readings, accuracy, log_loss, roc_auc, precision, recall, flags (number of flagged
        readings), tp, fp, tn, fn. See the class Notes for the undefined cases.
        """
        if hasattr(self, "readings_"):
            n, tp, fp, tn, fn = self.readings_, self.tp_, self.fp_, self.tn_, self.fn_
        else:
            n = tp = fp = tn = fn = 0
        return {
            "readings": n,
            "accuracy": (tp + tn) / n if n else None,
            "log_loss": self.log_loss_sum_ / n if n else None,
            "roc_auc": self.roc_auc(),
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "flags": tp + fp,
            "tp": tp,
            "fp": fp,
            "tn": tn,
            "fn": fn,
        }

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Return the state as a plain, JSON-able dict of ints, a float and lists of ints."""
        if not hasattr(self, "readings_"):
            zeros = [0] * self.n_bins
            return {"n_bins": self.n_bins, "readings": 0, "tp": 0, "fp": 0, "tn": 0, "fn": 0,
                    "log_loss_sum": 0.0, "hist_pos": zeros, "hist_neg": list(zeros)}
        return {
            "n_bins": self.n_bins,
            "readings": self.readings_,
            "tp": self.tp_,
            "fp": self.fp_,
            "tn": self.tn_,
            "fn": self.fn_,
            "log_loss_sum": self.log_loss_sum_,
            "hist_pos": self.hist_pos_.tolist(),
            "hist_neg": self.hist_neg_.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Replace the state with one returned by `state_dict` (possibly via JSON).

        Raises
        ------
        ValueError
            If the state was saved with another ``n_bins`` or its counts do not add up.
        """
        if state["n_bins"] != self.n_bins:
            raise ValueError(
                f"load_state_dict(): state has n_bins={state['n_bins']} but these metrics have "
                f"n_bins={self.n_bins}; create PrequentialMetrics(n_bins={state['n_bins']})"
            )
        counts = {k: state[k] for k in ("readings", "tp", "fp", "tn", "fn")}
        hist_pos = np.array(state["hist_pos"], dtype=np.int64)
        hist_neg = np.array(state["hist_neg"], dtype=np.int64)
        ok = (
            all(isinstance(v, int) and v >= 0 for v in counts.values())
            and counts["readings"] == counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"]
            and hist_pos.shape == hist_neg.shape == (self.n_bins,)
            and (hist_pos >= 0).all() and (hist_neg >= 0).all()
            and hist_pos.sum() == counts["tp"] + counts["fn"]
            and hist_neg.sum() == counts["fp"] + counts["tn"]
            and np.isfinite(state["log_loss_sum"]) and state["log_loss_sum"] >= 0
        )
        if not ok:
            raise ValueError(f"load_state_dict(): inconsistent metrics state, counts {counts}")
        self.readings_ = counts["readings"]
        self.tp_, self.fp_, self.tn_, self.fn_ = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
        self.log_loss_sum_ = float(state["log_loss_sum"])
        self.hist_pos_, self.hist_neg_ = hist_pos, hist_neg

    # ------------------------------------------------------------------ helpers

    def _start(self) -> None:
        if isinstance(self.n_bins, bool) or not isinstance(self.n_bins, (int, np.integer)) or self.n_bins < 1:
            raise ValueError(f"n_bins must be an int >= 1, got {self.n_bins!r}")
        self.readings_ = 0
        self.tp_ = self.fp_ = self.tn_ = self.fn_ = 0
        self.log_loss_sum_ = 0.0
        self.hist_pos_ = np.zeros(self.n_bins, dtype=np.int64)
        self.hist_neg_ = np.zeros(self.n_bins, dtype=np.int64)

    def __repr__(self) -> str:
        r = self.result()
        if not r["readings"]:
            return f"PrequentialMetrics(n_bins={self.n_bins}, readings=0)"
        auc = "None" if r["roc_auc"] is None else f"{r['roc_auc']:.4f}"
        return (
            f"PrequentialMetrics(n_bins={self.n_bins}, readings={r['readings']}, "
            f"accuracy={r['accuracy']:.4f}, log_loss={r['log_loss']:.4f}, roc_auc={auc}, "
            f"flags={r['flags']})"
        )


def first_sustained(correct: np.ndarray, window: int, level: float) -> int | None:
    """Number of readings until accuracy over the last `window` readings first reaches `level`.

    Returns the smallest t >= window with ``correct[t - window:t].sum() / window >= level``: the
    count of readings consumed when a full window first scores at least `level` ("readings until
    0.99"). None if that never happens, including when fewer than `window` readings are given.

    Parameters
    ----------
    correct
        (n,) bool or 0/1: whether each reading, in stream order, was classified correctly.
    window
        Width of the sliding window, >= 1.
    level
        Accuracy to reach, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> correct = np.array([0, 1, 0, 1, 1, 1, 1, 0, 1])
    >>> for level in (0.5, 0.75, 1.0):
    ...     print(level, first_sustained(correct, window=4, level=level))
    0.5 4
    0.75 5
    1.0 7
    >>> print(first_sustained(correct, window=10, level=0.5))
    None
    """
    c = _as_binary(correct, "correct")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level!r}")
    if c.shape[0] < window:
        return None
    cum = np.concatenate(([0], np.cumsum(c, dtype=np.int64)))  # (n + 1,) correct before each index
    sums = cum[window:] - cum[:-window]  # (n - window + 1,) correct in each full window
    hits = np.flatnonzero(sums / window >= level)
    return int(hits[0]) + int(window) if hits.size else None
