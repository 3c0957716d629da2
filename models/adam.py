"""Adam over one flat parameter vector: the same update as torch.optim.Adam, in five tensor ops a step.

The learner's network has a few dozen weights; torch.optim.Adam spends more time in Python and in
its per-tensor loop than in arithmetic, and its constructor imports torch._dynamo (about 2 s on a
cold start). Here every parameter is a view into one flat tensor, so a step is a handful of
in-place operations on that vector, whatever the number of layers.

>>> import torch
>>> net = torch.nn.Linear(2, 1)
>>> opt = FlatAdam(net.parameters(), lr=0.1)
>>> opt
FlatAdam(n=3, lr=0.1, steps=0)
>>> loss = net(torch.ones(4, 2)).pow(2).mean()
>>> opt.step(opt.flat_grad(torch.autograd.grad(loss, opt.params)))
>>> opt.n_steps_
1
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

__all__ = ["FlatAdam"]


class FlatAdam:
    """Adam (Kingma and Ba), bias-corrected exactly as torch.optim.Adam with its defaults.

    Parameters
    ----------
    params
        The parameters to optimise. Their storage is moved into one flat float32 vector (values
        kept): afterwards each is a view of ``flat_``.
    lr, betas, eps
        As in torch.optim.Adam.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr = lr
        self.betas = betas
        self.eps = eps
        sizes = [p.numel() for p in self.params]
        with torch.no_grad():
            self.flat_ = torch.cat([p.detach().reshape(-1) for p in self.params]).contiguous()  # (P,)
            at = 0
            for p, n in zip(self.params, sizes):
                p.data = self.flat_[at:at + n].view_as(p)
                at += n
        self.exp_avg_ = torch.zeros_like(self.flat_)  # (P,) first moment
        self.exp_avg_sq_ = torch.zeros_like(self.flat_)  # (P,) second moment
        self._denom = torch.empty_like(self.flat_)  # (P,) rewritten at each step
        self.n_steps_ = 0

    def __repr__(self) -> str:
        return f"FlatAdam(n={self.flat_.numel()}, lr={self.lr}, steps={self.n_steps_})"

    def flat_grad(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The gradients of `params` (None for an unused one) as one (P,) vector."""
        return torch.cat([torch.zeros(p.numel()) if g is None else g.reshape(-1)
                          for p, g in zip(self.params, grads)])

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        """One Adam update of all parameters from their flat gradient (P,)."""
        b1, b2 = self.betas
        self.n_steps_ += 1
        t = self.n_steps_
        self.exp_avg_.lerp_(grad, 1 - b1)
        self.exp_avg_sq_.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = torch.sqrt(self.exp_avg_sq_, out=self._denom).div_(math.sqrt(1 - b2 ** t)).add_(self.eps)
        self.flat_.addcdiv_(self.exp_avg_, denom, value=-self.lr / (1 - b1 ** t))

    def state_dict(self) -> dict:
        """Moments and step count as plain lists (JSON-able); the weights belong to the network."""
        return {"n_steps": self.n_steps_, "exp_avg": self.exp_avg_.tolist(),
                "exp_avg_sq": self.exp_avg_sq_.tolist()}

    def load_state_dict(self, state: dict) -> None:
        m = torch.tensor(state["exp_avg"], dtype=self.flat_.dtype)
        v = torch.tensor(state["exp_avg_sq"], dtype=self.flat_.dtype)
        if m.shape != self.flat_.shape or v.shape != self.flat_.shape:
            raise ValueError(f"load_state_dict(): expected {self.flat_.numel()} moments, got {m.numel()} and {v.numel()}")
        self.exp_avg_.copy_(m)
        self.exp_avg_sq_.copy_(v)
        self.n_steps_ = int(state["n_steps"])
