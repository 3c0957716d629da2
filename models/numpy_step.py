"""The learner's training step (forward, gradient, Adam) in numpy, for the default network shapes.

A step of `models.learner.OnlineLearner` on river's small datasets is a few dozen tiny tensor
operations; torch spends far more on per-call overhead and the autograd graph than on arithmetic
(about 1-2 ms a step here, measured in docs/river.md). The network is small enough to write its
gradient by hand: ``[BatchRenorm1d | none] -> Linear -> ReLU/Tanh -> Linear`` with
BCEWithLogitsLoss. The input layer has no weights (``affine=False``), so no gradient flows
through it; in training it only turns the batch into the first Linear layer's input and moves its
running statistics. The step below does what ``OnlineLearner._optimise`` does, in float64 numpy on
the same float32 storage (the weights are views of FlatAdam's flat vector, the BatchRenorm
buffers are tensors whose memory numpy shares): same skip rules (a loss, gradient or running
statistic that is not finite leaves everything as it was), same Adam update as FlatAdam.

`NumpyStepLearner` is the learner with this step; it falls back to torch for any other network
(plain BatchNorm1d, sigmoid-bce).

>>> import numpy as np
>>> from models.learner import LearnerConfig
>>> learner = NumpyStepLearner(LearnerConfig(n_features=2), seed=0)
>>> learner.fast_
True
>>> x = np.array([[80.0, 1.0], [95.0, 2.0], [85.0, 1.5], [99.0, 2.5]])
>>> _ = learner.learn_many(x, np.array([0.0, 1.0, 0.0, 1.0]))
>>> learner.n_steps_
16
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import expit as _expit

from models.learner import LearnerConfig, OnlineLearner
from models.network import BatchRenorm1d

__all__ = ["NumpyStepLearner", "step_supported"]


def step_supported(learner: OnlineLearner) -> bool:
    """Whether `NumpyStepLearner` can take the learner's steps in numpy (else it uses torch)."""
    mods = list(learner.net)
    if mods and isinstance(mods[0], torch.nn.BatchNorm1d):
        bn = mods.pop(0)
        if type(bn) is not BatchRenorm1d or bn.affine:
            return False
    return (len(mods) == 3 and isinstance(mods[0], torch.nn.Linear) and isinstance(mods[2], torch.nn.Linear)
            and isinstance(mods[1], (torch.nn.ReLU, torch.nn.Tanh)) and learner.config.loss == "bce-logits"
            and mods[2].out_features == 1)


