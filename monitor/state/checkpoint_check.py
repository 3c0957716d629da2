"""Every field of a loaded replay checkpoint checked (types, ranges, finiteness) before it is used.

``torch.load(weights_only=True)`` only promises that loading runs no code: a file edited by hand
(or by an attacker, or by a bug) can still hold a negative offset, a count written as text, a
missing field or NaN weights, which would give a traceback, a silent corruption of the outputs or
a model scoring NaN. ``check_replay_state`` refuses all of those with one line naming the field.

>>> check_replay_state({"format": "monitor-checkpoint", "version": 2, "options": {}, "monitor": {},
...                     "position": {"line": -3}, "outputs": {}, "counts": {"rejected": 0,
...                     "header_lines": 0}}, "s.pt", file_source=False)
Traceback (most recent call last):
...
monitor.state.checkpoint.CheckpointError: checkpoint s.pt is damaged or was edited: position.line is -3, expected an integer >= 1; give another --state to start afresh
"""

from __future__ import annotations

import math
import re
from typing import Any

from monitor.state.checkpoint import CheckpointError

__all__ = ["check_replay_state"]

_TOP = {"format": str, "version": int, "options": dict, "monitor": dict, "outputs": dict, "counts": dict}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAY_BE_TEXT = {"model", "after", "clear", "activation", "loss", "batchnorm", "bit_generator", "keys", "learners"}
_MAY_BE_NEGATIVE = {"seed"}  # --seed takes any integer
_NOT_FINITE_OK = {"alerts", "table"}  # alert times and key bookkeeping: checked by their owners


class _Bad(Exception):
    pass


def _int(value: Any, where: str, low: int = 0, high: float = math.inf) -> int:
    if type(value) is not int or not low <= value <= high:
        bound = f">= {low}" if high == math.inf else f"in {low}..{high}"
        raise _Bad(f"{where} is {_shown(value)}, expected an integer {bound}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_replay_state(state: dict, path, *, file_source: bool) -> None:
    """Raise CheckpointError (one line, naming the field) unless ``state`` is a sound replay checkpoint.

    ``file_source``: the run reads a file, whose position must carry a byte offset and the digest
    of the bytes before it (see streams.replay.CsvReplay.check_resume).
    """
    try:
        _check(state, file_source)
    except _Bad as e:
        raise CheckpointError(f"checkpoint {path} is damaged or was edited: {e}; "
                              "give another --state to start afresh") from None


def _check(state: dict, file_source: bool) -> None:
    for key, kind in _TOP.items():
        if key not in state:
            raise _Bad(f"field {key!r} is missing")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise _Bad(f"{key} is {_shown(state[key])}, expected {kind.__name__}")
    if "position" not in state:
        raise _Bad("field 'position' is missing")
    _position(state["position"], file_source)
    for name, size in state["outputs"].items():
        if size is not None:
            _int(size, f"outputs.{name}")
    counts = state["counts"]
    for name in ("rejected", "header_lines"):
        if name not in counts:
            raise _Bad(f"field 'counts.{name}' is missing")
        _int(counts[name], f"counts.{name}")
    _scan(state["monitor"], "monitor")


def _position(pos, file_source: bool) -> None:
    if pos is None:
        return
    if not isinstance(pos, dict):
        raise _Bad(f"position is {_shown(pos)}, expected a dict")
    _int(pos.get("line"), "position.line", 1)
    if not file_source and "offset" not in pos:  # a generated stream: the line is all there is
        return
    _int(pos.get("offset"), "position.offset")
    digest = pos.get("sha256")
    if file_source and not (isinstance(digest, str) and _HEX64.fullmatch(digest)):
        raise _Bad(f"position.sha256 is {_shown(digest)}, expected the input's digest (64 hex digits)")
    parser = pos.get("parser")
    if not isinstance(parser, dict):
        raise _Bad(f"position.parser is {_shown(parser)}, expected a dict")
    names = parser.get("names")
    for field in ("names", "header"):
        v = parser.get(field)
        if not (v is None or (isinstance(v, list) and all(isinstance(s, str) for s in v))):
            raise _Bad(f"position.parser.{field} is {_shown(v)}, expected a list of names")
    _int(parser.get("n_readings"), "position.parser.n_readings")
    cols = parser.get("columns")
    if cols is None:
        return
    if not isinstance(cols, dict) or names is None:
        raise _Bad(f"position.parser.columns is {_shown(cols)}, expected a dict (and column names)")
    for field in ("reading", "time", "label", "key"):
        v = cols.get(field)
        if v is not None or field == "reading":
            _int(v, f"position.parser.columns.{field}", 0, len(names) - 1)
    for field in ("time_iso", "has_header"):
        if type(cols.get(field)) is not bool:
            raise _Bad(f"position.parser.columns.{field} is {_shown(cols.get(field))}, expected true/false")
    if cols.get("names") != names:
        raise _Bad("position.parser.columns.names differ from position.parser.names")


def _scan(obj, where: str, finite: bool = True) -> None:
    """Walk the monitor's state: numbers finite, counts whole and not negative, text only where text goes."""
    import torch

    leaf = where.rsplit(".", 1)[-1]
    if isinstance(obj, dict):
        if {"config", "net", "opt", "pend_x"} <= obj.keys():
            _learner(obj, where)
        for k, v in obj.items():
            _scan(v, f"{where}.{k}", finite and k not in _NOT_FINITE_OK)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _scan(v, f"{where}[{i}]" if leaf not in _MAY_BE_TEXT else f"{where}.{leaf}", finite)
    elif isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and finite and not bool(torch.isfinite(obj).all()):
            raise _Bad(f"{where} holds values that are not finite (NaN or infinite)")
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, int):
        if obj < 0 and leaf.split("[")[0] not in _MAY_BE_NEGATIVE:
            raise _Bad(f"{where} is {obj}, expected a count (>= 0)")
    elif isinstance(obj, float):
        if finite and not math.isfinite(obj):
            raise _Bad(f"{where} is {obj!r}, expected a finite number")
    elif isinstance(obj, str):
        if not any(part.split("[")[0] in _MAY_BE_TEXT for part in where.split(".")):
            raise _Bad(f"{where} is {_shown(obj)}, expected a number")
    else:
        raise _Bad(f"{where} holds a {type(obj).__name__}")


def _learner(state: dict, where: str) -> None:
    """The sizes an OnlineLearner relies on without checking (its buffers, its mini-batch target)."""
    from models.learner import LearnerConfig
    import torch

    config = state["config"]
    if not isinstance(config, dict):
        raise _Bad(f"{where}.config is {_shown(config)}, expected a dict")
    try:
        c = LearnerConfig(**config)
    except (TypeError, ValueError) as e:
        raise _Bad(f"{where}.config does not make a learner ({str(e).splitlines()[0]})")
    target = _int(state.get("target"), f"{where}.target", c.min_batch, c.largest_batch)
    for x, y, cap in (("pend_x", "pend_y", target - 1), ("replay_x", "replay_y", c.replay)):
        tx, ty = state.get(x), state.get(y)
        if not (isinstance(tx, torch.Tensor) and isinstance(ty, torch.Tensor) and tx.dim() == 2
                and ty.dim() == 1 and tx.shape[0] == ty.shape[0] <= cap and tx.shape[1] == c.n_features):
            raise _Bad(f"{where}.{x}/{y} do not hold up to {cap} readings of {c.n_features} features")
    _int(state.get("replay_at"), f"{where}.replay_at", 0, max(c.replay - 1, 0))
    for name in ("n_seen", "n_steps", "n_skipped", "warm_end"):
        _int(state.get(name), f"{where}.{name}")
