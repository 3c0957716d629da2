"""The small network that scores readings: optional BatchNorm on the input, one hidden layer, one logit.

>>> import torch
>>> net = build_network(NetworkConfig(n_features=1, hidden=8), seed=0)
>>> net
Sequential(
  (0): BatchNorm1d(1, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (1): Linear(in_features=1, out_features=8, bias=True)
  (2): ReLU()
  (3): Linear(in_features=8, out_features=1, bias=True)
)
>>> loss_fn = make_loss("bce-logits")
>>> round(float(loss_fn(torch.tensor([0.0]), torch.tensor([1.0]))), 4)
0.6931
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import torch
from torch import nn

__all__ = ["NetworkConfig", "build_network", "make_loss", "NumpyScorer", "LOSSES", "ACTIVATIONS"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
LOSSES = ("bce-logits", "sigmoid-bce")


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the network. Frozen: two configs are equal when the weights are interchangeable."""

    n_features: int = 1  # inputs per reading: 1 for heart rate, 2 for circles
    hidden: int = 16  # width of the single hidden layer
    batchnorm: bool = True  # BatchNorm1d on the input (learns its own running mean/var)
    activation: str = "relu"  # one of ACTIVATIONS
    loss: str = "bce-logits"  # BCEWithLogitsLoss (stable) or "sigmoid-bce" (sigmoid then BCELoss)

    def __post_init__(self) -> None:
        if self.n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {self.n_features}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be at least 1, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} is not one of {list(LOSSES)}")

    def to_dict(self) -> dict:
        return asdict(self)


def build_network(config: NetworkConfig, *, seed: int = 0) -> nn.Sequential:
    """Input (n, d) -> (n, 1) logit; with loss "sigmoid-bce" the last layer is a Sigmoid and outputs p.

    Weights are drawn from a private generator seeded by `seed`: torch's global RNG is left alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        if config.batchnorm:
            layers.append(nn.BatchNorm1d(config.n_features))
        layers += [
            nn.Linear(config.n_features, config.hidden),
            ACTIVATIONS[config.activation](),
            nn.Linear(config.hidden, 1),
        ]
        if config.loss == "sigmoid-bce":
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


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
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
            shift = (bn.bias.detach().double().numpy() - bn.running_mean.double().numpy() * scale)
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
