"""The monitor's online learner as a river classifier: dict features in, {False, True} out.

``OnlineMLPClassifier`` is a thin adapter over :class:`models.learner.OnlineLearner` (the same
network, buffer and Adam trainer the monitor runs: by default
``BatchRenorm1d -> Linear -> ReLU -> Linear``, without the monitor's running normaliser in front,
see the class); it only maps river's dicts and
DataFrames to rows of a fixed width and river's labels to 0.0/1.0. The learner takes its
optimiser steps with a hand-written gradient in torch ops (`models.manual_step.ManualStepLearner`:
the autograd step to float rounding, cheaper on a network this small).

>>> from river import datasets, evaluate, metrics, preprocessing
>>> model = preprocessing.StandardScaler() | OnlineMLPClassifier(seed=0)
>>> evaluate.progressive_val_score(datasets.Phishing().take(300), model, metrics.Accuracy())
Accuracy: 8...%

Features, emerging and disappearing
-----------------------------------
The network has a fixed number of inputs, ``n_slots_``. Each feature name gets a slot the first
time it is *learned* from, in order of appearance (names new in the same reading in sorted order,
so the order of a dict's keys never matters), until the slots are full; a feature that
arrives after that is ignored (and counted in ``n_ignored_``). With ``max_features=None`` (the
default) there are as many slots as features (dict keys) in the first reading learned from, or
columns in the first DataFrame given to ``learn_many``, so the schema is frozen by it; set
``max_features`` to leave room for features that emerge later. Rebuilding the network when a
feature emerges was rejected: it would reset or reshape the optimiser state and the replay buffer
mid-stream, and make the model depend on when a feature first showed up.

A feature missing from a reading (absent from the dict, None or NaN) is filled with the running
mean of the values learned so far for that feature (0.0 before any), so after normalisation it
sits at the centre and moves the score as little as possible. Prediction never assigns slots or
changes any state.

Labels
------
A label is True/False (bool or numpy bool) or 1/0. ``True`` and ``1`` are always the positive
class: the network's one logit is P(True). Nothing depends on the order in which labels are first
seen, so the mapping cannot come out inverted.
"""

from __future__ import annotations

import itertools
import math
import numbers
import typing

import numpy as np
from river import base

from models.learner import LearnerConfig, OnlineLearner
from models.network import NetworkConfig
from models.manual_step import ManualStepLearner

if typing.TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["OnlineMLPClassifier"]

_NET = NetworkConfig()  # the network's defaults: the same network as the monitor's
_LEARN = LearnerConfig()


class _FreeSlot:
    """The name of an input slot no feature has claimed yet: no dict holds it as a key."""

    def __reduce__(self):
        return "_FREE"  # unpickles as the module's one instance

    def __repr__(self) -> str:
        return "<free slot>"


_FREE = _FreeSlot()


def _label(y) -> float:
    """One river label as 0.0/1.0; bool and 0/1 only."""
    if isinstance(y, (bool, np.bool_)):
        return float(y)
    if isinstance(y, numbers.Number) and not isinstance(y, complex) and y in (0, 1):
        return float(y)
    raise ValueError(f"OnlineMLPClassifier is a binary classifier: labels must be True/False or 1/0, "
                     f"got {y!r}")


def _labels(y) -> np.ndarray:
    """A Series or sequence of labels as a float64 array of 0.0/1.0."""
    a = np.asarray(y)
    if a.dtype == bool:
        return a.astype(np.float64)
    if a.dtype.kind in "iuf" and np.isin(a, (0, 1)).all():
        return a.astype(np.float64)
    return np.fromiter(map(_label, a.tolist()), np.float64, len(a))


