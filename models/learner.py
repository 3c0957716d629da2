"""The online learner: running normaliser + network + Adam, trained test-then-train in mini-batches.

Readings are scored with ``predict_proba_many`` and only then handed to ``learn_many``; they wait in a
pending buffer until it holds a mini-batch, and only then does anything learned change (normaliser
statistics, weights). ``room()`` says how many readings fit before that happens, so a caller that
scores and learns in slices of at most ``room()`` readings gets the same result whatever the slicing:
one reading at a time from a live feed, or thousands from a file.

What makes it learn from few readings (issue 5; measured one lever at a time with
``python benchmarks/learning.py --set FIELD=VALUE``, minimum over seeds 0-2 of the single-pass
accuracy, before -> after):

- ``batchnorm="renorm"`` (default, issue 13): the input layer is `models.network.BatchRenorm1d`
  (Batch Renormalization), after the running normaliser. Plain BatchNorm1d in training mode
  normalises by the statistics of the mini-batch, and consecutive readings are correlated, so it
  learns "above the recent mean" rather than "above 91" (sample 0.978, synthetic 0.823 when it was
  the default); ``"plain"`` keeps it to show that, ``"none"`` leaves the layer out.
- ``preserve``: when the normaliser's statistics move, the first layer is rescaled so the function
  of the raw reading is unchanged (see ``_renormalise``). Sample 0.993 -> 0.997, synthetic
  0.954 -> 0.997, slow drift 0.963 -> 0.971.
- ``warm_restart``: the first reading of a class not seen before (the first abnormal reading)
  restarts the warm-up (``warm_steps`` per mini-batch for ``warm_until`` more readings); the
  warm-up costs at most twice per stream. Slow drift 0.971 -> 0.992, others unchanged.
- kept from before: the replay ring of recent raw readings re-normalised at each step, small
  mini-batches growing with the stream (``growth``), 16 steps per mini-batch early (``warm_steps``)
  and the output bias from the first mini-batch's label rate (``init_bias``).
- ``early`` (issue 13): a reading the model gets wrong ends the mini-batch, so the step runs right
  after it rather than up to 4,096 readings later: every mistake while warming up, after that only
  the ``early_errors``-th (2nd) within ``drift_window`` readings. ``room(x, y)`` tells a caller where,
  before it scores, so the slicing still does not matter. ``drift_errors``: 8 readings wrong within
  100 (and 3 standard deviations above the error rate so far, as DDM tests it) is a change of regime:
  the replay ring forgets the readings from before the window's first mistake (a moved threshold is
  not learned against 1,024 readings of the old one) and the learner warms up again for
  ``drift_warm`` (500) readings. With ``preserve``, BatchRenorm1d's running statistics moving in
  training are compensated in the next Linear layer, as the normaliser's are. Replay draws are
  without replacement. Measured in docs/learning.md.
- ``recentre`` (issue 13): at a change of regime and when a class is seen for the first time,
  BatchRenorm1d's running statistics are set to those of the readings trained on from then (the
  function kept, as with ``preserve``), so learning restarts on inputs near 0 rather than 10
  running standard deviations out (regime splice, first change: 165-270 -> 168-237 readings to
  recover). ``early_until`` (off by default): an early step after the warm-up goes on (up to that
  many optimiser steps) until the mini-batch is scored right; 8 takes the patients stream's third
  change from 117 to 0 readings to recover, but with re-centring it raised the raw-input
  BatchRenorm1d's final ablation loss to 0.10 on seed 0 (docs/learning.md).
- ``margin`` (issue 13, session 4): once warmed up, every step's batch also holds, per class, the 4
  readings the model scores nearest 0.5 (chosen again after each step among them and the new
  readings; emptied when the drift test fires). After the warm-up a step draws 256 of the 1,024
  most recent readings, so when one class is absent for a long time (a patient at 80 bpm for half an
  hour) nothing holds the boundary where the labels put it: on the patients stream it wandered by
  0.1 bpm and the next patient's readings near 91 were wrong (117 readings to recover on seed 2's
  third change; 0 with the memory). Not used while warming up (the regime stream's first change went
  from 237 to 264-385 readings to recover with it), and 4, not 8 or more: 8 took the threshold stream
  to 0.9890 and the raw-input ablation's final loss above 0.05 on seeds 0 and 4.
- tried and dropped: one replay ring per class (no measurable change: drift 0.9710 -> 0.9709,
  sample 0.9967 -> 0.9961); ``steps=2`` after the warm-up (drift 0.987, twice the steady cost).

>>> import numpy as np
>>> learner = OnlineLearner(LearnerConfig(n_features=1), seed=0)
>>> learner
OnlineLearner(normalise=True, batchnorm='renorm', hidden=16, lr=0.05, batch=4..256, seen=0, steps=0)
>>> learner.room()
4
>>> x = np.array([[80.0], [95.0], [85.0], [99.0]])
>>> learner.predict_proba_many(x).shape
(4,)
>>> losses = learner.learn_many(x, np.array([0.0, 1.0, 0.0, 1.0]))
>>> learner.n_seen_, learner.n_steps_, len(losses) > 0
(4, 16, True)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from models.adam import FlatAdam
from models.learner_config import LearnerConfig, mini_batch_size  # noqa: F401 (re-exported)
from models.network import BatchRenorm1d, NumpyScorer, build_network, make_loss
from models.normaliser import RunningNormaliser

__all__ = ["LearnerConfig", "OnlineLearner", "FrozenScorer", "mini_batch_size"]


class OnlineLearner:
    """Binary classifier that learns from a stream in mini-batches. See the module docstring."""

    def __init__(self, config: LearnerConfig = LearnerConfig(), *, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        c = config
        self.net = build_network(c.network, seed=seed)
        self.loss_fn = make_loss(c.loss)
        self.opt = FlatAdam(self.net.parameters(), lr=c.lr)  # torch.optim.Adam's update, on one flat vector
        self.normaliser = RunningNormaliser()
        self.rng = np.random.default_rng(seed)
        d = c.n_features
        top = c.largest_batch
        self._pend_x = np.empty((top, d))  # (B, d) raw readings waiting for a step
        self._pend_y = np.empty(top)
        self._n_pend = 0
        self._pend_wrong = False  # the mini-batch being filled holds a reading that calls an early step
        self._err_at = np.empty(0, dtype=np.int64)  # stream indices of the readings scored wrong, last drift_window
        self.drift_at_ = 0  # readings seen at the last change of regime detected
        self._n_judged = self._n_wrong = 0  # labelled readings, and those scored wrong, since then
        self.n_drifts_ = 0  # changes of regime detected
        self._target = config.min_batch  # size of the mini-batch being filled, fixed when it starts
        self._replay_x = np.empty((c.replay, d))  # ring of recent raw readings, (R, d)
        self._replay_y = np.empty(c.replay)
        self._n_replay = 0  # filled slots
        self._margin_x, self._margin_y = np.empty((0, d)), np.empty(0)  # per class, the readings nearest the boundary
        self._replay_at = 0  # next slot to write
        self.n_seen_ = 0  # readings handed to learn_many
        self.warm_end_ = c.warm_until  # warm steps until this many readings; a new class pushes it on
        self.classes_seen_ = [False, False]  # labels 0 and 1 seen in a trained mini-batch
        self._calls = False  # the slice _first_trigger last looked at holds a reading that calls an early step
        self._wrong_memo = None  # (model key, stream index of x[0], x, y, p, wrong) of the last readings scored
        self.n_steps_ = 0  # optimiser steps taken
        self.n_skipped_ = 0  # steps skipped because the loss or a gradient was not finite
        self.last_loss_: float | None = None
        self.net.eval()
        if c.init_bias:
            self._set_output_bias(c.prior)
        self._centre = self._inv_scale = None  # the normaliser's statistics, cached at each step
        self._stats_at = 0  # normaliser.n_seen_ when they were cached
        self._params = list(self.net.parameters())
        self._buffers = list(self.net.buffers())  # BatchNorm's running statistics and batch count
        self._stats = [b for b in self._buffers if b.is_floating_point()]  # those that can overflow
        self._modal = any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.Dropout)) for m in self.net)
        # preserve also when BatchRenorm1d's running statistics move as it trains (see _optimise)
        self._follow = c.preserve and isinstance(self.net[0], BatchRenorm1d)
        if self._follow:  # numpy views of the Linear layer after it (they share the optimiser's flat vector)
            self._first_linear = (self.net[1].weight.detach().numpy(), self.net[1].bias.detach().numpy())
        self._scorer = NumpyScorer(self.net)  # float64 snapshot of the weights, renewed after each step

    def __repr__(self) -> str:
        c = self.config
        return (f"OnlineLearner(normalise={c.normalise}, batchnorm={c.batchnorm!r}, hidden={c.hidden}, "
                f"lr={c.lr}, batch={c.min_batch}..{c.batch_size}, seen={self.n_seen_}, steps={self.n_steps_})")

    # -- scoring -------------------------------------------------------------------------------
    def _normalised(self, x: np.ndarray) -> np.ndarray:
        """(n, d) float64 inputs of the network: (x - mean) * (1 / std), 0 for a constant feature."""
        x = np.asarray(x, dtype=np.float64)
        if not self.config.normalise:
            return x
        if not self._stats_current():  # changed (or loaded) since cached
            self._refresh_stats()
        if self._centre is None:  # not fitted: the normaliser says what to do
            return self.normaliser.transform(x)
        if not np.isfinite(x).all():
            return self.normaliser.transform(x)  # raises, naming the rows
        return (x - self._centre) * self._inv_scale

    def _stats_current(self) -> bool:
        """Whether the cached centre and inverse scale are the normaliser's as it is now."""
        return self._stats_at == getattr(self.normaliser, "n_seen_", 0)

    def _refresh_stats(self) -> None:
        """Cache the normaliser's centre and inverse scale (d,) after it changed."""
        norm = self.normaliser
        self._stats_at = getattr(norm, "n_seen_", 0)
        if not norm._fitted():
            self._centre = self._inv_scale = None
            return
        std = norm.std_
        scaled = std > norm.eps * np.maximum(1.0, np.abs(norm.mean_))  # as RunningNormaliser.transform
        self._centre = norm.mean_.copy()
        self._inv_scale = np.where(scaled, 1.0 / np.where(scaled, std, 1.0), 0.0)

    def _inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self._normalised(x).astype(np.float32))  # (n, d)

    def predict_proba_many(self, x: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row of x (n, d); never changes the learner.

        Computed in float64 numpy from a snapshot of the weights, so a reading's score is the same
        whether it is scored alone or among thousands.
        """
        if len(x) == 0:
            return np.empty(0)
        return self._scorer.predict_proba(self._normalised(x))

    def frozen(self) -> "FrozenScorer":
        """What ``predict_proba_many`` computes now, as an object later steps leave unchanged.

        For scoring on one thread while another trains (monitor.core.background_learner).
        """
        self._normalised(np.empty((0, self.config.n_features)))  # refresh the cached statistics
        return FrozenScorer(self._scorer, self._centre, self._inv_scale, normalise=self.config.normalise,
                            n_seen=self.n_seen_)

    # -- learning ------------------------------------------------------------------------------
    def _next_target(self) -> int:
        """Size of the next mini-batch: see `mini_batch_size`."""
        return mini_batch_size(self.config, self.n_seen_, warm=self.n_seen_ <= self.warm_end_)

    def room(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> int:
        """Readings learn_many accepts before the next training step changes the model.

        Given the readings to come (x (n, d) and their labels y (n,)), it also stops after the
        first one the current model gets wrong (``early``): score at most that many, learn them,
        then ask again. Without them it says how many fit before the scheduled step; a caller that
        scores and learns in such slices but passes no readings sees an early step only when a
        slice ends there (the result then depends on the slicing).
        """
        k = self._target - self._n_pend
        if x is None or not self.config.early:
            return k
        j, _ = self._first_trigger(x[:k], y[:k])
        return k if j is None else j + 1

    def _first_trigger(self, x: np.ndarray, y: np.ndarray) -> tuple[int | None, np.ndarray | None]:
        """Index of the reading of x after which an early step is due (or None), and which of x
        the model gets wrong ((n,) bool; None when neither early steps nor drift need it).

        A wrong reading (by the current model, label known) calls an early step while warming up;
        after the warm-up only when the last ``drift_window`` readings, it included, hold at least
        ``early_errors`` wrong ones. The step is due once the mini-batch being filled holds such a
        reading and at least ``early_gap`` readings. Scores are float64 and row-wise and the count
        runs over stream positions, so the index does not depend on how x was cut.
        """
        c = self.config
        if len(x) == 0 or not (c.early or c.drift_errors):
            return None, None
        y = np.asarray(y, dtype=np.float64)
        wrong = self._wrong(x, y)  # (n,)
        if not c.early or not (self._pend_wrong or wrong.any()):
            return None, wrong
        at = self.n_seen_ + np.arange(len(x))  # (n,) stream index of each reading
        calls = wrong
        if c.early_errors > 1:
            w = c.drift_window
            before = len(self._err_at) - np.searchsorted(self._err_at, at - w, side="right")  # (n,) earlier errors in window
            cw = np.cumsum(wrong)  # (n,)
            lag = np.concatenate([np.zeros(min(w, len(x)), dtype=cw.dtype), cw[:-w] if len(x) > w else cw[:0]])
            need = np.where(at < self.warm_end_, 1, c.early_errors)  # (n,) warm: every mistake counts
            calls = wrong & (before + cw - lag >= need)
        seen = np.cumsum(calls) > 0 if not self._pend_wrong else np.ones(len(x), dtype=bool)  # (n,)
        full = self._n_pend + np.arange(1, len(x) + 1) >= c.early_gap  # (n,)
        due = np.flatnonzero(seen & full)
        self._calls = bool(calls.any())
        return (int(due[0]) if due.size else None), wrong

    def _wrong(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) which readings the current model gets wrong (label known; a NaN score is wrong).

        Remembered for the last readings scored (``_memo``): ``room(x, y)`` and the ``learn_many``
        calls that follow look at the same readings, or later ones among them, with the same model,
        and scoring is the costly part.
        """
        hit = self._memo(x, y)
        if hit is not None:
            return hit[1]
        p = self._scorer.predict_proba(self._normalised(x))  # (n,)
        self._keep(x, y, p)
        return self._wrong_memo[5][:len(x)]

    def _memo(self, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(p, wrong) of readings x (n, d) from stream index n_seen_ on (labels y, if given), when the
        current model scored them last (the memo); None otherwise."""
        memo = self._wrong_memo
        if memo is None or memo[0] != (self._scorer, getattr(self.normaliser, "n_seen_", 0)):
            return None
        at = self.n_seen_ - memo[1]  # where x starts in the memo
        if at < 0 or at + len(x) > len(memo[2]) or not np.array_equal(x, memo[2][at:at + len(x)]):
            return None
        if y is not None and not np.array_equal(y, memo[3][at:at + len(y)], equal_nan=True):
            return None
        return memo[4][at:at + len(x)], memo[5][at:at + len(x)]

    def _keep(self, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
        y = np.asarray(y, dtype=np.float64)
        wrong = ~np.isnan(y) & ((p > 0.5) != (y > 0.5))  # (n,) NaN p never counts as right
        self._wrong_memo = ((self._scorer, getattr(self.normaliser, "n_seen_", 0)), self.n_seen_,
                            np.array(x, copy=True), y.copy(), p.copy(), wrong)

    def current_scores(self, x: np.ndarray, frozen: "FrozenScorer") -> np.ndarray:
        """Scores (n,) of readings x (n, d) from n_seen_ on, as `frozen` gives them: taken from the
        readings ``room(x, y)`` scored already when `frozen` is the current model, the rest scored."""
        memo = self._wrong_memo
        if memo is None or not self._is_current(frozen):
            return frozen.predict_proba_many(x)
        k = min(len(x), memo[1] + len(memo[2]) - self.n_seen_)  # readings of x the memo may hold
        hit = self._memo(x[:k]) if k > 0 else None
        if hit is None:
            return frozen.predict_proba_many(x)
        return np.concatenate([hit[0], frozen.predict_proba_many(x[k:])])

    def _is_current(self, frozen: "FrozenScorer") -> bool:
        return not (frozen.scorer is not self._scorer or (self.config.normalise and (
                frozen.centre is None or frozen.centre is not self._centre or frozen.inv_scale is not self._inv_scale
                or not self._stats_current())))

    def remember_scores(self, x: np.ndarray, y: np.ndarray, p: np.ndarray, frozen: "FrozenScorer") -> None:
        """Scores p (n,) of readings x (n, d), labels y (n,), given by `frozen` (see `frozen`): when that is
        the current model, `room` and `learn_many` take which readings it gets wrong from them instead of
        scoring the readings again (issue 15: a replay scored every reading twice)."""
        if self._is_current(frozen) and self._memo(x, y) is None:
            self._keep(x, y, p)

    def learn_many(self, x: np.ndarray, y: np.ndarray) -> list[float]:
        """Buffer readings already scored; step when the buffer holds a mini-batch.

        Returns the losses of the steps taken (often none). Rows with a NaN label update the
        normaliser but are not trained on. With ``early``, a step also runs right after a reading
        the model got wrong (see `room`).
        """
        losses: list[float] = []
        i, n = 0, len(x)
        while i < n:
            k = min(self._target - self._n_pend, n - i)
            self._calls = False
            due, wrong = self._first_trigger(x[i:i + k], y[i:i + k])
            if due is not None:
                k = due + 1
            if wrong is not None:
                self._count_errors(wrong[:k], np.asarray(y[i:i + k], dtype=np.float64))
            self._pend_x[self._n_pend:self._n_pend + k] = x[i:i + k]
            self._pend_y[self._n_pend:self._n_pend + k] = y[i:i + k]
            self._n_pend += k
            self.n_seen_ += k
            i += k
            if due is not None or self._n_pend == self._target:
                losses += self._step()
            else:
                self._pend_wrong = self._pend_wrong or self._calls
        return losses

    def _count_errors(self, wrong: np.ndarray, y: np.ndarray) -> None:
        """Record which of the next readings (stream positions n_seen_ on) the model got wrong."""
        self._n_judged += int((~np.isnan(y)).sum())
        self._n_wrong += int(wrong.sum())
        at = self.n_seen_ + np.flatnonzero(wrong)
        lo = self.n_seen_ + len(wrong) - self.config.drift_window
        if at.size:
            self._err_at = np.concatenate([self._err_at, at])
        if self._err_at.size and self._err_at[0] < lo:
            self._err_at = self._err_at[self._err_at >= lo]

    def _step(self) -> list[float]:
        c = self.config
        px, py = self._pend_x[:self._n_pend], self._pend_y[:self._n_pend]
        drifts = self.n_drifts_
        if c.drift_errors:
            self._watch_drift()
        if c.normalise:
            self._renormalise(px)
        known = ~np.isnan(py)
        new_x, new_y = px[known], py[known]
        if c.init_bias and self.n_steps_ == 0 and len(new_y):
            self._set_output_bias(new_y.mean())
        new_class = False
        for k in (0, 1):  # a class seen for the first time (the first abnormal reading) restarts the warm-up
            if not self.classes_seen_[k] and ((new_y > 0.5) == bool(k)).any():
                self.classes_seen_[k] = True
                new_class = self.n_steps_ > 0
                if c.warm_restart:
                    self.warm_end_ = max(self.warm_end_, self.n_seen_ + c.warm_until)
        if c.recentre and self._follow and (new_class or self.n_drifts_ > drifts):
            self._recentre(px, py, balanced=new_class)
        n_steps = c.warm_steps if self.n_seen_ <= self.warm_end_ else c.steps
        until = c.early_until if self._n_pend < self._target else 0  # an early step: until its readings are right
        losses = self._train(new_x, new_y, n_steps, until)
        self._remember(new_x, new_y)
        self._scorer = NumpyScorer(self.net)
        if c.margin:
            self._keep_margin(new_x, new_y)
        self._n_pend = 0
        self._pend_wrong = False
        self._target = self._next_target()
        if losses:
            self.last_loss_ = losses[-1]
        return losses

    def _train(self, new_x: np.ndarray, new_y: np.ndarray, n_steps: int, until: int) -> list[float]:
        """The optimiser steps of one mini-batch on (m, d) readings and (m,) labels: their losses."""
        losses = []
        modal = self._modal  # train/eval only matter with BatchNorm (and cost a walk over the modules)
        if modal:
            self.net.train()
        try:
            for i in range(max(n_steps, until)):
                if i >= n_steps and not self._any_wrong(new_x, new_y):
                    break
                bx, by = self._training_batch(new_x, new_y)
                if len(by) < 2:
                    break
                loss = self._optimise(bx, by)
                if loss is not None:
                    losses.append(loss)
        finally:
            if modal:
                self.net.eval()
        return losses

    def _keep_margin(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep, per class, the `margin` readings the model now scores nearest 0.5, among those kept
        and the (m, d) labelled readings x just learned (ties: the older first)."""
        cx, cy = np.concatenate([self._margin_x, x]), np.concatenate([self._margin_y, y])  # (k + m, d), (k + m,)
        if len(cy) == 0:
            return
        gap = np.abs(self._scorer.predict_proba(self._normalised(cx)) - 0.5)  # (k + m,)
        keep = [idx[np.argsort(gap[idx], kind="stable")[:self.config.margin]]
                for idx in (np.flatnonzero(cy <= 0.5), np.flatnonzero(cy > 0.5))]
        keep = np.sort(np.concatenate(keep))
        self._margin_x, self._margin_y = cx[keep], cy[keep]

    def _any_wrong(self, x: np.ndarray, y: np.ndarray) -> bool:
        """Whether the network as it is now gets any of the (m, d) readings x wrong."""
        p = NumpyScorer(self.net).predict_proba(self._normalised(x))  # (m,)
        return bool(((p > 0.5) != (y > 0.5)).any())

    def _watch_drift(self) -> None:
        """Test for a change of regime with the readings scored wrong (recorded as they were learned).

        When the last `drift_window` readings hold at least `drift_errors` of them and clearly
        more than the error rate since the last change predicts (3 standard deviations, as DDM
        tests it), the regime changed: the replay ring forgets the readings from before the
        window's first error (at most `drift_window` are kept) and the learner warms up again for
        `drift_warm` readings. Decided at a step from the readings alone, so it does not depend
        on how they were sliced.
        """
        c = self.config
        w = c.drift_window
        errs = self._err_at[self._err_at >= self.drift_at_]  # (e,) errors in the window since the last change
        if self._n_judged < 4 * w or len(errs) < c.drift_errors:  # the rate before the window: 3 windows at least
            return
        rate = (self._n_wrong - len(errs)) / max(1, self._n_judged - w)
        if len(errs) < w * rate + 3 * math.sqrt(w * rate * (1 - rate)):
            return
        first = self.n_seen_ - self._n_pend  # stream index of the first pending reading
        self.drift_at_ = self.n_seen_
        self.n_drifts_ += 1
        self._err_at = np.empty(0, dtype=np.int64)
        self._n_judged = self._n_wrong = 0
        keep = min(self._n_replay, w, max(0, first - int(errs[0])))
        if keep < self._n_replay:  # the last `keep` readings of the ring, oldest first, at slots 0..keep-1
            idx = (self._replay_at - keep + np.arange(keep)) % self._n_replay
            self._replay_x[:keep], self._replay_y[:keep] = self._replay_x[idx], self._replay_y[idx]
            self._n_replay, self._replay_at = keep, keep % c.replay
        self.warm_end_ = max(self.warm_end_, self.n_seen_ + c.drift_warm)
        self._margin_x, self._margin_y = self._margin_x[:0], self._margin_y[:0]  # the old regime's boundary

    def _recentre(self, px: np.ndarray, py: np.ndarray, *, balanced: bool) -> None:
        """Set BatchRenorm1d's running statistics to those of the replay ring and the pending (m, d)
        readings px, and rescale the next Linear layer so the function of the raw reading is kept.

        Called at a change of regime (after the ring forgot the old readings) and when a class is
        seen for the first time (``recentre``). The running statistics follow the data at momentum
        0.01 a step, so after a change the new readings sit up to 10 running standard deviations
        out (rest at 59 bpm, tachycardia at 95), where a step of the first layer moves the output by
        ten times as much: the boundary swung between "all normal" and "all abnormal" for about 150
        readings on the regime stream. With ``balanced`` (a new class) the centre is the midpoint of
        the two classes' means and the spread is measured about it, each class weighing half, so
        the few new readings are not drowned by the ring's old ones.
        """
        bn = self.net[0]
        if int(bn.num_batches_tracked) == 0:
            return  # the first training batch sets the statistics (data-dependent start)
        n = self._n_replay
        z = self._normalised(np.concatenate([self._replay_x[:n], px]))  # (n + m, d)
        y = np.concatenate([self._replay_y[:n], py])  # (n + m,) NaN: unlabelled
        parts = [z[y > 0.5], z[y <= 0.5]] if balanced else [z]
        parts = [q for q in parts if len(q)]
        if not parts or sum(map(len, parts)) < 2:
            return
        centre = np.mean([q.mean(0) for q in parts], axis=0)  # (d,)
        var = np.mean([((q - centre) ** 2).mean(0) for q in parts], axis=0)  # (d,)
        if not (np.isfinite(var).all() and (var > 0).all()):
            return
        mean0, std0 = _eval_stats(bn)
        with torch.no_grad():
            bn.running_mean.copy_(torch.from_numpy(centre.astype(np.float32)))
            bn.running_var.copy_(torch.from_numpy(np.maximum(var - bn.eps, 0.0).astype(np.float32)))
        mean1, std1 = _eval_stats(bn)
        _rescale_linear(self._first_linear, std1 / std0, (mean1 - mean0) / std0)
        self._scorer = NumpyScorer(self.net)

    def _renormalise(self, px: np.ndarray) -> None:
        """Update the normaliser, and keep the network's function of the raw reading unchanged.

        When mean and std move from (m0, s0) to (m1, s1), a reading's input moves from
        (x - m0) / s0 to (x - m1) / s1; rescaling the first Linear layer's columns by s1 / s0 and
        shifting its bias by W (m1 - m0) / s0 gives exactly the old pre-activations (the idea of
        PopArt, van Hasselt et al. 2016, applied to the inputs). So a new statistic never moves the
        learned threshold: learning only has to follow what really changed. With a BatchNorm input
        layer its running statistics are moved instead (its eval output is then unchanged).
        """
        norm = self.normaliser
        self._normalised(px[:0])  # refresh the cache if the normaliser changed behind our back
        before = (self._centre, self._inv_scale)
        norm.update(px)
        self._refresh_stats()
        m0, inv0 = before
        if m0 is None or not self.config.preserve:
            return
        m1, inv1 = self._centre, self._inv_scale
        ok = (inv0 > 0) & (inv1 > 0)  # (d,) features scaled before and after
        if not ok.any():
            return
        first = self.net[0]
        if isinstance(first, torch.nn.BatchNorm1d):  # the input becomes u * s0 / s1 + (m0 - m1) / s1
            scale = np.where(ok, inv1 / np.where(ok, inv0, 1.0), 1.0)  # (d,) s0 / s1
            offset = np.where(ok, (m0 - m1) * inv1, 0.0)  # (d,)
            _reparametrise(first, torch.from_numpy(scale.astype(np.float32)), torch.from_numpy(offset.astype(np.float32)))
            return
        ratio = np.where(ok, inv0 / np.where(ok, inv1, 1.0), 1.0)  # (d,) s1 / s0
        shift = np.where(ok, (m1 - m0) * inv0, 0.0)  # (d,) (m1 - m0) / s0
        _rescale_inputs(self.net[0], torch.from_numpy(ratio.astype(np.float32)),
                        torch.from_numpy(shift.astype(np.float32)))

    def _training_batch(self, new_x: np.ndarray, new_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The readings every step of the mini-batch trains on (`_fixed`), and a draw of up to
        batch_size recent ones from the replay ring."""
        new_x, new_y = self._fixed(new_x, new_y)
        if self._n_replay == 0:
            return new_x, new_y
        idx = self._replay_draw()
        return (np.concatenate([new_x, self._replay_x[idx]]), np.concatenate([new_y, self._replay_y[idx]]))

    def _fixed(self, new_x: np.ndarray, new_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The new (m, d) readings and (m,) labels, followed once warmed up by the readings nearest
        the boundary (``margin``): the part of a step's batch that is the same for all its steps."""
        if len(self._margin_y) and self.n_seen_ > self.warm_end_:
            return np.concatenate([new_x, self._margin_x]), np.concatenate([new_y, self._margin_y])
        return new_x, new_y

    def _replay_draw(self) -> np.ndarray:
        """(k,) slots of the replay ring for one step, k = min(filled slots, batch_size)."""
        k = min(self._n_replay, self.config.batch_size)
        if self.config.replay_unique:  # without replacement (issue 13: sample 0.9950 -> 0.9956 min)
            return self.rng.choice(self._n_replay, size=k, replace=False)
        return self.rng.integers(0, self._n_replay, size=k)  # with replacement

    def _optimise(self, bx: np.ndarray, by: np.ndarray) -> float | None:
        """One Adam step on (m, d) raw readings and their (m,) labels; None when skipped (not finite).

        A skipped step leaves everything as it was, BatchNorm's running statistics included.
        """
        saved = [b.numpy().copy() for b in self._buffers] if self._modal else None  # numpy: cheaper than clone
        follow = self._follow and int(self.net[0].num_batches_tracked) > 0  # not the data-dependent start
        if follow:
            mean0, std0 = _eval_stats(self.net[0])
        out = self.net(self._inputs(bx))[:, 0]  # (m,)
        loss = self.loss_fn(out, torch.from_numpy(by.astype(np.float32)))
        value = float(loss.detach())
        if not math.isfinite(value):
            return self._skip(saved)
        if saved is not None and not all(np.isfinite(b.numpy()).all() for b in self._stats):
            return self._skip(saved)  # BatchNorm's running variance overflowed on an extreme batch
        grad = self.opt.flat_grad(torch.autograd.grad(loss, self._params, allow_unused=True))  # (P,)
        if not bool(torch.isfinite(grad).all()):
            return self._skip(saved)
        self.opt.step(grad)
        if follow:  # BatchRenorm1d's running statistics moved in this forward pass: keep the function
            mean1, std1 = _eval_stats(self.net[0])
            _rescale_linear(self._first_linear, std1 / std0, (mean1 - mean0) / std0)
        self.n_steps_ += 1
        return value

    def _skip(self, saved: list[np.ndarray] | None) -> None:
        self.n_skipped_ += 1
        if saved is not None:
            self._restore_buffers(saved)
        return None

    def _remember(self, x: np.ndarray, y: np.ndarray) -> None:
        cap = self.config.replay
        if cap == 0 or len(x) == 0:
            return
        x, y = x[-cap:], y[-cap:]
        idx = (self._replay_at + np.arange(len(x))) % cap
        self._replay_x[idx], self._replay_y[idx] = x, y
        self._replay_at = int((self._replay_at + len(x)) % cap)
        self._n_replay = min(cap, self._n_replay + len(x))

    def _set_output_bias(self, rate: float) -> None:
        last = [m for m in self.net if isinstance(m, torch.nn.Linear)][-1]
        rate = min(max(rate, 0.05), 0.95)
        with torch.no_grad():
            last.bias.fill_(math.log(rate / (1 - rate)))

    # -- numerical guard and state (appended: the rest of the class is left as it was) --------
    def _restore_buffers(self, saved: list[np.ndarray]) -> None:
        """Undo what a skipped step's forward pass did to BatchNorm's running statistics."""
        with torch.no_grad():
            for b, old in zip(self._buffers, saved):
                b.copy_(torch.from_numpy(old))

    def __getstate__(self) -> dict:
        """Pickle through `state_dict`: the weights are views into the optimiser's flat vector,
        which a plain pickle of the attributes would tear apart. Tensors travel as numpy arrays,
        so equal learners pickle to equal bytes (river's checks compare them)."""
        return {"state": _map_tensors(self.state_dict(), lambda t: ("tensor", t.numpy()))}

    def __setstate__(self, d: dict) -> None:
        state = _unmap_tensors(d["state"])
        self.__init__(LearnerConfig(**state["config"]), seed=state["seed"])
        self.load_state_dict(state)

    def state_dict(self) -> dict:
        """Everything a restart needs, as tensors and plain values (``torch.load(weights_only=True)``-safe).

        Network and Adam state, normaliser, the pending mini-batch and its target size, the replay
        ring, the numpy generator's state and the counters. The float64 scorer is rebuilt on load.
        """
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(a, dtype=np.float64))
        n, r = self._n_pend, self._n_replay
        return {
            "config": self.config.to_dict(), "seed": self.seed,
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "opt": self.opt.state_dict(), "normaliser": self.normaliser.state_dict(),
            "rng": self.rng.bit_generator.state,
            "pend_x": t(self._pend_x[:n]), "pend_y": t(self._pend_y[:n]), "target": self._target,
            "replay_x": t(self._replay_x[:r]), "replay_y": t(self._replay_y[:r]), "replay_at": self._replay_at,
            "n_seen": self.n_seen_, "n_steps": self.n_steps_, "n_skipped": self.n_skipped_,
            "last_loss": self.last_loss_, "warm_end": self.warm_end_, "classes_seen": list(self.classes_seen_),
            "pend_wrong": self._pend_wrong, "err_at": torch.from_numpy(self._err_at.copy()),
            "drift_at": self.drift_at_, "n_drifts": self.n_drifts_, "n_judged": self._n_judged,
            "n_wrong": self._n_wrong, "margin_x": t(self._margin_x), "margin_y": t(self._margin_y),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict` of a learner with the same config (ValueError otherwise)."""
        saved = LearnerConfig(**state["config"])
        if saved != self.config:
            diff = {k: (v, getattr(self.config, k)) for k, v in saved.to_dict().items()
                    if getattr(self.config, k) != v}
            raise ValueError("learner config differs: " + ", ".join(
                f"{k} saved {a!r}, now {b!r}" for k, (a, b) in diff.items()))
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.normaliser.load_state_dict(state["normaliser"])
        self.rng.bit_generator.state = state["rng"]
        n, r = len(state["pend_y"]), len(state["replay_y"])
        self._pend_x[:n], self._pend_y[:n] = state["pend_x"].numpy(), state["pend_y"].numpy()
        self._replay_x[:r], self._replay_y[:r] = state["replay_x"].numpy(), state["replay_y"].numpy()
        self._n_pend, self._n_replay = n, r
        self._target, self._replay_at = int(state["target"]), int(state["replay_at"])
        self.n_seen_, self.n_steps_ = int(state["n_seen"]), int(state["n_steps"])
        self.n_skipped_, self.last_loss_ = int(state["n_skipped"]), state["last_loss"]
        self.warm_end_ = int(state["warm_end"])
        self.classes_seen_ = [bool(v) for v in state["classes_seen"]]
        self._pend_wrong = bool(state.get("pend_wrong", False))  # these four: absent before issue 13
        self._err_at = np.asarray(state["err_at"].numpy() if "err_at" in state else [], dtype=np.int64)
        self.drift_at_, self.n_drifts_ = int(state.get("drift_at", 0)), int(state.get("n_drifts", 0))
        self._n_judged, self._n_wrong = int(state.get("n_judged", 0)), int(state.get("n_wrong", 0))
        d = self.config.n_features  # the readings nearest the boundary: absent before they were kept
        self._margin_x = state["margin_x"].numpy().reshape(-1, d).copy() if "margin_x" in state else np.empty((0, d))
        self._margin_y = state["margin_y"].numpy().copy() if "margin_y" in state else np.empty(0)
        self._refresh_stats()
        self.net.eval()
        self._scorer = NumpyScorer(self.net)


@torch.no_grad()
def _reparametrise(bn: torch.nn.BatchNorm1d, scale: torch.Tensor, offset: torch.Tensor) -> None:
    """The input of `bn` becomes ``u * scale + offset`` (d,): move its running statistics to match."""
    bn.running_mean.mul_(scale).add_(offset)
    # (u - mean) / sqrt(var + eps) unchanged: var + eps scales by scale^2 (eps included)
    bn.running_var.add_(bn.eps).mul_(scale * scale).sub_(bn.eps).clamp_(min=0.0)


def _eval_stats(bn: torch.nn.BatchNorm1d) -> tuple[np.ndarray, np.ndarray]:
    """(d,) float64 mean and std that `bn` normalises by when scoring (eval mode)."""
    return bn.running_mean.numpy().astype(np.float64), np.sqrt(bn.running_var.numpy() + bn.eps, dtype=np.float64)


def _rescale_linear(wb: tuple[np.ndarray, np.ndarray], ratio: np.ndarray, shift: np.ndarray) -> None:
    """As `_rescale_inputs`, on numpy views (h, d), (h,) of a Linear layer's weight and bias: cheaper
    than torch for these few numbers, once per optimiser step."""
    w, b = wb
    b += (w @ shift).astype(b.dtype)
    w *= ratio.astype(w.dtype)


@torch.no_grad()
def _rescale_inputs(lin: torch.nn.Linear, ratio: torch.Tensor, shift: torch.Tensor) -> None:
    """`lin`'s input u becomes ``(u - shift) / ratio`` (d,): rescale its columns and shift its bias
    so that its output for the same raw reading is unchanged (PopArt's trick, on the inputs)."""
    lin.bias.add_(lin.weight @ shift)  # weight (h, d)
    lin.weight.mul_(ratio)


class FrozenScorer:
    """A learner's scoring function at one moment: statistics and weights (see OnlineLearner.frozen)."""

    def __init__(self, scorer: NumpyScorer, centre: np.ndarray | None, inv_scale: np.ndarray | None, *,
                 normalise: bool, n_seen: int) -> None:
        self.scorer, self.centre, self.inv_scale = scorer, centre, inv_scale
        self.normalise = normalise
        self.n_seen = n_seen  # readings the learner had learned from

    def __repr__(self) -> str:
        return f"FrozenScorer(n_seen={self.n_seen}, {self.scorer!r})"

    def predict_proba_many(self, x: np.ndarray) -> np.ndarray:
        """As OnlineLearner.predict_proba_many at the moment this was taken."""
        if len(x) == 0:
            return np.empty(0)
        x = np.asarray(x, dtype=np.float64)
        if self.normalise:
            if not np.isfinite(x).all():
                RunningNormaliser().transform(x)  # raises, naming the rows
            x = np.zeros_like(x) if self.centre is None else (x - self.centre) * self.inv_scale
        return self.scorer.predict_proba(x)


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj.detach())
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_tensors(v, fn) for v in obj]
    return obj


def _unmap_tensors(obj):
    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "tensor":
        return torch.from_numpy(np.array(obj[1]))
    if isinstance(obj, dict):
        return {k: _unmap_tensors(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unmap_tensors(v) for v in obj]
    return obj
