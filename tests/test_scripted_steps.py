"""models.scripted_steps: a mini-batch's steps in one TorchScript call give the Python step's bits.

Each test learns the same seeded stream twice, once with the learner's TorchScript loop and once with
it switched off (the Python loop over ``ManualStepLearner._manual_step``), and compares everything a
step writes: scores, weights, Adam's moments and step count, BatchRenorm1d's running statistics,
the losses and the counters, exactly (not within a tolerance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.learner import LearnerConfig
from models.manual_step import ManualStepLearner
from models.scripted_steps import compiled


def _stream(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(90.0, 6.0, (n, d))
    x[n // 2:, 0] += 8.0  # a change of regime half-way: drift resets and a second warm-up
    return x, (x[:, 0] > 91.0).astype(float)


def _learn(config: LearnerConfig, x: np.ndarray, y: np.ndarray, *, scripted: bool) -> dict:
    learner = ManualStepLearner(config, seed=3)
    if not scripted:
        learner._scripted = None
    scores, losses, i = [], [], 0
    while i < len(x):
        k = min(learner.room(x[i:], y[i:]), len(x) - i)
        scores.append(learner.predict_proba_many(x[i:i + k]))
        losses += learner.learn_many(x[i:i + k], y[i:i + k])
        i += k
    opt = learner.opt
    return {"scores": np.concatenate(scores), "losses": np.array(losses), "flat": opt.flat_.clone(),
            "m": opt.exp_avg_.clone(), "v": opt.exp_avg_sq_.clone(), "adam_t": opt.n_steps_,
            "buffers": [b.clone() for b in learner.net.buffers()],
            "counts": (learner.n_steps_, learner.n_skipped_, learner.n_drifts_, learner.n_seen_),
            "margin": (learner._margin_x.copy(), learner._margin_y.copy()),
            "rng": learner.rng.bit_generator.state["state"]}


def _assert_same(a: dict, b: dict) -> None:
    assert a["counts"] == b["counts"]
    assert a["adam_t"] == b["adam_t"] and a["rng"] == b["rng"]
    np.testing.assert_array_equal(a["scores"], b["scores"])
    np.testing.assert_array_equal(a["losses"], b["losses"])
    for key in ("flat", "m", "v"):
        assert torch.equal(a[key], b[key]), key
    assert all(torch.equal(p, q) for p, q in zip(a["buffers"], b["buffers"]))
    assert all(np.array_equal(p, q) for p, q in zip(a["margin"], b["margin"]))


def test_after_the_warm_up_the_margin_readings_are_trained_on():
    config = LearnerConfig(warm_until=300)
    x, y = _stream(1500, 1, seed=1)
    scripted = _learn(config, x, y, scripted=True)
    assert config.margin and len(scripted["margin"][1]) > 0  # the scripted batches held them
    _assert_same(scripted, _learn(config, x, y, scripted=False))


def test_the_default_learner_compiles_its_loop():
    assert compiled() is not None
    assert ManualStepLearner(LearnerConfig(), seed=0)._scripted is not None


@pytest.mark.parametrize("changes", [
    {},  # the default: BatchRenorm1d, ReLU, normalised, replay without replacement
    {"activation": "tanh"},
    {"batchnorm": "none"},
    {"replay_unique": False},
    {"normalise": False},
    {"n_features": 3, "hidden": 5},
    {"replay": 0},
    {"preserve": False},
    {"warm_until": 300},  # most of the stream after the warm-up: the margin readings join each batch
])
def test_same_bits_as_the_python_step(changes):
    config = LearnerConfig().with_(**changes)
    x, y = _stream(1500, config.n_features, seed=1)
    scripted = _learn(config, x, y, scripted=True)
    python = _learn(config, x, y, scripted=False)
    assert scripted["counts"][0] > 500  # the warm-up's steps went through the scripted loop
    _assert_same(scripted, python)


def test_unlabelled_readings_and_the_python_fallbacks_agree():
    """NaN labels (not trained on), and configs the loop leaves to Python (plain BatchNorm1d,
    early_until), give the same result as the Python loop."""
    x, y = _stream(900, 1, seed=2)
    y[::7] = np.nan
    for config in (LearnerConfig(), LearnerConfig(batchnorm="plain"), LearnerConfig(early_until=4)):
        _assert_same(_learn(config, x, y, scripted=True), _learn(config, x, y, scripted=False))


def test_a_step_that_is_not_finite_is_skipped_as_in_python():
    """Readings so large that the loss overflows: the step is skipped (counted), nothing written."""
    config = LearnerConfig(normalise=False, batchnorm="none")
    x, y = _stream(200, 1, seed=4)
    x[40:48] = 1e300
    scripted = _learn(config, x, y, scripted=True)
    python = _learn(config, x, y, scripted=False)
    assert scripted["counts"][1] > 0  # some steps skipped
    _assert_same(scripted, python)
    assert torch.isfinite(scripted["flat"]).all()


def test_the_loss_formula_is_torch_bce_bit_for_bit():
    """The scripted loop computes BCEWithLogitsLoss as ``(1 - y) * x - log_sigmoid(x)``, mean: the
    same bits as torch's, on ordinary and extreme logits."""
    import itertools

    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    cases = [(torch.randn(m, dtype=torch.float64, generator=gen) * scale,
              (torch.rand(m, generator=gen) > 0.5).double()) for m in (2, 4, 17, 272, 513) for scale in (0.1, 3, 300)]
    edge = [float("inf"), -float("inf"), float("nan"), 1e308, -1e308, 700.0, -40.0, 0.0]
    cases += [(torch.tensor(pair, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))
              for pair in itertools.product(edge, edge) for y in ([0.0, 1.0], [1.0, 1.0], [0.0, 0.0])]
    for x, y in cases:
        a = F.binary_cross_entropy_with_logits(x, y)
        b = (1.0 - y).mul(x).sub_(F.logsigmoid(x)).mean()
        assert torch.equal(a, b) or (a.isnan() and b.isnan()), (x, y)
