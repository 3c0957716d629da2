"""The column-at-a-time record writers give the same bytes as the per-field writers they replaced.

The oracle is tests/monitor/output/sinks_reference.py, the writers as they were before issue 15.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest

import sinks_reference as ref
from monitor.keyed.keyed_monitor import KeyedMonitor
from monitor.output.number_text import fixed_text, int_text, join_rows, pad_left, repr_text, strings_text
from monitor.core.monitor import Scored
from monitor.output.sinks import CsvSink, JsonlSink, TableSink
from monitor.app.sources import SourceSpec, open_source

WRITERS = [(JsonlSink, ref.JsonlSink, {}), (CsvSink, ref.CsvSink, {}), (TableSink, ref.TableSink, {}),
           (TableSink, ref.TableSink, {"colour": True})]


def _bytes(cls, batches, **kw) -> str:
    out = io.StringIO()
    sink = cls(out, **kw)
    for s in batches:
        sink.write(s)
    return out.getvalue()


@functools.cache
def _scored(stream: str, **kw) -> list[Scored]:
    """The scored slices of a seeded run, computed once for the four writers (the writers only read them)."""
    choice = open_source(SourceSpec(stream=stream, **kw), seed=0)
    mon = KeyedMonitor(seed=0)
    return [mon.process(b) for b in choice.source]


@pytest.mark.parametrize("new, old, kw", WRITERS)
@pytest.mark.parametrize("stream, opts, n", [("sample", {}, 1800), ("ward", {"patients": 7, "n": 60}, 5040)])
def test_same_bytes_as_before_on_the_shipped_streams(new, old, kw, stream, opts, n):
    batches = _scored(stream, **opts)
    assert sum(map(len, batches)) == n
    assert _bytes(new, batches, **kw) == _bytes(old, batches, **kw)


def _edge_scored(key=None, d=1) -> Scored:
    rng = np.random.default_rng(3)
    special = np.array([0.0, -0.0, 1e-4, 9.999e-5, 5e-324, 1e15, 1e16 - 1, 999999999999999.9, 0.25, 2.5,
                        1e300, -1e-300, np.inf, -np.inf, np.nan, 0.0000005, 0.0000015, 1.0000005, -5.5,
                        -0.001, 91.0, 300.0, 20.0, 1 / 3, 2 / 3, 0.125, 123456.789, 1e-7])
    n = len(special) * 4
    x = np.concatenate([special, rng.normal(90, 10, n - len(special)).round(2)])
    t = np.concatenate([special[::-1], np.arange(n - len(special)) * 0.5 + 1.7e9])
    p = np.concatenate([np.clip(np.abs(special), 0, 1), rng.random(n - len(special))])
    p[:6] = [0.0000005, 0.0000015, 0.99999949, 0.49999950000000003, 1.0, 0.0]
    label = rng.choice([0.0, 1.0, np.nan], n)
    xs = np.column_stack([x] + [rng.normal(0, 1e3, n) for _ in range(d - 1)])
    return Scored(time=t, x=xs, label=label, p=p, flag=p > 0.5, line=np.arange(n) * 1000 + 2,
                  key=None if key is None else np.array([key[i % len(key)] for i in range(n)], dtype=object))


@pytest.mark.parametrize("new, old, kw", WRITERS)
@pytest.mark.parametrize("key", [None, ["a", "bed 12", 'q"uote', "é\x00ü", "", "a-very-long-patient-id", 7]])
def test_same_bytes_as_before_on_edge_values(new, old, kw, key):
    s = _edge_scored(key)
    assert _bytes(new, [s], **kw) == _bytes(old, [s], **kw)


@pytest.mark.parametrize("new, old, kw", WRITERS[:2])
def test_same_bytes_with_several_features_and_odd_labels(new, old, kw):
    s = _edge_scored(d=3)
    s = Scored(time=s.time, x=s.x, label=np.where(np.isnan(s.label), 7.0, s.label), p=s.p, flag=s.flag,
               line=s.line)
    assert _bytes(new, [s], **kw) == _bytes(old, [s], **kw)


def test_empty_batch_writes_nothing():
    s = _edge_scored().take(0, 0)
    for cls in (JsonlSink, CsvSink, TableSink):
        assert _bytes(cls, [s]) == ""


@pytest.mark.parametrize("seed", range(3))
def test_number_columns_match_python_formatting(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(90, 10, 5000).round(2), rng.random(5000), rng.normal(0, 1e6, 5000),
                        np.exp(rng.uniform(-40, 40, 5000)) * rng.choice([-1, 1], 5000)])
    lines = lambda m: join_rows([m, b"\n"]).decode().split("\n")[:-1]  # noqa: E731
    assert lines(repr_text(x)) == [repr(v) for v in x.tolist()]
    for d in (1, 2, 4, 6):
        assert lines(fixed_text(x, d)) == [f"%.{d}f" % v for v in x.tolist()]
        assert lines(pad_left(fixed_text(x, d), 12)) == [f"{v:>12.{d}f}" for v in x.tolist()]
    v = rng.integers(-10 ** 15, 10 ** 15, 5000)
    assert lines(int_text(v)) == [str(i) for i in v.tolist()]
    texts = ["", "a", "é", "x\x00y", " padded "]
    assert join_rows([strings_text(texts), b"|"]).decode() == "".join(t + "|" for t in texts)
