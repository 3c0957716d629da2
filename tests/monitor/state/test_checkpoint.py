"""Crafted but type-valid checkpoints (issue 12, item 4): every field checked, refused in one line."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from monitor.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A finished run's files (relative names in the options: the tests run in copies)."""
    d = tmp_path_factory.mktemp("ck")
    here = os.getcwd()
    os.chdir(d)
    rng = np.random.default_rng(0)
    (d / "a.csv").write_text("t,hr\n" + "".join(f"{i * 0.5},{v:.2f}\n"
                                                for i, v in enumerate(90 + 6 * rng.standard_normal(300))))
    try:
        res = CliRunner().invoke(main, ARGS, catch_exceptions=False)
    finally:
        os.chdir(here)
    assert res.exit_code == 0
    return d


ARGS = ["replay", "a.csv", "--out", "o.jsonl", "--state", "s.pt", "--checkpoint-every", "100", "-q"]


def _set(state: dict, path: str, value) -> None:
    *parents, last = path.replace("net.1.weight", "net.1@weight").split(".")
    last = last.replace("@", ".")
    for p in parents:
        state = state[p]
    if value is _DELETE:
        del state[last]
    elif callable(value):
        state[last] = value(state[last])
    else:
        state[last] = value


_DELETE = object()
_LEARNER = "monitor.inner.learner"


def _nan_first(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = math.nan
    return t


EDITS = {
    "negative offset": ("position.offset", -5),
    "offset as text": ("position.offset", "3398"),
    "line zero": ("position.line", 0),
    "missing counts": ("counts", _DELETE),
    "missing monitor": ("monitor", _DELETE),
    "count as text": ("counts.rejected", "3"),
    "negative header count": ("counts.header_lines", -1),
    "negative output size": ("outputs.out", -1),
    "output size as float": ("outputs.out", 12.5),
    "no input digest": ("position.sha256", _DELETE),
    "digest not hex": ("position.sha256", "zz"),
    "column index out of range": ("position.parser.columns.reading", 9),
    "NaN weights": (f"{_LEARNER}.net.1.weight", _nan_first),  # net.0 is the BatchRenorm1d (no weights)
    "inf in Adam state": (f"{_LEARNER}.opt.exp_avg", lambda v: [math.inf] + v[1:]),
    "NaN normaliser mean": (f"{_LEARNER}.normaliser.mean", [math.nan]),
    "negative scored": ("monitor.inner.n_scored", -1),
    "scored as text": ("monitor.n_scored", "300"),
    "mini-batch target 0": (f"{_LEARNER}.target", 0),
    "replay slot past the ring": (f"{_LEARNER}.replay_at", 5000),
    "pending rows of another width": (f"{_LEARNER}.pend_x", lambda t: torch.zeros(len(t), 3, dtype=torch.float64)),
    "negative true positives": ("monitor.inner.metrics.tp", -3),
    "NaN log loss": ("monitor.inner.metrics.log_loss_sum", math.nan),
    "NaN recent loss": ("monitor.inner.recent_losses", [math.nan]),
    "version as text": ("version", "1"),
    "learner config unknown field": (f"{_LEARNER}.config", lambda c: {**c, "wings": 2}),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_a_crafted_field_is_refused_in_one_line(saved, tmp_path, monkeypatch, edit):
    where, value = EDITS[edit]
    shutil.copy(saved / "a.csv", tmp_path / "a.csv")
    shutil.copy(saved / "o.jsonl", tmp_path / "o.jsonl")
    state = torch.load(saved / "s.pt", weights_only=True)
    _set(state, where, value)
    torch.save(state, tmp_path / "s.pt")
    before = (tmp_path / "o.jsonl").read_bytes()
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ARGS, catch_exceptions=False)
    assert res.exit_code == 2, (edit, res.output)
    assert res.output.startswith("Error: ") and "checkpoint" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert (tmp_path / "o.jsonl").read_bytes() == before  # refused before any output is touched


def test_the_unedited_checkpoint_still_resumes(saved, tmp_path, monkeypatch):
    for name in ("a.csv", "o.jsonl", "s.pt"):
        shutil.copy(saved / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ARGS, catch_exceptions=False)
    assert res.exit_code == 0 and (tmp_path / "o.jsonl").read_bytes() == (saved / "o.jsonl").read_bytes()


def test_a_text_file_as_state_is_not_called_code(tmp_path):
    (tmp_path / "s.pt").write_text("hello, I am notes\n")
    (tmp_path / "a.csv").write_text("hr\n80\n81\n")
    res = CliRunner().invoke(main, ["replay", str(tmp_path / "a.csv"), "--state", str(tmp_path / "s.pt"), "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 2 and "not a monitor checkpoint" in res.output and "run code" not in res.output


@pytest.mark.parametrize("source", [["-"], ["--stream", "synthetic", "--n", "300"]], ids=["stdin", "generated"])
def test_checkpoints_of_standard_input_and_generated_streams_still_resume(tmp_path, source):
    args = ["replay", *source, "--state", str(tmp_path / "s.pt"), "--out", str(tmp_path / "o.jsonl"), "-q",
            "--checkpoint-every", "100"]
    feed = "hr\n" + "".join(f"{80 + i % 20}\n" for i in range(50))
    for _ in range(2):
        res = CliRunner().invoke(main, args, input=feed, catch_exceptions=False)
        assert res.exit_code == 0, res.output
