"""The learner's training step in torch, with its gradient written out by hand (no autograd graph).

A step of `models.learner.OnlineLearner` is a few dozen tiny tensor operations; with autograd,
torch spends far more on recording and walking the graph, the loss module and the per-call
checks than on arithmetic. The network is small enough to write its gradient by hand:
``[BatchRenorm1d | none] -> Linear -> ReLU/Tanh -> Linear`` with BCEWithLogitsLoss. The input
layer has no weights (``affine=False``), so no gradient flows through it; in training it only turns
the batch into the first Linear layer's input and moves its running statistics. The step below does
what ``OnlineLearner._optimise`` does, in float64 torch under ``torch.no_grad()`` (the weights are
read from FlatAdam's float32 flat vector into a preallocated float64 copy; the gradient is written
into a preallocated flat vector), then FlatAdam's own update: same skip rules (a loss, gradient or
running statistic that is not finite leaves everything as it was).

`ManualStepLearner` is the learner with this step; it falls back to the autograd step for any other
network (plain BatchNorm1d, sigmoid-bce).

>>> import numpy as np
>>> from models.learner import LearnerConfig
>>> learner = ManualStepLearner(LearnerConfig(n_features=2), seed=0)
>>> learner.manual_
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
import torch.nn.functional as F

from models.learner import LearnerConfig, OnlineLearner
from models.scripted_steps import bn_train, compiled as compiled_steps
from models.network import BatchRenorm1d

__all__ = ["ManualStepLearner", "manual_step_supported"]


def manual_step_supported(learner: OnlineLearner) -> bool:
    """Whether `ManualStepLearner` has a hand-written step for the learner's network (else autograd)."""
    mods = list(learner.net)
    if mods and isinstance(mods[0], torch.nn.BatchNorm1d):
        bn = mods.pop(0)
        if type(bn) is not BatchRenorm1d or bn.affine:
            return False
    return (len(mods) == 3 and isinstance(mods[0], torch.nn.Linear) and isinstance(mods[2], torch.nn.Linear)
            and isinstance(mods[1], (torch.nn.ReLU, torch.nn.Tanh)) and learner.config.loss == "bce-logits"
            and mods[2].out_features == 1)


