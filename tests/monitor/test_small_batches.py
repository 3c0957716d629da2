"""The short cuts for small batches (live lines) and big ones (sink chunks) give the same results."""

import io

import numpy as np

from monitor.config import Span
from monitor.keyed.alerts import AlertTracker
from monitor.core.metrics import PrequentialMetrics
from monitor.core.monitor import Scored
from monitor.output.sinks import CHUNK, CsvSink, JsonlSink, TableSink


def _scored(n: int, seed: int = 0) -> Scored:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return Scored(time=np.arange(n) * 0.5, x=rng.normal(90, 5, (n, 1)), label=(rng.random(n) > 0.5) * 1.0,
                  p=p, flag=p > 0.5, line=np.arange(2, n + 2))


def test_sinks_write_a_big_batch_in_chunks_with_the_same_text():
    s = _scored(2 * CHUNK + 7)
    for cls in (JsonlSink, CsvSink, TableSink):
        whole, pieces = io.StringIO(), io.StringIO()
        cls(whole).write(s)
        sink = cls(pieces)
        for a in range(0, len(s), 1000):
            sink.write(s.take(a, a + 1000))
        assert whole.getvalue() == pieces.getvalue()
        assert whole.getvalue().count("\n") == len(s) + (cls is not JsonlSink)


def test_metrics_one_reading_at_a_time_equal_one_batch():
    s = _scored(600, seed=1)
    one, batch = PrequentialMetrics(), PrequentialMetrics()
    for i in range(len(s)):
        one.update(s.label[i:i + 1], s.p[i:i + 1], s.flag[i:i + 1])
    batch.update(s.label, s.p, s.flag)
    assert one.state_dict()["hist_pos"] == batch.state_dict()["hist_pos"]
    assert one.state_dict()["hist_neg"] == batch.state_dict()["hist_neg"]
    assert one.result()["roc_auc"] == batch.result()["roc_auc"]


def test_alerts_one_key_line_by_line_equal_mixed_keys_batch():
    rng = np.random.default_rng(2)
    n = 400
    ids = rng.integers(0, 3, n)
    flag = np.repeat(rng.random(n // 20) > 0.5, 20)
    t, v = np.arange(n) * 5.0, rng.normal(95, 5, n)
    names = ["a", "b", "c"]
    kw = dict(after=Span(readings=3), clear=Span(readings=4))
    whole = AlertTracker(**kw).update(ids, names, t, v, flag)
    lines, single = AlertTracker(**kw), []
    for i in range(n):
        single += lines.update(ids[i:i + 1], names, t[i:i + 1], v[i:i + 1], flag[i:i + 1])
    assert whole and single == whole
