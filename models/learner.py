"""The online learner: running normaliser + network + Adam, trained test-then-train in mini-batches.

Readings are scored with ``predict_proba_many`` and only then handed to ``learn_many``; they wait in a
pending buffer until it holds a mini-batch, and only then does anything learned change (normaliser
statistics, weights). ``room()`` says how many readings fit before that happens, so a caller that
scores and learns in slices of at most ``room()`` readings gets the same result whatever the slicing:
one reading at a time from a live feed, or thousands from a file.

>>> import numpy as np
>>> learner = OnlineLearner(LearnerConfig(n_features=1), seed=0)
>>> learner
OnlineLearner(normalise=True, batchnorm=True, hidden=16, lr=0.05, batch=4..256, seen=0, steps=0)
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
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from models.network import NumpyScorer, build_network, make_loss
from models.normaliser import RunningNormaliser

__all__ = ["LearnerConfig", "OnlineLearner"]


@dataclass(frozen=True)
class LearnerConfig:
    """Everything that shapes learning. Two runs with equal configs and seeds are identical."""

    n_features: int = 1  # inputs per reading
    normalise: bool = True  # running mean/std normalisation of the inputs (float64, Chan merge)
    batchnorm: bool = True  # BatchNorm1d as the network's first layer
    hidden: int = 16  # hidden layer width
    activation: str = "relu"  # hidden activation
    loss: str = "bce-logits"  # "bce-logits" (default, stable) or "sigmoid-bce"
    lr: float = 0.05  # Adam learning rate
    batch_size: int = 256  # largest mini-batch of new readings per training step
    min_batch: int = 4  # first mini-batches are this small, growing to batch_size as readings are seen
    growth: int = 16  # mini-batch size ~= readings seen / growth, clipped to [min_batch, batch_size]
    replay: int = 1024  # recent raw readings kept and replayed (re-normalised) at each step; 0 = off
    steps: int = 1  # optimiser steps per mini-batch once warmed up
    warm_steps: int = 16  # optimiser steps per mini-batch during the first `warm_until` readings
    warm_until: int = 2000  # readings seen before stepping down from warm_steps to steps
    init_bias: bool = True  # output bias from `prior` at start, then from the first mini-batch's label rate
    prior: float = 0.1  # P(abnormal) an untrained model says: a new monitor does not raise alarms blindly

    def __post_init__(self) -> None:
        if self.min_batch < 2:
            raise ValueError(f"min_batch must be at least 2 (BatchNorm trains on 2 or more), got {self.min_batch}")
        if self.batch_size < self.min_batch:
            raise ValueError(f"batch_size ({self.batch_size}) must be at least min_batch ({self.min_batch})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 < self.prior < 1:
            raise ValueError(f"prior must be strictly between 0 and 1, got {self.prior}")
        for name in ("replay", "steps", "warm_steps", "warm_until", "growth"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        self.network  # validates the network fields

    @property
    def network(self):
        from models.network import NetworkConfig
        return NetworkConfig(n_features=self.n_features, hidden=self.hidden, batchnorm=self.batchnorm,
                             activation=self.activation, loss=self.loss)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "LearnerConfig":
        return replace(self, **changes)


class OnlineLearner:
    """Binary classifier that learns from a stream in mini-batches. See the module docstring."""

    def __init__(self, config: LearnerConfig = LearnerConfig(), *, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        c = config
        self.net = build_network(c.network, seed=seed)
        self.loss_fn = make_loss(c.loss)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=c.lr)
        self.normaliser = RunningNormaliser()
        self.rng = np.random.default_rng(seed)
        d = c.n_features
        self._pend_x = np.empty((c.batch_size, d))  # (B, d) raw readings waiting for a step
        self._pend_y = np.empty(c.batch_size)
        self._n_pend = 0
        self._target = config.min_batch  # size of the mini-batch being filled, fixed when it starts
        self._replay_x = np.empty((c.replay, d))  # ring of recent raw readings, (R, d)
        self._replay_y = np.empty(c.replay)
        self._n_replay = 0  # filled slots
        self._replay_at = 0  # next slot to write
        self.n_seen_ = 0  # readings handed to learn_many
        self.n_steps_ = 0  # optimiser steps taken
        self.n_skipped_ = 0  # steps skipped because the loss or a gradient was not finite
        self.last_loss_: float | None = None
        self.net.eval()
        if c.init_bias:
            self._set_output_bias(c.prior)
        self._scorer = NumpyScorer(self.net)  # float64 snapshot of the weights, renewed after each step

    def __repr__(self) -> str:
        c = self.config
        return (f"OnlineLearner(normalise={c.normalise}, batchnorm={c.batchnorm}, hidden={c.hidden}, "
                f"lr={c.lr}, batch={c.min_batch}..{c.batch_size}, seen={self.n_seen_}, steps={self.n_steps_})")

    # -- scoring -------------------------------------------------------------------------------
    def _normalised(self, x: np.ndarray) -> np.ndarray:
        return self.normaliser.transform(x) if self.config.normalise else np.asarray(x, dtype=np.float64)

    def _inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self._normalised(x), dtype=np.float32))  # (n, d)

    def predict_proba_many(self, x: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row of x (n, d); never changes the learner.

        Computed in float64 numpy from a snapshot of the weights, so a reading's score is the same
        whether it is scored alone or among thousands.
        """
        if len(x) == 0:
            return np.empty(0)
        return self._scorer.predict_proba(self._normalised(x))

    # -- learning ------------------------------------------------------------------------------
    def _next_target(self) -> int:
        """Size of the next mini-batch: small early, growing with the readings seen."""
        c = self.config
        grown = self.n_seen_ // c.growth if c.growth else c.batch_size
        return int(min(c.batch_size, max(c.min_batch, grown - grown % c.min_batch)))

    def room(self) -> int:
        """Readings learn_many accepts before the next training step changes the model."""
        return self._target - self._n_pend

    def learn_many(self, x: np.ndarray, y: np.ndarray) -> list[float]:
        """Buffer readings already scored; step when the buffer holds a mini-batch.

        Returns the losses of the steps taken (often none). Rows with a NaN label update the
        normaliser but are not trained on.
        """
        losses: list[float] = []
        i, n = 0, len(x)
        while i < n:
            k = min(self.room(), n - i)
            self._pend_x[self._n_pend:self._n_pend + k] = x[i:i + k]
            self._pend_y[self._n_pend:self._n_pend + k] = y[i:i + k]
            self._n_pend += k
            self.n_seen_ += k
            i += k
            if self._n_pend == self._target:
                losses += self._step()
        return losses

    def _step(self) -> list[float]:
        c = self.config
        px, py = self._pend_x[:self._n_pend], self._pend_y[:self._n_pend]
        if c.normalise:
            self.normaliser.update(px)
        known = ~np.isnan(py)
        new_x, new_y = px[known], py[known]
        if c.init_bias and self.n_steps_ == 0 and len(new_y):
            self._set_output_bias(new_y.mean())
        n_steps = c.warm_steps if self.n_seen_ <= c.warm_until else c.steps
        losses = []
        for _ in range(n_steps):
            bx, by = self._training_batch(new_x, new_y)
            if len(by) < 2:
                break
            loss = self._optimise(bx, by)
            if loss is not None:
                losses.append(loss)
        self._remember(new_x, new_y)
        self._scorer = NumpyScorer(self.net)
        self._n_pend = 0
        self._target = self._next_target()
        if losses:
            self.last_loss_ = losses[-1]
        return losses

    def _training_batch(self, new_x: np.ndarray, new_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The new readings plus a draw of up to batch_size recent ones from the replay ring."""
        if self._n_replay == 0:
            return new_x, new_y
        k = min(self._n_replay, self.config.batch_size)
        idx = self.rng.choice(self._n_replay, size=k, replace=False) if k < self._n_replay else np.arange(k)
        return (np.concatenate([new_x, self._replay_x[idx]]), np.concatenate([new_y, self._replay_y[idx]]))

    def _optimise(self, bx: np.ndarray, by: np.ndarray) -> float | None:
        self.net.train()
        saved = [b.clone() for b in self.net.buffers()]  # BatchNorm running stats, restored on a skip
        try:
            out = self.net(self._inputs(bx))[:, 0]  # (m,)
            loss = self.loss_fn(out, torch.from_numpy(by.astype(np.float32)))
            self.opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                self.n_skipped_ += 1
                self._restore_buffers(saved)
                return None
            loss.backward()
            grads_ok = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in self.net.parameters())
            if not grads_ok:
                self.n_skipped_ += 1
                self.opt.zero_grad(set_to_none=True)
                self._restore_buffers(saved)
                return None
            self.opt.step()
            self.n_steps_ += 1
            return float(loss.detach())
        finally:
            self.net.eval()

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
    def _restore_buffers(self, saved: list[torch.Tensor]) -> None:
        """Undo what a skipped step's forward pass did to BatchNorm's running statistics."""
        with torch.no_grad():
            for b, old in zip(self.net.buffers(), saved):
                b.copy_(old)

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
            "last_loss": self.last_loss_,
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
        self.net.eval()
        self._scorer = NumpyScorer(self.net)