class _OneRow:
    """The learner's score of one row, with the normaliser, an eval-mode BatchNorm and the first
    Linear layer folded into one (d, h) affine map: two small products per call instead of the
    row-wise sums the monitor's scorer makes (needed there so that a score never depends on how
    many rows share a call; one row needs no such care). Equal to ``predict_proba_many`` up to
    rounding, and several times cheaper, which matters when river calls it once per sample.
    Valid for one snapshot of the weights and the normaliser; ``fresh`` says whether it still is.
    """

    def __init__(self, learner: OnlineLearner) -> None:
        sc = learner._scorer
        self.key = (sc, getattr(learner.normaliser, "n_seen_", 0))
        self.ok = all(hasattr(sc, a) for a in ("w1", "b1", "w2", "b2", "bn", "act"))
        d = learner.config.n_features
        if not self.ok:
            return
        if learner.config.normalise:
            learner._normalised(np.empty((0, d)))  # refresh the learner's cached statistics
            if learner._centre is None:  # not fitted yet: the learner says what that means
                self.ok = False
                return
            scale, shift = learner._inv_scale, -learner._centre * learner._inv_scale  # z = x * scale + shift
        else:
            scale, shift = np.ones(d), np.zeros(d)
        if sc.bn is not None:
            scale, shift = scale * sc.bn[0], shift * sc.bn[0] + sc.bn[1]
        # (d + 1, h): the folded weights, and the bias as a last row that a 1.0 after the row multiplies
        self.w = np.vstack([scale[:, None] * sc.w1, (shift @ sc.w1 + sc.b1)[None, :]])
        self.w2, self.b2, self.relu = sc.w2, sc.b2, sc.act == "relu"

    def fresh(self, learner: OnlineLearner) -> bool:
        return self.key[0] is learner._scorer and self.key[1] == getattr(learner.normaliser, "n_seen_", 0)

    def proba(self, learner: OnlineLearner, row: list) -> float:
        """P(True) of one row: a list of d finite floats followed by 1.0 (the bias's input)."""
        if not self.ok:
            return float(learner.predict_proba_many(np.array([row[:-1]], dtype=np.float64))[0])
        h = np.dot(row, self.w)  # (h,)
        h = np.maximum(h, 0.0, out=h) if self.relu else np.tanh(h)
        return 0.5 * (1.0 + math.tanh(0.5 * (float(np.dot(h, self.w2)) + self.b2)))


