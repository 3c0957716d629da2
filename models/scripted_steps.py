"""A mini-batch's optimiser steps in one TorchScript call (the hand-written step, without Python between ops).

The warm-up takes 16 optimiser steps per mini-batch of a few readings; each step of
`models.manual_step` is ~50 tiny torch operations, and on this network Python's call overhead and
torch's dispatch from Python cost far more than the arithmetic (~0.5 ms a step, issue 15: more
training than arrives at 1,000 lines/s). `train_steps` runs all the steps of one mini-batch inside
the TorchScript interpreter: the same operations, in the same order, on the same float64 and float32
tensors, so the weights, the running statistics and the losses are the same bits as the Python
step's (checked in ``tests/models/test_scripted_steps.py``). The replay draws are made beforehand with the
learner's numpy generator, in the order the Python loop makes them.

Torch stays the training engine: this is torch's own interpreter running torch operations.

>>> import numpy as np
>>> from models.learner import LearnerConfig
>>> from models.manual_step import ManualStepLearner
>>> learner = ManualStepLearner(LearnerConfig(), seed=0)   # uses train_steps for its mini-batches
>>> _ = learner.learn_many(np.array([[80.0], [95.0], [85.0], [99.0]]), np.array([0.0, 1.0, 0.0, 1.0]))
>>> learner.n_steps_, learner._scripted is not None
(16, True)
"""

from __future__ import annotations

import math
import warnings
from typing import List, Tuple

import torch

__all__ = ["compiled", "train_steps", "bn_train"]

_COMPILED = None


def compiled():
    """`train_steps` compiled by TorchScript (once per process, ~40 ms), or None when it cannot be (no
    source files to compile from, a torch without TorchScript): the learner then steps in Python."""
    global _COMPILED
    if _COMPILED is None:
        with warnings.catch_warnings():  # torch.jit.script is deprecated in favour of torch.compile, which
            # would import and run a compiler stack (seconds) for a few dozen tiny ops
            warnings.simplefilter("ignore")
            try:
                _COMPILED = torch.jit.script(train_steps)
            except Exception:  # noqa: BLE001 (any failure to compile: the Python step does the same)
                _COMPILED = False
    return _COMPILED or None


