"""The monitor loop: test-then-train, slicing invariance, metrics, pacing."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.app.pacing import Pacer
from monitor.core.monitor import Monitor
from monitor.app.replay_loop import RejectReport, replay
from streams import Batch, Reject
from tests.conftest import hr_series


def hr_batch(values, first_line=1):
    return Batch.of_values(values, first_line=first_line)


class ListSink:
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)

    def flush(self):
        pass


def test_no_reading_is_learned_before_it_is_scored(hr_values):
    mon = Monitor(seed=0)
    mon.process(hr_batch(hr_values[:1]))  # builds the learner
    learner = mon.learner
    scored, events = set(), []
    real_predict, real_learn = learner.predict_proba_many, learner.learn_many

    def predict(x):
        scored.update(x[:, 0].tolist())
        return real_predict(x)

    def learn(x, y):
        events.append(all(v in scored for v in x[:, 0].tolist()))
        return real_learn(x, y)

    learner.predict_proba_many, learner.learn_many = predict, learn
    mon.process(hr_batch(hr_values[1:], first_line=2))
    assert events and all(events)


@pytest.fixture(scope="module")
def whole():
    """(monitor, scores) of hr_values in one batch, with a trace: the tests only read them."""
    mon = Monitor(seed=0, trace=True)
    return mon, mon.process(hr_batch(hr_series())).p


def test_a_score_never_depends_on_later_readings(hr_values, whole):
    """Prequential honesty: the first m records are the same whether the stream stops at m or goes on."""
    full = whole[1]
    for m in (1, 5, 37, 400):
        prefix = Monitor(seed=0).process(hr_batch(hr_values[:m])).p
        np.testing.assert_array_equal(prefix, full[:m])


def test_output_does_not_depend_on_batch_boundaries(hr_values, whole):
    mon = Monitor(seed=0)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < len(hr_values):
        k = int(rng.integers(1, 90))
        parts.append(mon.process(hr_batch(hr_values[i:i + k], first_line=i + 1)).p)
        i += k
    np.testing.assert_array_equal(np.concatenate(parts), whole[1])


def test_summary_metrics_match_sklearn_on_the_same_stream(hr_values, whole):
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score  # here, not at collection: 1 s a worker
    mon = whole[0]
    tr = mon.trace.arrays()
    s = mon.summary()
    assert s["readings"] == len(hr_values)
    assert s["accuracy"] == pytest.approx(accuracy_score(tr["label"], tr["p"] > 0.5), rel=1e-12)
    assert s["log_loss"] == pytest.approx(log_loss(tr["label"], tr["p"], labels=[0, 1]), rel=1e-6)
    assert s["roc_auc"] == pytest.approx(roc_auc_score(tr["label"], tr["p"]), abs=2e-3)
    assert s["flags"] == int((tr["p"] > 0.5).sum())


def test_threshold_is_strictly_greater():
    mon = Monitor(seed=0, threshold=91.0)
    s = mon.process(hr_batch([91.0, 91.0001, 90.9]))
    assert s.label.tolist() == [0.0, 1.0, 0.0]


def test_frozen_monitor_never_changes_the_model(hr_values):
    mon = Monitor(seed=0)
    mon.process(hr_batch(hr_values[:300]))
    mon.learn = False
    steps = mon.learner.n_steps_
    a = mon.process(hr_batch(hr_values[300:]))
    b = mon.process(hr_batch(hr_values[300:]))
    assert mon.learner.n_steps_ == steps
    np.testing.assert_array_equal(a.p, b.p)


def test_replay_counts_rejects_and_readings(hr_values):
    batches = [
        Batch(time=np.arange(3.0), x=np.array([[80.0], [95.0], [88.0]]), y=np.full(3, np.nan),
              line=np.array([2, 4, 5]), rejected=(Reject(3, "abc", "not a number: 'abc'"),), header_lines=1),
    ]
    sink = ListSink()
    s = replay(batches, Monitor(seed=0), sink, rejects=RejectReport())
    assert (s["readings"], s["rejected"], s["header_lines"]) == (3, 1, 1)
    assert [int(v) for v in np.concatenate([p.line for p in sink.parts])] == [2, 4, 5]


def test_pacer_releases_readings_by_their_time():
    now = [0.0]
    slept = []

    def sleep(dt):
        slept.append(dt)
        now[0] += dt

    pacer = Pacer(speed=2.0, clock=lambda: now[0], sleep=sleep)
    parts = list(pacer.split(np.array([10.0, 10.0, 11.0, 14.0])))
    assert [(p.start, p.stop) for p in parts] == [(0, 2), (2, 3), (3, 4)]
    assert slept == pytest.approx([0.5, 1.5])  # gaps of 1 s and 3 s at twice real time


def test_pacer_rejects_negative_speed():
    with pytest.raises(ValueError, match="speed must be 0"):
        Pacer(speed=-1)


def test_emitting_records_before_learning_gives_the_same_records(hr_values, whole):
    emitted = []
    mon = Monitor(seed=0)
    for i in range(0, len(hr_values), 7):
        mon.process(hr_batch(hr_values[i:i + 7], first_line=i + 1), emit=lambda s: emitted.append(s.p))
    np.testing.assert_array_equal(np.concatenate(emitted), whole[1])


def _unscoreable_monitor(monkeypatch) -> Monitor:
    """A monitor whose network gives no score (NaN, as inf - inf inside it would) for readings >= 1e300."""
    mon = Monitor(seed=0)
    learner = mon._learner_for(1)
    score = learner.predict_proba_many
    monkeypatch.setattr(learner, "predict_proba_many",
                        lambda x: np.where(x[:, 0] >= 1e300, np.nan, score(x)))
    return mon


def test_an_unscoreable_reading_is_emitted_as_it_is_returned(monkeypatch):
    values = [80.0, 95.0, 1e300, 88.0, 1e301, 99.0, 85.0]
    mon = _unscoreable_monitor(monkeypatch)
    emitted = []  # copies, as a sink writes them at once (the Scored holds views of the monitor's arrays)
    returned = mon.process(hr_batch(values), emit=lambda s: emitted.append((s.p.copy(), s.flag.copy())))
    p = np.concatenate([e[0] for e in emitted])
    assert p.tolist() == returned.p.tolist() and not np.isnan(p).any()
    assert p[[2, 4]].tolist() == [0.5, 0.5] and mon.n_nan_scores == 2
    assert np.concatenate([e[1] for e in emitted]).tolist() == returned.flag.tolist()
    assert mon.summary()["nan_scores"] == 2


@pytest.mark.parametrize("how", ["live", "paced"])
def test_live_and_paced_records_of_unscoreable_readings_are_valid_json(monkeypatch, how):
    import io
    import json

    from monitor.output.sinks import JsonlSink

    def no_constants(name):
        raise AssertionError(f"{name} in a record")

    values = [80.0, 1e300, 95.0, 88.0, 1e301, 99.0]
    batch = Batch(time=np.arange(6) * 0.001, x=np.array(values).reshape(-1, 1), y=np.full(6, np.nan),
                  line=np.arange(1, 7))
    mon = _unscoreable_monitor(monkeypatch)
    out = io.StringIO()
    pacer = Pacer(speed=1000.0) if how == "paced" else None
    summary = replay([batch], mon, JsonlSink(out), live=how == "live", pacer=pacer)
    recs = [json.loads(line, parse_constant=no_constants) for line in out.getvalue().split("\n")[:-1]]
    assert [r["p_abnormal"] for r in recs][1::3] == [0.5, 0.5]
    assert summary["nan_scores"] == 2 and summary["readings"] == 6