class NumpyStepLearner(OnlineLearner):
    """`OnlineLearner` whose optimiser step runs in numpy (see the module docstring).

    Same config, same state, same pickles and checkpoints as the learner; only ``_optimise`` differs,
    by float rounding (float64 arithmetic instead of float32).
    """

    def __init__(self, config: LearnerConfig = LearnerConfig(), *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.fast_ = step_supported(self)
        if not self.fast_:
            return
        mods = list(self.net)
        self._bn = mods.pop(0) if isinstance(mods[0], torch.nn.BatchNorm1d) else None
        lin1, act, lin2 = mods
        self._relu = isinstance(act, torch.nn.ReLU)
        flat = self.opt.flat_.numpy()  # (P,) float32, shares memory with the weights
        views = {}
        at = 0
        for p in self.opt.params:
            views[id(p)] = (at, at + p.numel())
            at += p.numel()
        self._w1 = views[id(lin1.weight)]  # slices of the flat vector: (h*d,), (h,), (h,), (1,)
        self._b1 = views[id(lin1.bias)]
        self._w2 = views[id(lin2.weight)]
        self._b2 = views[id(lin2.bias)]
        self._shape1 = tuple(lin1.weight.shape)  # (h, d)
        self._flat = flat
        self._grad = np.empty(len(flat))  # (P,) the gradient, rewritten at each step
        # The step never runs the modules, so their train/eval mode does not matter and the learner
        # need not switch it (nor save the buffers: a skipped step writes nothing).
        self._modal = False

    def _optimise(self, bx: np.ndarray, by: np.ndarray) -> float | None:
        if not self.fast_:
            return super()._optimise(bx, by)
        z = self._inputs64(bx)  # (m, d)
        bn = self._bn_forward(z) if self._bn is not None else None  # (x_hat, new mean, new var) or None
        if bn is not None:
            z = bn[0]
        w = self._flat.astype(np.float64)  # (P,) one copy of all the weights
        w1 = w[self._w1[0]:self._w1[1]].reshape(self._shape1)  # (h, d)
        b1, w2, b2 = w[self._b1[0]:self._b1[1]], w[self._w2[0]:self._w2[1]], w[self._b2[0]]  # (h,), (h,), ()
        pre = z @ w1.T + b1  # (m, h)
        a = np.maximum(pre, 0.0) if self._relu else np.tanh(pre)  # (m, h)
        logit = a @ w2 + b2  # (m,)
        with np.errstate(invalid="ignore", over="ignore"):
            loss = float(np.mean(np.logaddexp(0.0, logit) - logit * by))  # BCEWithLogitsLoss, mean
        if not math.isfinite(loss):
            return self._skip(None)
        g_logit = (_expit(logit) - by) * (1.0 / len(by))  # (m,) dloss/dlogit
        if self._relu:
            g_pre = (g_logit[:, None] * w2) * (pre > 0.0)  # (m, h) dloss/dpre
        else:
            g_pre = (g_logit[:, None] * w2) * (1.0 - a * a)
        grad = self._grad  # (P,) float64, in the optimiser's order
        grad[self._w1[0]:self._w1[1]].reshape(self._shape1)[...] = g_pre.T @ z
        grad[self._b1[0]:self._b1[1]] = g_pre.sum(axis=0)
        grad[self._w2[0]:self._w2[1]] = g_logit @ a
        grad[self._b2[0]] = g_logit.sum()
        if not math.isfinite(grad.sum()):  # NaN or inf in an entry (finite float64 gradients cannot overflow a sum)
            return self._skip(None)
        before = None
        if bn is not None:
            if not math.isfinite(bn[1].sum() + bn[2].sum()):
                return self._skip(None)  # the running statistics would overflow: nothing is written
            if getattr(self, "_follow", False) and int(self._bn.num_batches_tracked) > 0:
                before = self._bn_stats()
            self._bn_commit(bn[1], bn[2])
        self._adam(grad)
        if before is not None:
            self._follow_stats(*before)
        self.n_steps_ += 1
        return loss

    def _bn_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(d,) mean and std BatchRenorm1d normalises by when scoring."""
        bn = self._bn
        return bn.running_mean.numpy().astype(np.float64), np.sqrt(bn.running_var.numpy().astype(np.float64) + bn.eps)

    def _follow_stats(self, mean0: np.ndarray, std0: np.ndarray) -> None:
        """Where the learner keeps the function when BatchRenorm1d's running statistics move in training
        (``_follow``, issue 13's preserve extended to the layer's own statistics), do the same: the first
        Linear layer's input u becomes ``(u - shift) / ratio``, so its columns are scaled by ratio and
        its bias shifted by ``W shift`` (with W before the scaling)."""
        mean1, std1 = self._bn_stats()
        flat = self._flat
        w1 = flat[self._w1[0]:self._w1[1]].reshape(self._shape1)  # (h, d) view
        flat[self._b1[0]:self._b1[1]] += w1 @ ((mean1 - mean0) / std0)
        w1 *= std1 / std0

    def _inputs64(self, bx: np.ndarray) -> np.ndarray:
        """(m, d) float64 inputs of the network. The rows were checked finite when the normaliser
        learned them (pending and replayed readings both went through it), so no check is repeated."""
        if not self.config.normalise:
            return bx
        if self._stats_at != getattr(self.normaliser, "n_seen_", 0) or self._centre is None:
            return self._normalised(bx)  # not cached, or not fitted: the learner's own path
        return (bx - self._centre) * self._inv_scale

    def _bn_forward(self, x: np.ndarray) -> tuple:
        """BatchRenorm1d in training mode on (m, d) inputs: (x_hat, new running mean, new running var),
        the statistics as float32 (the buffers' type), so a value only float64 can hold is inf here.

        As `models.network.BatchRenorm1d.forward`; the running statistics are only computed here
        and written by `_bn_commit` once the step is known to go ahead.
        """
        bn = self._bn
        eps, mom = bn.eps, bn.momentum
        n = x.shape[0]
        mean_b = x.mean(axis=0)  # (d,)
        dev = x - mean_b  # (m, d)
        var_b = np.einsum("ij,ij->j", dev, dev) * (1.0 / n)  # (d,) biased
        inv_b = 1.0 / np.sqrt(var_b + eps)  # (d,) 1 / batch std
        unbiased = var_b * (n / (n - 1))
        if int(bn.num_batches_tracked) == 0:  # data-dependent start
            run_mean, run_var = mean_b, unbiased
        else:
            run_mean, run_var = bn.running_mean.numpy(), bn.running_var.numpy()  # float32 views, promoted below
        inv_run = 1.0 / np.sqrt(run_var + eps)  # (d,)
        r = np.clip(inv_run / inv_b, 1.0 / bn.r_max, bn.r_max)  # (d,) batch std / running std
        d = np.clip((mean_b - run_mean) * inv_run, -bn.d_max, bn.d_max)  # (d,)
        x_hat = dev * (r * inv_b) + d  # (m, d)
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, and the step is skipped
            new = np.stack([run_mean + mom * (mean_b - run_mean), run_var + mom * (unbiased - run_var)]).astype(np.float32)
        return x_hat, new[0], new[1]

    def _bn_commit(self, new_mean: np.ndarray, new_var: np.ndarray) -> None:
        bn = self._bn
        bn.running_mean.numpy()[:] = new_mean
        bn.running_var.numpy()[:] = new_var
        bn.num_batches_tracked.add_(1)

    def _adam(self, grad: np.ndarray) -> None:
        """FlatAdam.step on the shared float32 storage, in numpy."""
        opt = self.opt
        b1, b2 = opt.betas
        opt.n_steps_ += 1
        t = opt.n_steps_
        g = grad.astype(np.float32)  # (P,)
        m, v = opt.exp_avg_.numpy(), opt.exp_avg_sq_.numpy()  # (P,) views
        m += (g - m) * np.float32(1 - b1)  # lerp_
        v *= np.float32(b2)
        v += np.float32(1 - b2) * (g * g)  # addcmul_
        denom = np.sqrt(v)
        denom *= np.float32(1 / math.sqrt(1 - b2 ** t))
        denom += np.float32(opt.eps)
        self._flat -= np.float32(opt.lr / (1 - b1 ** t)) * m / denom  # addcdiv_