class OnlineMLPClassifier(base.MiniBatchClassifier):
    """Binary classifier: MLP and Adam, trained in mini-batches.

    ``learn_one`` hands the reading to the learner's buffer; the weights change only when the
    buffer holds a mini-batch (8 readings at first, growing to ``batch_size``), and each step also
    replays recent readings. ``learn_many`` does the same for a DataFrame and gives the same model
    as calling ``learn_one`` on each row.

    The network is the monitor's default (`models.network.NetworkConfig`: BatchRenorm1d input
    layer, one ReLU hidden layer, one logit), with a wider hidden layer (32 rather than 16: at 16,
    Bananas falls below 0.85, docs/river.md). The training schedule is chosen for river's small
    datasets, where a sample costs LogisticRegression tens of microseconds
    (``python benchmarks/river_datasets.py --seeds 0 1 2``, docs/river.md): first mini-batches of 8
    and 3 Adam steps each at lr 0.025 during the warm-up, prior 0.5, and five of the learner's
    levers off: early steps after a mistake (they double the steps and mini-batches for no
    accuracy measured on Phishing), replay draws without replacement (no better, and slower),
    drift detection (it found no change in Phishing or Bananas for any of seeds 0-2, so the
    models are the same, and it scores every mini-batch once more), the running normaliser
    (``normalise=False``: a river pipeline puts a StandardScaler in front, as river's examples and
    the benchmark do, and BatchRenorm1d, the input layer, standardises by its running statistics
    too; behind a StandardScaler the accuracies with it on and off are within 0.006 on Phishing
    and Bananas, seeds 0-2, and off, the estimator takes about a seventh less time) and
    ``preserve`` (the first layer rescaled after each step as BatchRenorm1d's running statistics
    move: 12 of a step's 76 torch calls; without it Phishing is no lower, Bananas 0.001-0.003
    lower), docs/river.md. With
    nothing scaling the inputs, set ``normalise=True`` (without a scaler it is up to 0.01 better
    on Phishing and 0.014 on Bananas). The monitor's own
    schedule (16 steps on mini-batches of 4) gives 0.872-0.878 on Phishing, below
    LogisticRegression, at thousands of steps.

    Parameters
    ----------
    hidden
        Hidden layer width.
    lr
        Adam learning rate.
    batch_size
        Largest mini-batch of new readings per training step.
    min_batch
        Size of the first mini-batches (at least 2: BatchNorm trains on two readings or more).
    warm_steps
        Adam steps per mini-batch during the warm-up (the first 2,000 readings), 1 after it.
    normalise
        The learner's running mean/std normalisation of the inputs (off by default: see above).
    batchnorm
        The network's input layer: "renorm" (BatchRenorm1d, the default), "plain" (BatchNorm1d) or
        "none" (True/False mean "plain"/"none").
    prior
        P(True) said before anything is learned, and the output bias the network starts from.
    max_features
        Number of input slots; None: the number of features of the first reading learned from
        (the number of columns of the first ``learn_many`` batch).
    seed
        Seed for the weights and the replay draws; equal seeds give identical models.

    Attributes
    ----------
    learner_ : OnlineLearner
        The trainer, built on the first reading learned from.
    slots_ : dict
        Feature name -> input column.
    n_ignored_ : int
        Feature values ignored because every slot was taken when their feature first appeared.

    Examples
    --------
    >>> model = OnlineMLPClassifier(seed=0)
    >>> model.predict_proba_one({"hr": 80.0})  # before any learning: the prior
    {False: 0.5, True: 0.5}
    >>> for i in range(80):
    ...     hr = 70.0 + (7 * i) % 40
    ...     model.learn_one({"hr": hr}, hr > 91)
    >>> model.predict_one({"hr": 75.0}), model.predict_one({"hr": 105.0})
    (False, True)
    >>> model
    OnlineMLPClassifier(batch_size=256, batchnorm='renorm', hidden=32, lr=0.025, max_features=None, min_batch=8, normalise=False, prior=0.5, seed=0, warm_steps=3)
    """

    def __init__(self, *, hidden: int = 32, lr: float = 0.025, batch_size: int = _LEARN.batch_size,
                 min_batch: int = 8, warm_steps: int = 3, normalise: bool = False,
                 batchnorm: str = _NET.batchnorm, prior: float = 0.5, max_features: int | None = None,
                 seed: int = 0) -> None:
        self.hidden = hidden
        self.lr = lr
        self.batch_size = batch_size
        self.min_batch = min_batch
        self.warm_steps = warm_steps
        self.normalise = normalise
        self.batchnorm = batchnorm
        self.prior = prior
        self.max_features = max_features
        self.seed = seed

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(self._get_params().items()))
        return f"{type(self).__name__}({params})"

    def __getstate__(self) -> dict:
        """Pickled without the one-row scorer: a cache, rebuilt on the next prediction (so predicting
        leaves the pickle as it was)."""
        state = self.__dict__.copy()
        if "_one" in state:
            state["_one"] = None
        return state

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"max_features": 12, "hidden": 8}

    def _unit_test_skips(self) -> set[str]:
        return set()

    @property
    def n_slots_(self) -> int:
        return self.learner_.config.n_features if hasattr(self, "learner_") else 0

    # -- features to rows ---------------------------------------------------------------------
    def _build(self, n_features: int) -> None:
        """Create the learner on the first reading (or batch) learned from."""
        d = self.max_features if self.max_features is not None else n_features
        if d < 1:
            raise ValueError(f"max_features must be at least 1, got {self.max_features}")
        config = LearnerConfig(n_features=d, hidden=self.hidden, lr=self.lr, batch_size=self.batch_size,
                               min_batch=self.min_batch, warm_steps=self.warm_steps, normalise=self.normalise,
                               batchnorm=self.batchnorm, prior=self.prior,
                               early=False, replay_unique=False, drift_errors=0,
                               preserve=False)  # see the class docstring
        self.learner_ = ManualStepLearner(config, seed=self.seed)  # the learner, its step's gradient written by hand
        self.slots_: dict = {}
        self._names = [_FREE] * d  # slot -> feature name, for reading a dict in slot order
        self.n_ignored_ = 0
        self._pend_rows: list = []  # filled rows (lists) learned but not yet handed to the learner (fewer than its room())
        self._pend_labels: list = []
        self._n_settled = 0  # of them, those already in _sum and _count (the rest are complete rows)
        self._sum = np.zeros(d)  # (d,) sum of the values learned for each slot
        self._count = np.zeros(d)  # (d,) how many values were learned for each slot
        self._one = None  # _OneRow of the current weights, built when predict_proba_one first needs it

    def _claim(self, names) -> None:
        """Give slots to names not seen before, in sorted order, while any are free.

        Sorted (by repr), so the layout never depends on the order of a dict's keys.
        """
        for name in sorted(names, key=repr):
            if name not in self.slots_ and len(self.slots_) < self.n_slots_:
                self._names[len(self.slots_)] = name
                self.slots_[name] = len(self.slots_)

    def _rows(self, X: "pd.DataFrame") -> tuple[np.ndarray, np.ndarray]:
        """(n, d) raw values and (n, d) mask of the values present, in slot order."""
        n, d = len(X), self.n_slots_
        vals = np.zeros((n, d))
        present = np.zeros((n, d), dtype=bool)
        for name, j in self.slots_.items():
            if name in X.columns:
                col = np.asarray(X[name], dtype=np.float64)
                ok = np.isfinite(col)
                vals[ok, j] = col[ok]
                present[:, j] = ok
        return vals, present

    def _fill(self, vals: np.ndarray, present: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Missing values replaced by the running mean per row (sums/counts before that row, (n, d))."""
        if present is None:
            return vals
        mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        return np.where(present, vals, mean)

    def _row_slow(self, x: dict) -> tuple[np.ndarray, np.ndarray]:
        vals = np.zeros((1, self.n_slots_))
        present = np.zeros((1, self.n_slots_), dtype=bool)
        for name, v in x.items():
            j = self.slots_.get(name)
            if j is not None and v is not None:
                v = float(v)
                if math.isfinite(v):
                    vals[0, j], present[0, j] = v, True
        return vals, present

    # -- predicting ---------------------------------------------------------------------------
    def predict_proba_many(self, X: "pd.DataFrame") -> "pd.DataFrame":
        """P(False) and P(True) for each row of X (columns ``[False, True]``, X's index)."""
        import pandas as pd

        p = self._proba(X)
        return pd.DataFrame({False: 1.0 - p, True: p}, index=X.index)

    def _proba(self, X: "pd.DataFrame") -> np.ndarray:
        if not hasattr(self, "learner_"):
            return np.full(len(X), float(self.prior))
        vals, present = self._rows(X)
        s, c = self._unsettled()  # the running means without changing any state
        rows = self._fill(vals, present, (self._sum + s)[None, :], (self._count + c)[None, :])
        return self.learner_.predict_proba_many(rows)

    def predict_proba_one(self, x: dict, **kwargs) -> dict:
        """{False: 1 - p, True: p}; never changes the model, works before any learning."""
        p = self._proba_one(x)
        return {False: 1.0 - p, True: p}

    def predict_one(self, x: dict, **kwargs) -> bool:
        """True when P(True) > 0.5: what ``max`` over ``predict_proba_one`` says (a tie is False), without the dict."""
        return self._proba_one(x) > 0.5

    def _proba_one(self, x: dict) -> float:
        if not hasattr(self, "learner_"):
            return float(self.prior)
        one = self._one
        if one is None or not one.fresh(self.learner_):
            one = self._one = _OneRow(self.learner_)
        vals = list(map(x.get, self._names))  # as _row, without the array: the common case
        try:
            if all(map(math.isfinite, vals)):
                vals.append(1.0)
                return one.proba(self.learner_, vals)
        except TypeError:
            pass
        vals, present = self._row_slow(x)
        s, c = self._unsettled()
        return one.proba(self.learner_, self._fill(vals, present, self._sum + s, self._count + c)[0].tolist() + [1.0])

    def predict_many(self, X: "pd.DataFrame") -> "pd.Series":
        import pandas as pd
        return pd.Series(self._proba(X) > 0.5, index=X.index)

    # -- learning -----------------------------------------------------------------------------
    def learn_one(self, x: dict, y, **kwargs) -> None:
        """Add one reading to the learner's buffer (a training step runs when it holds a mini-batch)."""
        label = _label(y)
        if not hasattr(self, "learner_"):
            if not x and self.max_features is None:
                return  # nothing to size the network by; the reading teaches nothing
            self._build(len(x))
        if len(self.slots_) < len(self._names):
            self._claim(k for k, v in x.items() if v is not None and v == v)
        if not x.keys() <= self.slots_.keys():
            self.n_ignored_ += sum(1 for k, v in x.items() if k not in self.slots_ and v is not None and v == v)
        vals = list(map(x.get, self._names))  # None for a name x lacks: the slow path fills it
        try:
            full = all(map(math.isfinite, vals))  # the common case: every slot has a number
        except TypeError:  # None, or a value float() has to convert
            full = False
        if not full:  # fill with the running means, which take in every row before this one
            self._settle()
            raw, present = self._row_slow(x)
            vals = self._fill(raw, present, self._sum, self._count)[0].tolist()
            self._sum += raw[0]
            self._count += present[0]
            self._n_settled = len(self._pend_rows) + 1
        # Rows wait here (as lists: complete ones enter the running sums when they are handed on)
        # until they fill the learner's mini-batch, then go in one call: the learner changes
        # nothing before its mini-batch is full (its early steps are off here), so this is the
        # same model, with less overhead per sample.
        self._pend_rows.append(vals)
        self._pend_labels.append(label)
        if len(self._pend_rows) >= self.learner_.room():
            self._flush()

    def learn_many(self, X: "pd.DataFrame", y: "pd.Series") -> None:
        """Learn the rows of X in order, exactly as ``learn_one`` on each row would."""
        labels = _labels(y)
        if len(labels) != len(X):
            raise ValueError(f"learn_many: X has {len(X)} rows but y has {len(labels)} labels")
        if not len(X):
            return
        if not hasattr(self, "learner_"):
            if not len(X.columns) and self.max_features is None:
                return  # nothing to size the network by
            self._build(len(X.columns))
        self._learn(X, labels)

    def _flush(self) -> None:
        """Hand the rows waiting in learn_one's buffer to the learner."""
        if self._pend_rows:
            rows = np.array(self._pend_rows)  # (k, d)
            if self._n_settled < len(rows):  # the complete rows enter the running sums (as _settle)
                self._sum += np.add.reduce(rows[self._n_settled:], axis=0)
                self._count += float(len(rows) - self._n_settled)
            self.learner_.learn_many(rows, np.array(self._pend_labels))
            self._pend_rows, self._pend_labels, self._n_settled = [], [], 0

    def _unsettled(self) -> tuple[np.ndarray, np.ndarray]:
        """(d,) sums and counts of the waiting complete rows not yet in ``_sum`` and ``_count``."""
        rows = self._pend_rows[self._n_settled:]
        if not rows:
            return 0.0, 0.0
        return np.add.reduce(np.array(rows), axis=0), float(len(rows))

    def _settle(self) -> None:
        """Bring the running sums up to date with every row learned."""
        s, c = self._unsettled()
        self._sum += s
        self._count += c
        self._n_settled = len(self._pend_rows)

    def _learn(self, X: "pd.DataFrame", labels: np.ndarray) -> None:
        self._flush()
        # New features claim free slots in order of first appearance (row, then column), as a
        # learn_one loop would; a row before a feature's first value sees that slot as unseen.
        notna = X.notna().to_numpy()  # (n, k)
        has = notna.any(axis=0)
        first = np.where(has, notna.argmax(axis=0), len(X))
        order = sorted(np.flatnonzero(has).tolist(), key=lambda i: (first[i], repr(X.columns[i])))
        for _, group in itertools.groupby(order, key=lambda i: first[i]):  # row by row, as learn_one
            self._claim([X.columns[i] for i in group])
        self.n_ignored_ += int(sum(notna[:, i].sum() for i in order if X.columns[i] not in self.slots_))
        vals, present = self._rows(X)
        # Running mean before each row: the sums and counts of the rows above it.
        csum = np.cumsum(np.where(present, vals, 0.0), axis=0)  # (n, d)
        ccount = np.cumsum(present, axis=0, dtype=np.float64)  # (n, d)
        sums = self._sum + csum - np.where(present, vals, 0.0)
        counts = self._count + ccount - present
        rows = self._fill(vals, present, sums, counts)
        self.learner_.learn_many(rows, labels)
        self._sum = self._sum + csum[-1]
        self._count = self._count + ccount[-1]
