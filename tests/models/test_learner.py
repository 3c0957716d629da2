"""The network and the online learner, checked against plain torch and against their own promises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner  # the learner the monitor runs (its TorchScript steps)
from models.network import NetworkConfig, build_network, make_loss


def stream(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(92, 5.5, size=(n, 1))
    return x, (x[:, 0] > 91).astype(float)


def test_one_step_matches_a_plain_torch_loop():
    cfg = LearnerConfig(normalise=False, replay=0, min_batch=8, batch_size=8, growth=0, warm_steps=1,
                        steps=1, init_bias=False, lr=0.01, early=False, preserve=False)
    learner = OnlineLearner(cfg, seed=3)
    ref = build_network(cfg.network, seed=3)
    opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x, y = stream(32)
    for i in range(0, 32, 8):
        xb, yb = x[i:i + 8], y[i:i + 8]
        ref.eval()
        with torch.no_grad():
            p_ref = torch.sigmoid(ref(torch.tensor(xb, dtype=torch.float32))[:, 0]).double().numpy()
        np.testing.assert_allclose(learner.predict_proba_many(xb), p_ref, rtol=1e-5)
        ref.train()
        loss = loss_fn(ref(torch.tensor(xb, dtype=torch.float32))[:, 0], torch.tensor(yb, dtype=torch.float32))
        opt.zero_grad()
        loss.backward()
        opt.step()
        (got,) = learner.learn_many(xb, yb)
        assert got == pytest.approx(loss.item(), rel=1e-6)


def _scores(learner, x, y, slices):
    p = np.empty(len(x))
    i = 0
    for size in slices:
        while size > 0 and i < len(x):
            k = min(learner.room(x[i:i + size], y[i:i + size]), size, len(x) - i)
            p[i:i + k] = learner.predict_proba_many(x[i:i + k])
            learner.learn_many(x[i:i + k], y[i:i + k])
            i += k
            size -= k
    return p


def test_scores_do_not_depend_on_how_the_stream_is_sliced():
    x, y = stream(700)
    one_by_one = _scores(ManualStepLearner(seed=1), x, y, [1] * 700)
    rng = np.random.default_rng(5)
    ragged = _scores(ManualStepLearner(seed=1), x, y, rng.integers(1, 300, size=700).tolist())
    np.testing.assert_array_equal(one_by_one, ragged)


def test_batchnorm_never_trains_on_a_single_reading():
    learner = OnlineLearner(LearnerConfig(min_batch=2, batchnorm=True), seed=0)
    sizes = []
    bn = learner.net[0]
    bn.register_forward_hook(lambda m, inp, out: sizes.append(inp[0].shape[0]) if m.training else None)
    x, y = stream(300)
    for i in range(300):
        learner.predict_proba_many(x[i:i + 1])
        learner.learn_many(x[i:i + 1], y[i:i + 1])
    assert sizes and min(sizes) >= 2


def test_learns_a_threshold_on_raw_heart_rate():
    x, y = stream(3000, seed=2)
    learner = ManualStepLearner(seed=0)
    p = _scores(learner, x, y, [3000])
    late = slice(1500, None)
    assert np.mean((p[late] > 0.5) == y[late]) > 0.98


def test_unknown_labels_update_the_normaliser_but_are_not_trained_on():
    x, y = stream(64)
    y_nan = y.copy()
    y_nan[:] = np.nan
    learner = OnlineLearner(LearnerConfig(min_batch=4), seed=0)
    learner.learn_many(x, y_nan)
    assert learner.n_steps_ == 0 and learner.normaliser.n_seen_ == 64


def test_predicting_does_not_change_the_learner():
    x, y = stream(100)
    learner = OnlineLearner(seed=0)
    learner.learn_many(x, y)
    before = {k: v.clone() for k, v in learner.net.state_dict().items()}
    learner.predict_proba_many(x)
    after = learner.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_sigmoid_bce_network_outputs_probabilities():
    learner = OnlineLearner(LearnerConfig(loss="sigmoid-bce"), seed=0)
    p = learner.predict_proba_many(np.array([[80.0], [100.0]]))
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"min_batch": 1}, "min_batch must be at least 2"),
    ({"batch_size": 2, "min_batch": 4}, "batch_size (2) must be at least min_batch (4)"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"hidden": 0}, "hidden must be at least 1"),
    ({"loss": "mse"}, "loss 'mse' is not one of"),
])
def test_bad_configs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError) as err:
        LearnerConfig(**kwargs)
    assert message in str(err.value)


def test_network_is_seeded_without_touching_the_global_rng():
    torch.manual_seed(123)
    a = torch.rand(1)
    torch.manual_seed(123)
    build_network(NetworkConfig(), seed=9)
    assert torch.equal(torch.rand(1), a)
    w1 = build_network(NetworkConfig(), seed=9)[1].weight
    w2 = build_network(NetworkConfig(), seed=9)[1].weight
    assert torch.equal(w1, w2)


def test_bce_with_logits_stays_finite_where_sigmoid_bce_clamps():
    logits = torch.tensor([200.0, -200.0], requires_grad=True)
    target = torch.tensor([0.0, 1.0])  # confidently wrong
    stable = make_loss("bce-logits")(logits, target)
    stable.backward()
    assert torch.isfinite(stable) and stable.item() == pytest.approx(200.0, rel=1e-4)
    assert torch.all(logits.grad.abs() > 0.1)
    logits2 = torch.tensor([200.0, -200.0], requires_grad=True)
    clamped = make_loss("sigmoid-bce")(torch.sigmoid(logits2), target)
    clamped.backward()
    assert clamped.item() == pytest.approx(100.0)  # BCELoss clamps log at -100: stuck, whatever the logit
    assert torch.all(logits2.grad.abs() < 1e-6)  # and the gradient has vanished


@pytest.mark.parametrize("loss", ["bce-logits", "sigmoid-bce"])
def test_a_glitch_reading_saturates_sigmoid_bce_but_not_bce_with_logits(loss):
    """Raw inputs, a sensor glitch of 10^5 bpm: the logits are huge and the label disagrees with them.

    Through the learner (as `--loss sigmoid-bce --no-normalise --no-batchnorm` runs it): with a
    sigmoid output and BCELoss, p is exactly 0 or 1 in float32, BCELoss clamps log(0) at -100,
    the gradient through the saturated sigmoid is exactly zero, and every step reports a loss of
    100 while nothing is learned. BCEWithLogitsLoss reports the true, finite loss and learns.
    """
    cfg = LearnerConfig(normalise=False, batchnorm=False, loss=loss, min_batch=8, replay=0, init_bias=False,
                        early=False)  # one mini-batch, warm_steps steps
    learner = OnlineLearner(cfg, seed=0)
    x = np.full((8, 1), 1e5)
    logits = learner._scorer.logits(x)
    assert np.all(np.abs(logits) > 200)  # the precondition: extreme logits
    y = (logits < 0).astype(float)  # confidently wrong about every reading
    before = [p.detach().clone() for p in learner.net.parameters()]
    losses = learner.learn_many(x, y)
    assert len(losses) == cfg.warm_steps and learner.n_skipped_ == 0
    moved = any(not torch.equal(a, b) for a, b in zip(before, learner.net.parameters()))
    if loss == "sigmoid-bce":
        assert losses == [pytest.approx(100.0)] * len(losses)  # stuck at BCELoss's clamp
        assert not moved  # zero gradient: the weights did not change at all
    else:
        assert all(np.isfinite(losses)) and losses[0] == pytest.approx(np.abs(logits).mean(), rel=1e-3)
        assert moved and losses[-1] < losses[0]  # a real gradient: it learns from the glitch
