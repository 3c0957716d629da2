"""The small network that scores readings: BatchNorm on the input, one hidden layer, one logit.

The default input layer is `BatchRenorm1d` (Batch Renormalization, Ioffe 2017), a BatchNorm made
for streams: plain ``BatchNorm1d`` normalises a training mini-batch by its own mean, and a
mini-batch of consecutive heart-rate readings then loses the absolute level its labels depend on
(kept as ``batchnorm="plain"`` to show it; ``"none"`` leaves the layer out).

>>> import torch
>>> net = build_network(NetworkConfig(n_features=1, hidden=8), seed=0)
>>> net
Sequential(
  (0): BatchRenorm1d(1, eps=1e-05, momentum=0.01, affine=False, bias=False, track_running_stats=True, r_max=3.0, d_max=5.0)
  (1): Linear(in_features=1, out_features=8, bias=True)
  (2): ReLU()
  (3): Linear(in_features=8, out_features=1, bias=True)
)
>>> describe_network(net, normalise=True)
'RunningNormaliser -> BatchRenorm1d(1) -> Linear(1, 8) -> ReLU -> Linear(8, 1)'
>>> loss_fn = make_loss("bce-logits")
>>> round(float(loss_fn(torch.tensor([0.0]), torch.tensor([1.0]))), 4)
0.6931
"""

from __future__ import annotations

import numpy as np

import torch
from torch import nn

from models.learner_config import BATCHNORMS, LOSSES, NetworkConfig, batchnorm_name  # noqa: F401 (re-exported)

__all__ = ["NetworkConfig", "BatchRenorm1d", "build_network", "describe_network", "make_loss", "NumpyScorer",
           "LOSSES", "ACTIVATIONS", "BATCHNORMS"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}  # the names of models.learner_config.ACTIVATION_NAMES


class BatchRenorm1d(nn.BatchNorm1d):
    """BatchNorm1d for streams: Batch Renormalization (Ioffe, 2017).

    In training, a mini-batch is normalised by its own mean and std and then corrected towards the
    running statistics: ``x_hat = (x - mean_b) / std_b * r + d`` with
    ``r = clip(std_b / std_run, 1/r_max, r_max)`` and ``d = clip((mean_b - mean_run) / std_run,
    -d_max, d_max)``, no gradient through r and d. Within the clips this equals
    ``(x - mean_run) / std_run``: a batch of consecutive readings keeps its level, which plain
    BatchNorm1d removes. In eval mode (scoring) it is plain BatchNorm1d with the running statistics.
    The first training batch sets the running statistics (a data-dependent start: on raw heart
    rate the defaults 0 and 1 would clip r and d for hundreds of steps). Default momentum 0.01.

    >>> import torch
    >>> bn = BatchRenorm1d(1)
    >>> _ = bn.train()(torch.tensor([[90.0], [94.0]]))   # first batch: running stats := batch stats
    >>> bn.running_mean.tolist(), [round(v, 3) for v in bn.running_var.tolist()]
    ([92.0], [8.0])
    >>> out = bn(torch.tensor([[96.0], [100.0]]))        # a batch above the running mean stays above it
    >>> [round(v, 2) for v in out[:, 0].tolist()]
    [1.41, 2.83]
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.01, affine: bool = True,
                 r_max: float = 3.0, d_max: float = 5.0) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        self.r_max = r_max
        self.d_max = d_max

    def extra_repr(self) -> str:
        return super().extra_repr() + f", r_max={self.r_max}, d_max={self.d_max}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, d)
        if not self.training or x.shape[0] < 2:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        with torch.no_grad(), np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # (d,) statistics in
            # float64 numpy (a step's cost is these small ops); an extreme batch gives inf/NaN: the learner skips it
            n = x.shape[0]
            var_b, mean_b = torch.stack(torch.var_mean(x.detach(), dim=0, unbiased=False)).numpy().astype(np.float64)
            unbiased = var_b * (n / (n - 1))
            run_mean, run_var = self.running_mean.numpy(), self.running_var.numpy()  # views of the buffers
            tracked = self.num_batches_tracked.numpy()  # 0-d view
            if tracked == 0:  # data-dependent start
                run_mean[:], run_var[:] = mean_b, unbiased
            std_b = np.sqrt(var_b + self.eps)
            std_run = np.sqrt(run_var + self.eps)
            r = np.minimum(np.maximum(std_b / std_run, 1.0 / self.r_max), self.r_max)
            d = np.minimum(np.maximum((mean_b - run_mean) / std_run, -self.d_max), self.d_max)
            run_mean += self.momentum * (mean_b - run_mean)
            run_var += self.momentum * (unbiased - run_var)
            tracked += 1
        if x.requires_grad:  # the batch statistics' gradient, as BatchNorm's
            f32 = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
            x_hat = _Renorm.apply(x, f32(mean_b), f32(1.0 / std_b), f32(r), f32(d))  # (n, d)
        else:  # data in, nothing to differentiate: one affine map, x * (r / std_b) + (d - mean_b * r / std_b)
            scale = r / std_b
            x_hat = torch.addcmul(torch.from_numpy((d - mean_b * scale).astype(np.float32)), x,
                                  torch.from_numpy(scale.astype(np.float32)))
        return x_hat * self.weight + self.bias if self.affine else x_hat


class _Renorm(torch.autograd.Function):
    """``(x - mean_b) / std_b * r + d`` with the batch statistics' gradient and none through r, d.

    One autograd node with BatchNorm's backward written out (the layer's step cost):
    dx = r / std_b * (g - mean(g) - x_b * mean(g * x_b)), x_b = (x - mean_b) / std_b.
    """

    @staticmethod
    def forward(ctx, x, mean_b, inv_std, r, d):  # x (n, d); the rest (d,)
        x_b = (x - mean_b) * inv_std
        ctx.save_for_backward(x_b, inv_std * r)
        return x_b * r + d

    @staticmethod
    def backward(ctx, g):  # g (n, d)
        x_b, k = ctx.saved_tensors
        dx = k * (g - g.mean(dim=0) - x_b * (g * x_b).mean(dim=0))
        return dx, None, None, None, None


def build_network(config: NetworkConfig, *, seed: int = 0) -> nn.Sequential:
    """Input (n, d) -> (n, 1) logit; with loss "sigmoid-bce" the last layer is a Sigmoid and outputs p.

    Weights are drawn from a private generator seeded by `seed`: torch's global RNG is left alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        if config.batchnorm == "renorm":
            layers.append(BatchRenorm1d(config.n_features, affine=False))  # the Linear after it is the affine map
        elif config.batchnorm == "plain":
            layers.append(nn.BatchNorm1d(config.n_features))
        layers += [
            nn.Linear(config.n_features, config.hidden),
            ACTIVATIONS[config.activation](),
            nn.Linear(config.hidden, 1),
        ]
        if config.loss == "sigmoid-bce":
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def describe_network(net: nn.Sequential, *, normalise: bool) -> str:
    """One line saying what the model is, e.g. ``RunningNormaliser -> BatchRenorm1d(1) -> Linear(1, 16) -> ReLU -> Linear(16, 1)``."""
    parts = ["RunningNormaliser"] if normalise else []
    for m in net:
        if isinstance(m, nn.BatchNorm1d):
            parts.append(f"{type(m).__name__}({m.num_features})")
        elif isinstance(m, nn.Linear):
            parts.append(f"Linear({m.in_features}, {m.out_features})")
        else:
            parts.append(type(m).__name__)
    return " -> ".join(parts)


