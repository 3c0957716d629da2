"""BatchRenorm1d (the default input layer) against plain torch, and its place in the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.learner import LearnerConfig
from models.network import BatchRenorm1d, NetworkConfig, NumpyScorer, build_network, describe_network


def _batch(n=16, d=2, seed=0, loc=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g) * 2.0 + loc).requires_grad_(True)


def test_first_batch_sets_the_running_statistics():
    bn = BatchRenorm1d(2).train()
    x = _batch()
    bn(x)
    torch.testing.assert_close(bn.running_mean, x.detach().mean(0))
    torch.testing.assert_close(bn.running_var, x.detach().var(0, unbiased=True))
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize("affine", [False, True])
def test_with_running_stats_equal_to_the_batch_it_is_plain_batchnorm(affine):
    """r = 1 and d = 0: output and gradients are BatchNorm1d's in training mode."""
    x = _batch(seed=1)
    ref = torch.nn.BatchNorm1d(2, affine=affine).train()
    bn = BatchRenorm1d(2, affine=affine).train()
    bn(x.detach())  # the data-dependent start: running stats := this batch's
    bn.running_var.copy_(x.detach().var(0, unbiased=False) + 0.0)  # r == 1 exactly (population variance)
    x2 = x.detach().clone().requires_grad_(True)
    out, want = bn(x), ref(x2)
    torch.testing.assert_close(out, want)
    out.pow(2).sum().backward()
    want.pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_training_output_is_the_running_normalisation_within_the_clips():
    bn = BatchRenorm1d(2).train()
    bn(_batch(n=64, seed=2))
    x = _batch(seed=3, loc=0.5)
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    out = bn(x)
    torch.testing.assert_close(out, (x - mean) / torch.sqrt(var + bn.eps), rtol=1e-5, atol=1e-5)


def test_r_and_d_are_clipped_and_carry_no_gradient():
    bn = BatchRenorm1d(1, r_max=2.0, d_max=1.0).train()
    bn(torch.tensor([[0.0], [1.0], [2.0]]))  # running mean 1, var 1
    x = torch.tensor([[10.0], [14.0]], requires_grad=True)  # far above: d and r both clip
    out = bn(x)
    mean_b, std_b = 12.0, float(np.sqrt(4.0 + bn.eps))
    r, d = 2.0, 1.0
    want = (torch.tensor([[10.0], [14.0]]) - mean_b) / std_b * r + d
    torch.testing.assert_close(out.detach(), want)
    out.sum().backward()  # d(out)/dx through the batch mean and std only: sums to 0 for a sum
    assert abs(float(x.grad.sum())) < 1e-5


def test_eval_mode_uses_the_running_statistics_and_never_moves_them():
    bn = BatchRenorm1d(1).train()
    bn(torch.tensor([[88.0], [92.0], [96.0]]))
    bn.eval()
    before = bn.running_mean.clone(), bn.running_var.clone()
    out = bn(torch.tensor([[100.0], [100.0]]))
    torch.testing.assert_close(out, (100.0 - before[0]) / torch.sqrt(before[1] + bn.eps) * torch.ones(2, 1))
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])


def test_numpy_scorer_matches_torch_for_the_default_network():
    net = build_network(NetworkConfig(n_features=2), seed=4)
    net.train()
    net(_batch(n=32, seed=5, loc=3.0).detach())
    net.eval()
    x = np.random.default_rng(6).normal(3.0, 2.0, (20, 2))
    with torch.no_grad():
        ref = torch.sigmoid(net(torch.tensor(x, dtype=torch.float32))[:, 0]).double().numpy()
    np.testing.assert_allclose(NumpyScorer(net).predict_proba(x), ref, atol=1e-6)


def test_one_default_for_the_monitor():
    from models.river_classifier import OnlineMLPClassifier
    assert NetworkConfig().batchnorm == LearnerConfig().batchnorm == "renorm"
    assert OnlineMLPClassifier().batchnorm == "renorm"  # the river estimator runs the same network (issue 18)
    assert isinstance(build_network(LearnerConfig().network)[0], BatchRenorm1d)


@pytest.mark.parametrize("old, now", [(True, "plain"), (False, "none")])
def test_configs_saved_with_a_boolean_batchnorm_still_load(old, now):
    assert LearnerConfig(batchnorm=old).batchnorm == now
    assert LearnerConfig(batchnorm=old) == LearnerConfig(batchnorm=now)


def test_an_unknown_batchnorm_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"batchnorm 'renormalise' is not one of \['renorm', 'plain', 'none'\]"):
        LearnerConfig(batchnorm="renormalise")


@pytest.mark.parametrize("batchnorm, normalise, text", [
    ("renorm", True, "RunningNormaliser -> BatchRenorm1d(1) -> Linear(1, 16) -> ReLU -> Linear(16, 1)"),
    ("plain", False, "BatchNorm1d(1) -> Linear(1, 16) -> ReLU -> Linear(16, 1)"),
    ("none", True, "RunningNormaliser -> Linear(1, 16) -> ReLU -> Linear(16, 1)"),
])
def test_describe_network(batchnorm, normalise, text):
    cfg = LearnerConfig(batchnorm=batchnorm, normalise=normalise)
    assert describe_network(build_network(cfg.network), normalise=normalise) == text


@pytest.mark.parametrize("preserve", [True, False])
def test_running_statistics_moving_in_training_do_not_move_the_learned_function(preserve):
    """preserve: when BatchRenorm1d's running statistics move as it trains, the next Linear layer is
    rescaled so that the score of a raw reading moves only by what the optimiser step did (here lr is
    so small that the step does nothing); without preserve the scores move with the statistics."""
    from models.learner import OnlineLearner

    cfg = LearnerConfig(lr=1e-12, replay=0, early=False, drift_errors=0, warm_steps=4, preserve=preserve,
                        init_bias=False)
    learner = OnlineLearner(cfg, seed=0)
    rng = np.random.default_rng(0)
    x0 = rng.normal(90, 5, size=(64, 1))
    learner.learn_many(x0, (x0[:, 0] > 91).astype(float))  # the first step sets the statistics
    probe = np.linspace(70, 110, 9)[:, None]
    before = learner.predict_proba_many(probe)
    mean0 = learner.net[0].running_mean.clone()
    x1 = x0[:learner.room()] + 8.0  # a batch well above the running mean: the statistics move
    learner.learn_many(x1, (x1[:, 0] > 91).astype(float))
    assert float((learner.net[0].running_mean - mean0).abs().max()) > 1e-3
    after = learner.predict_proba_many(probe)
    if preserve:
        np.testing.assert_allclose(after, before, atol=1e-5)
    else:
        assert np.abs(after - before).max() > 1e-3