class ManualStepLearner(OnlineLearner):
    """`OnlineLearner` whose optimiser step is written out in torch ops (see the module docstring).

    Same config, same state, same pickles and checkpoints as the learner; only ``_optimise`` differs,
    by float rounding (float64 arithmetic before Adam instead of float32).
    """

    def __init__(self, config: LearnerConfig = LearnerConfig(), *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.manual_ = manual_step_supported(self)
        if not self.manual_:
            return
        mods = list(self.net)
        self._bn = mods.pop(0) if isinstance(mods[0], torch.nn.BatchNorm1d) else None
        lin1, act, lin2 = mods
        self._relu = isinstance(act, torch.nn.ReLU)
        spans, at = {}, 0
        for p in self.opt.params:
            spans[id(p)] = (at, at + p.numel())
            at += p.numel()
        self._w64 = torch.empty(at, dtype=torch.float64)  # (P,) float64 copy of the weights, per step
        self._grad64 = torch.empty(at, dtype=torch.float64)  # (P,) the gradient, rewritten at each step
        self._grad = torch.empty(at)  # (P,) float32, what FlatAdam takes
        h, d = lin1.weight.shape

        def views(flat: torch.Tensor) -> tuple:  # (h, d), (h,), (h,), (1,) views of a flat vector
            (a, b), (c, e), (f, g), (i, j) = (spans[id(lin1.weight)], spans[id(lin1.bias)],
                                              spans[id(lin2.weight)], spans[id(lin2.bias)])
            return flat[a:b].view(h, d), flat[c:e], flat[f:g], flat[i:j]

        self._w = views(self._w64)
        self._w1t = self._w[0].t()  # (d, h) view, made once: _w64 is rewritten in place
        self._g = views(self._grad64)
        self._lin1 = views(self.opt.flat_)[:2]  # float32 weight and bias of the first Linear layer
        if self._bn is not None:
            # The running mean and variance become the two rows of one (2, d) tensor (same tensor
            # objects, their storage moved, as FlatAdam does with the weights): the step reads and
            # writes both with one call. Everything else still sees two (d,) buffers.
            bn = self._bn
            self._run = torch.stack([bn.running_mean, bn.running_var])  # (2, d) float32
            storage = self._run.untyped_storage()
            bn.running_mean.set_(storage, 0, (d,), (1,))
            bn.running_var.set_(storage, d, (d,), (1,))
            self._tracked = bn.num_batches_tracked  # the same tensor for good (loading copies into it)
        # The step never runs the modules, so their train/eval mode does not matter and the learner
        # need not switch it (nor save the buffers: a skipped step writes nothing).
        self._modal = False
        # a mini-batch's steps in one TorchScript call (models.scripted_steps) when the flat vector holds
        # w1, b1, w2, b2 in that order, as FlatAdam lays out the network's parameters
        order = [spans[id(p)] for p in (lin1.weight, lin1.bias, lin2.weight, lin2.bias)]
        self._scripted = compiled_steps() if order == sorted(order) and order[0][0] == 0 else None
        self._dims = (h, d)

    def _step(self) -> list[float]:
        if not self.manual_:
            return super()._step()
        with torch.no_grad():  # once for the mini-batch's steps (no tensor here requires a gradient)
            return super()._step()

    def _train(self, new_x: np.ndarray, new_y: np.ndarray, n_steps: int, until: int) -> list[float]:
        """A mini-batch's steps in one TorchScript call (`models.scripted_steps`): the same steps, the
        same draws from the replay ring, the same bits; the Python loop where that does not apply."""
        c = self.config
        k = min(self._n_replay, c.batch_size)
        fresh = not c.normalise or (self._centre is not None and self._stats_current())
        fixed_x, fixed_y = self._fixed(new_x, new_y)  # the same for all the mini-batch's steps
        if (not self.manual_ or self._scripted is None or until > n_steps or n_steps < 1 or len(fixed_y) + k < 2
                or not fresh):
            return super()._train(new_x, new_y, n_steps, until)
        new_x, new_y = fixed_x, fixed_y
        n, m = self._n_replay, len(new_y)
        if k == 0:
            draws = np.empty((n_steps, 0), dtype=np.int64)
        else:  # one draw per step, in the order _training_batch makes them
            draws = np.stack([self._replay_draw() for _ in range(n_steps)])
        rows = np.concatenate([np.broadcast_to(np.arange(m), (n_steps, m)), draws + m], axis=1)  # (S, m + k)
        x_all = np.concatenate([new_x, self._replay_x[:n]])  # (m + n, d) raw
        z_all = (x_all - self._centre) * self._inv_scale if c.normalise else x_all  # elementwise, as _inputs64
        y_all = np.concatenate([new_y, self._replay_y[:n]])
        opt, bn = self.opt, self._bn
        none = torch.zeros(0)
        tensors = [opt.flat_, opt.exp_avg_, opt.exp_avg_sq_, opt._denom,
                   self._run if bn is not None else none, self._tracked if bn is not None else none,
                   torch.from_numpy(z_all[rows]), torch.from_numpy(y_all[rows])]
        hyper = [opt.lr, opt.betas[0], opt.betas[1], opt.eps] + (
            [bn.eps, bn.momentum, bn.r_max, bn.d_max] if bn is not None else [0.0, 0.0, 1.0, 0.0])
        ints = [opt.n_steps_, int(bn is not None), int(self._follow), int(self._relu), *self._dims]
        with torch.no_grad(), torch.jit.optimized_execution(False):  # the profiling executor's first two
            # calls cost ~0.2 s (profiling, then optimising a graph that has nothing to fuse): not per call
            out = self._scripted(tensors, hyper, ints)
        losses = [v for v in out if not math.isnan(v)]
        self.n_steps_ += len(losses)
        self.n_skipped_ += len(out) - len(losses)
        opt.n_steps_ += len(losses)
        return losses

    def _optimise(self, bx: np.ndarray, by: np.ndarray) -> float | None:
        if not self.manual_:
            return super()._optimise(bx, by)  # autograd
        if torch.is_grad_enabled():  # called on its own, not from _step
            with torch.no_grad():
                return self._manual_step(bx, by)
        return self._manual_step(bx, by)

    def _manual_step(self, bx: np.ndarray, by: np.ndarray) -> float | None:
        """One step on (m, d) raw readings and (m,) labels, gradient by hand; None when skipped."""
        z = self._inputs64(bx)  # (m, d) float64
        y = torch.from_numpy(by)  # (m,) float64
        bn = self._bn_forward(z) if self._bn is not None else None  # (x_hat, new statistics, ...) or None
        if bn is not None:
            z = bn[0]
        self._w64.copy_(self.opt.flat_)
        _, b1, w2, b2 = self._w  # (h,), (h,), (1,); the first layer's weight through _w1t (d, h)
        pre = torch.addmm(b1, z, self._w1t)  # (m, h)
        a = pre.clamp_min(0.0) if self._relu else pre.tanh()  # (m, h)
        logit = torch.addmv(b2, a, w2)  # (m,)
        loss = float(F.binary_cross_entropy_with_logits(logit, y))  # mean over the batch
        if not math.isfinite(loss):
            return self._skip(None)
        g_logit = logit.sigmoid_().sub_(y).mul_(1.0 / len(by))  # (m,) dloss/dlogit (logit is not used again)
        g_pre = torch.outer(g_logit, w2)  # (m, h) dloss/da
        if self._relu:  # dloss/dpre: ReLU's backward (0 where a <= 0), as autograd computes it
            g_pre = torch.ops.aten.threshold_backward(g_pre, a, 0.0)
        else:
            g_pre.mul_(a.mul(a).neg_().add_(1.0))
        gw1, gb1, gw2, gb2 = self._g
        torch.mm(g_pre.t(), z, out=gw1)
        torch.sum(g_pre, 0, out=gb1)
        torch.mv(a.t(), g_logit, out=gw2)
        torch.sum(g_logit, 0, keepdim=True, out=gb2)
        # NaN or inf in a gradient entry, a gradient beyond float32 (inf once cast for Adam: NaN weights,
        # issue 15), or running statistics beyond float32 (inf): the step is skipped and nothing is written.
        # The float32 entries summed in float64 cannot overflow, so the sum is finite exactly when they are.
        grad = self._grad.copy_(self._grad64)  # (P,) float32
        check = grad.sum(dtype=torch.float64) if bn is None else grad.sum(dtype=torch.float64) + bn[1].sum()
        if not math.isfinite(float(check)):
            return self._skip(None)
        if bn is not None:
            self._bn_commit(bn[1])
        self.opt.step(grad)
        if bn is not None and self._follow and bn[2] is not None:
            self._follow_stats(bn[1], *bn[2])
        self.n_steps_ += 1
        return loss

    def _follow_stats(self, new: torch.Tensor, mean0: torch.Tensor, inv_std0: torch.Tensor) -> None:
        """Where the learner keeps the function when BatchRenorm1d's running statistics move in training
        (``_follow``, issue 13's preserve extended to the layer's own statistics), do the same: the first
        Linear layer's input u becomes ``(u - shift) / ratio``, so its columns are scaled by ratio and
        its bias shifted by ``W shift`` (with W before the scaling). ``new`` (2, d) holds the running mean
        and variance just written; ``mean0``, ``inv_std0`` (d,) those the layer scored with before."""
        new = new.double()  # (2, d)
        shift = new[0].sub_(mean0).mul_(inv_std0)  # (d,) (mean1 - mean0) / std0
        ratio = new[1].add_(self._bn.eps).sqrt_().mul_(inv_std0)  # (d,) std1 / std0
        w1, b1 = self._lin1  # (h, d), (h,) float32 views of the flat vector
        b1.add_(torch.mv(w1.double(), shift))
        w1.mul_(ratio)

    def _inputs64(self, bx: np.ndarray) -> torch.Tensor:
        """(m, d) float64 inputs of the network. The rows were checked finite when the normaliser
        learned them (pending and replayed readings both went through it), so no check is repeated.
        The two element-wise operations are exact IEEE ones in numpy as in torch (no reduction)."""
        if not self.config.normalise:
            return torch.from_numpy(bx)
        if not self._stats_current() or self._centre is None:
            return torch.from_numpy(self._normalised(bx))  # not cached, or not fitted: the learner's own path
        return torch.from_numpy((bx - self._centre) * self._inv_scale)

    def _bn_forward(self, x: torch.Tensor) -> tuple:
        """BatchRenorm1d in training mode on (m, d) inputs: (x_hat, new running mean and var (2, d),
        (running mean, 1 / running std) before or None at the data-dependent start), the new statistics
        as float32 (the buffers' type), so a value only float64 can hold is inf here.

        The arithmetic is `models.scripted_steps.bn_train`'s (the TorchScript steps run the same);
        the running statistics are written by `_bn_commit` once the step is known to go ahead.
        """
        bn = self._bn
        started = int(self._tracked) > 0
        x_hat, new, run_mean, inv_run = bn_train(x, self._run, started, bn.eps, bn.momentum, bn.r_max, bn.d_max)
        return x_hat, new, ((run_mean, inv_run) if started else None)

    def _bn_commit(self, new: torch.Tensor) -> None:
        self._run.copy_(new)  # the running mean and variance (views of its rows)
        self._tracked.add_(1)