def make_loss(name: str) -> nn.Module:
    """BCEWithLogitsLoss takes logits (log-sum-exp inside, finite for any logit); BCELoss takes p."""
    if name == "bce-logits":
        return nn.BCEWithLogitsLoss()
    if name == "sigmoid-bce":
        return nn.BCELoss()  # clamps log(p) at -100: saturated outputs give a flat, stuck loss
    raise ValueError(f"loss {name!r} is not one of {list(LOSSES)}")


class NumpyScorer:
    """The network's eval-mode forward pass in float64 numpy, from a snapshot of its weights.

    Scoring this way is exact per row whatever the number of rows (no batch-size dependent float32
    kernels), and cheaper than torch for the few rows a live feed brings. Take a new snapshot after
    every optimiser step.

    >>> import numpy as np, torch
    >>> net = build_network(NetworkConfig(n_features=1), seed=0).eval()
    >>> x = np.array([[80.0], [95.0]])
    >>> with torch.no_grad():
    ...     ref = torch.sigmoid(net(torch.tensor(x, dtype=torch.float32))[:, 0]).numpy()
    >>> bool(np.allclose(NumpyScorer(net).predict_proba(x), ref, atol=1e-6))
    True
    """

    def __init__(self, net: nn.Sequential) -> None:
        mods = list(net)
        self.bn = None
        if isinstance(mods[0], nn.BatchNorm1d):
            bn = mods.pop(0)
            weight = bn.weight if bn.affine else torch.ones_like(bn.running_var)
            bias = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
            scale = (weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
            shift = (bias.detach().double().numpy() - bn.running_mean.double().numpy() * scale)
            self.bn = (scale, shift)  # (d,), (d,): eval-mode BatchNorm is an affine map
        lin1, act, lin2 = mods[0], mods[1], mods[2]
        h, d = lin1.weight.shape
        with torch.no_grad():  # one copy of all the weights: cheap enough to take after every step
            flat = torch.cat([lin1.weight.reshape(-1), lin1.bias, lin2.weight.reshape(-1), lin2.bias]).double().numpy()
        self.w1 = flat[:h * d].reshape(h, d).T.copy()  # (d, h)
        self.b1 = flat[h * d:h * d + h]  # (h,)
        self.w2 = flat[h * d + h:h * d + 2 * h]  # (h,)
        self.b2 = float(flat[-1])
        self.act = "relu" if isinstance(act, nn.ReLU) else "tanh"

    def __repr__(self) -> str:
        return f"NumpyScorer(d={self.w1.shape[0]}, hidden={self.w1.shape[1]}, batchnorm={self.bn is not None})"

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> (n,) logits. Row-wise reductions only, so a row's result never depends on n."""
        if self.bn is not None:
            x = x * self.bn[0] + self.bn[1]
        h = x[:, :, None] * self.w1[None, :, :]  # (n, d, h)
        h = h.sum(axis=1) + self.b1 if h.shape[1] > 1 else h[:, 0, :] + self.b1  # (n, h)
        h = np.maximum(h, 0.0) if self.act == "relu" else np.tanh(h)
        return (h * self.w2).sum(axis=1) + self.b2  # (n,)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow warnings