def bn_train(x: torch.Tensor, run32: torch.Tensor, started: bool, eps: float, momentum: float, r_max: float,
             d_max: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """BatchRenorm1d in training mode on (m, d) float64 inputs, as `models.network.BatchRenorm1d.forward`:
    x_hat (m, d), the new running mean and var (2, d) float32 (so a value only float64 holds is inf:
    the step is skipped), and the running mean and 1 / running std (d,) scored with before the step
    (meaningful only when `started`; not started, the batch's own statistics are the start). The
    statistics are only computed here; the caller writes them once the step goes ahead. Used by the
    TorchScript steps and by ``ManualStepLearner``'s Python step alike."""
    n = x.shape[0]
    mean_b = x.mean(0)  # (d,)
    dev = x - mean_b  # (m, d)
    cols = dev.t()  # (d, m)
    # (d,) sum of squares per column: the batched product einsum("ij,ij->j") runs, without parsing it
    var_b = torch.bmm(cols.unsqueeze(1), cols.unsqueeze(2)).view(-1).mul_(1.0 / n)  # (d,) biased
    unbiased = var_b * (n / (n - 1))
    batch = torch.stack([mean_b, unbiased])  # (2, d)
    run = run32.double() if started else batch
    run_mean = run[0]
    inv = torch.stack([var_b, run[1]]).add_(eps).sqrt_().reciprocal_()  # (2, d)
    inv_b, inv_run = inv[0], inv[1]
    r = torch.div(inv_run, inv_b).clamp_(1.0 / r_max, r_max)  # (d,)
    dd = (mean_b - run_mean).mul_(inv_run).clamp_(-d_max, d_max)  # (d,)
    x_hat = dev.mul_(r.mul_(inv_b)).add_(dd)  # (m, d)
    new = torch.lerp(run, batch, momentum).float()  # (2, d)
    return x_hat, new, run_mean, inv_run


def train_steps(tensors: List[torch.Tensor], hyper: List[float], ints: List[int]) -> List[float]:
    """Run one optimiser step per row of the batches; the S losses, NaN where a step was skipped.

    Parameters
    ----------
    tensors
        ``[flat, exp_avg, exp_avg_sq, denom, run, tracked, zb, yb]``: FlatAdam's float32 flat weights
        (P,), moments (P,) and scratch (P,); BatchRenorm1d's running mean and var as one (2, d) float32
        tensor and its batch count (0-d int64; both unused without the layer); the steps' batches,
        network inputs (S, m, d) float64 and labels (S, m). Updated in place: flat, the moments, run,
        tracked.
    hyper
        ``[lr, beta1, beta2, adam_eps, bn_eps, momentum, r_max, d_max]``.
    ints
        ``[adam_steps, has_bn, follow, relu, h, d]``: Adam's step count so far, flags, the sizes.
    """
    flat, exp_avg, exp_avg_sq, denom, run, tracked = tensors[0], tensors[1], tensors[2], tensors[3], tensors[4], tensors[5]
    zb, yb = tensors[6], tensors[7]
    lr, b1, b2, adam_eps = hyper[0], hyper[1], hyper[2], hyper[3]
    t, has_bn, follow, relu, h, d = ints[0], ints[1] != 0, ints[2] != 0, ints[3] != 0, ints[4], ints[5]
    n_steps = zb.shape[0]
    losses: List[float] = []  # (a float64 tensor would take them through float32: torch.tensor(float))
    grad64 = torch.empty(flat.shape[0], dtype=torch.float64)  # (P,) float64 gradient, rewritten at each step
    w64 = torch.empty(flat.shape[0], dtype=torch.float64)  # (P,) float64 copy of the weights, per step
    hd = h * d
    gw1, gb1, gw2, gb2 = grad64[0:hd].view(h, d), grad64[hd:hd + h], grad64[hd + h:hd + 2 * h], grad64[hd + 2 * h:hd + 2 * h + 1]
    w1t, b1v, w2, b2v = w64[0:hd].view(h, d).t(), w64[hd:hd + h], w64[hd + h:hd + 2 * h], w64[hd + 2 * h:hd + 2 * h + 1]
    fw1, fb1 = flat[0:hd].view(h, d), flat[hd:hd + h]  # float32 views: the first Linear layer
    started = has_bn and int(tracked.item()) > 0
    omy_b = 1.0 - yb  # (S, m) 1 - y of every step's batch (exact: one IEEE subtraction each)
    for s in range(n_steps):
        z, y = zb[s], yb[s]  # (m, d), (m,)
        new, mean0, inv0 = run, run, run  # (set by the layer when there is one)
        was_started = started
        if has_bn:
            z, new, mean0, inv0 = bn_train(z, run, started, hyper[4], hyper[5], hyper[6], hyper[7])
        w64.copy_(flat)
        pre = torch.addmm(b1v, z, w1t)  # (m, h)
        a = pre.clamp_min(0.0) if relu else pre.tanh()  # (m, h)
        logit = torch.addmv(b2v, a, w2)  # (m,)
        # BCEWithLogitsLoss (mean), as ATen computes it: (1 - y) * logit - log_sigmoid(logit), the same
        # bits as torch.binary_cross_entropy_with_logits (tests/models/test_scripted_steps.py) at a third
        # of its cost
        loss = omy_b[s].mul(logit).sub_(torch.nn.functional.logsigmoid(logit)).mean().item()
        if not math.isfinite(loss):
            losses.append(math.nan)
            continue
        g_logit = logit.sigmoid_().sub_(y).mul_(1.0 / y.shape[0])  # (m,)
        g_pre = torch.outer(g_logit, w2)  # (m, h)
        if relu:
            g_pre = torch.ops.aten.threshold_backward(g_pre, a, 0.0)
        else:
            g_pre.mul_(a.mul(a).neg_().add_(1.0))
        torch.mm(g_pre.t(), z, out=gw1)
        torch.sum(g_pre, [0], out=gb1)
        torch.mv(a.t(), g_logit, out=gw2)
        torch.sum(g_logit, [0], keepdim=True, out=gb2)
        grad = grad64.float()  # (P,) what Adam takes; finite only if float32 holds every entry
        check = grad.sum(dtype=torch.float64) + new.sum() if has_bn else grad.sum(dtype=torch.float64)
        if not math.isfinite(check.item()):
            losses.append(math.nan)
            continue
        if has_bn:
            run.copy_(new)
            tracked.add_(1)
            started = True
        t += 1
        exp_avg.lerp_(grad, 1 - b1)
        exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        torch.sqrt(exp_avg_sq, out=denom).div_(math.sqrt(1 - b2 ** t)).add_(adam_eps)
        flat.addcdiv_(exp_avg, denom, value=-lr / (1 - b1 ** t))
        if follow and was_started:  # the layer's statistics moved: keep the function (as _follow_stats)
            new64 = new.double()  # (2, d)
            shift = new64[0].sub_(mean0).mul_(inv0)  # (d,)
            ratio = new64[1].add_(hyper[4]).sqrt_().mul_(inv0)  # (d,)
            fb1.add_(torch.mv(fw1.double(), shift))
            fw1.mul_(ratio)
        losses.append(loss)
    return losses
