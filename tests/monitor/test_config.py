"""monitor.config: one frozen object per run, and the checkpoint options it gives."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.config import Span
from monitor.config import MonitorConfig, OutputSpec, ReplayConfig, SourceSpec, checkpoint_options, model_keys

# The option names checkpoints were written with before monitor.config: kept, so they still resume.
SAVED_BEFORE = {"hidden", "lr", "batch_size", "normalise", "batchnorm", "loss", "threshold", "seed", "source", "n",
                "column", "time_column", "label_column", "range", "format", "out", "rejects", "key_column",
                "key_model", "max_keys", "patients", "alert_after", "alert_clear", "alerts", "alerts_only",
                "max_line"}


def test_configs_are_frozen():
    run = ReplayConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.monitor.threshold = 80.0  # type: ignore[misc]


def test_checkpoint_options_keep_the_names_checkpoints_were_saved_with():
    from models.learner import LearnerConfig
    learner = set(f.name for f in dataclasses.fields(LearnerConfig)) - {"n_features"}
    assert set(checkpoint_options(ReplayConfig(), fmt="jsonl")) == SAVED_BEFORE | learner
    assert set(model_keys(MonitorConfig())) == learner


def test_checkpoint_options_are_the_settings_that_shape_the_records():
    run = ReplayConfig(source=SourceSpec(file="hr.csv", column="hr", valid_range=None, max_line=100),
                       monitor=MonitorConfig(threshold=95.0, seed=3, key_model="per-key", max_keys=4,
                                             alert_after=Span.parse("12"), alert_clear=Span.parse("5m")),
                       output=OutputSpec(out="o.jsonl", alerts="a.jsonl", rejects="r.jsonl", quiet=True,
                                         summary_json="s.json"),
                       speed=2.0, strict=True)
    opts = checkpoint_options(run, fmt="csv")
    assert {k: opts[k] for k in ("source", "column", "range", "max_line", "threshold", "seed", "key_model",
                                 "max_keys", "alert_after", "alert_clear", "out", "alerts", "rejects", "format")} == {
        "source": "hr.csv", "column": "hr", "range": None, "max_line": 100, "threshold": 95.0, "seed": 3,
        "key_model": "per-key", "max_keys": 4, "alert_after": "12", "alert_clear": "300s", "out": "o.jsonl",
        "alerts": "a.jsonl", "rejects": "r.jsonl", "format": "csv"}
    # what may change between a run and its resumption is left out
    assert checkpoint_options(dataclasses.replace(run, speed=0.0, strict=False), fmt="csv") == opts


def test_source_spec_names_its_input():
    assert SourceSpec(stream="ward").name == "ward" and SourceSpec(file="-").name == "-"
    assert SourceSpec(file="redis://h:1/s").is_redis and not SourceSpec(file="redis://h:1/s").is_file
    assert SourceSpec(file="hr.csv").is_file and not SourceSpec(file="-").is_file


def test_the_keyed_monitor_of_a_config():
    from monitor.keyed.keyed_monitor import KeyedMonitor
    mon = KeyedMonitor.from_config(MonitorConfig(threshold=100.0, seed=5, learn=False, key_model="global",
                                                 max_keys=3, alert_after=Span.parse("4")))
    assert (mon.threshold, mon.seed, mon.learn, mon.model, mon.max_keys, str(mon.alerts.after)) == \
        (100.0, 5, False, "global", 3, "4")
