"""`monitor info FILE`: what the monitor would read from a file, without running the model.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "hr.csv")
>>> _ = path.write_text("t,hr\\n0,80\\n0.5,90\\n1.0,abc\\n1.5,100\\n")
>>> info = describe(path)
>>> info["format"], info["columns"], info["readings"], info["rejected"], info["mean"], info["above_threshold"]
('csv', "reading column 'hr', time column 't'", 3, 1, 90.0, 0.3333333333333333)
>>> print(format_info(info), end="")  # doctest: +ELLIPSIS
file            ...hr.csv
format          csv
columns         reading column 'hr', time column 't'
readings        3  (1 rejected, 1 header line)
time            0 .. 1.5  (span 1.5 s)
mean            90.00
spread (std)    8.16  (min 80.00, max 100.00)
above 91 bpm    33.3%  (1 of 3)
rejected        line 4: not a number: 'abc'
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["describe", "format_info"]


def describe(path: str | os.PathLike, *, format_in: str | None = None, column: str | None = None,
             time_column: str | None = None, label_column: str | None = None,
             threshold: float = 91.0, valid_range: tuple[float, float] | None = (20.0, 300.0),
             max_line: int | None = None) -> dict:
    """Read a whole file as the monitor would and summarise it; SourceError if it cannot be read.

    Keys: path, format, gzip, columns, readings, rejected, header_lines, first_rejects (up to 5
    of [record, reason]), time_first, time_last, time_span_s, time_is_index (no time column: the
    times are reading indices), mean, std, min, max, threshold,
    above_threshold (share of readings strictly above it), labels (share of label 1, when the file
    has a label column), found (what a record-based format found: signals, codes, skipped
    records), unit (what rejects count: line, record, sample...), keys (distinct keys, when keyed).
    """
    from models.normaliser import RunningNormaliser
    from streams.columns import NO_TIME
    from streams.formats import detect, open_file

    found = detect(path)
    notes: list[str] = []
    source = open_file(path, format_in=format_in, column=column, time_column=time_column,
                       label_column=label_column, on_note=notes.append, valid_range=valid_range,
                       max_line=max_line)  # the checks a replay makes, so the counts agree
    stats = RunningNormaliser()
    n = rejected = headers = above = 0
    lo, hi = math.inf, -math.inf
    t_first = t_last = None
    label_sum, label_n = 0.0, 0
    first_rejects: list = []
    keys: set = set()
    for batch in source:
        rejected += len(batch.rejected)
        headers += batch.header_lines
        first_rejects += [[r.line, r.reason] for r in batch.rejected[:5 - len(first_rejects)]]
        if not len(batch):
            continue
        x = batch.x[:, 0]
        if batch.key is not None:
            keys.update(batch.key.tolist())
        stats.update(batch.x)
        n += len(x)
        above += int((x > threshold).sum())
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        if t_first is None:
            t_first = float(batch.time[0])
        t_last = float(batch.time[-1])
        known = ~np.isnan(batch.y)
        label_sum += float(batch.y[known].sum())
        label_n += int(known.sum())
    mean, std = (stats.get() if n else (None, None))
    return {
        "path": os.fspath(path), "format": format_in or found.format, "gzip": found.gzip,
        "columns": notes[0] if notes else None, "readings": n, "rejected": rejected,
        "header_lines": headers, "first_rejects": first_rejects,
        "time_first": t_first, "time_last": t_last,
        "time_span_s": None if t_first is None else t_last - t_first,
        "time_is_index": bool(notes) and NO_TIME in notes[0],  # no time column: no span in seconds
        "mean": None if mean is None else float(mean[0]), "std": None if std is None else float(std[0]),
        "min": lo if n else None, "max": hi if n else None, "threshold": threshold,
        "above_threshold": above / n if n else None, "above_count": above,
        "labels": label_sum / label_n if label_n else None,
        "found": getattr(source, "found_", None), "unit": getattr(source, "record_unit", "line"),
        "keys": len(keys) if keys else None,
    }


def _time(t: float) -> str:
    """Epoch seconds (after 2001) as a UTC date-time, smaller numbers as they are."""
    if t > 1e9:
        import datetime
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{t:g}"


def _span(s: float) -> str:
    if s < 120:
        return f"{s:g} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def format_info(d: dict) -> str:
    """The report `monitor info` prints."""
    fmt = d["format"] + (" (gzip)" if d["gzip"] else "")
    extra = [f"{d['rejected']} rejected"]
    if d["header_lines"]:
        extra.append(f"{d['header_lines']} header line" + ("s" if d["header_lines"] > 1 else ""))
    lines = [("file", d["path"]), ("format", fmt), ("columns", d["columns"] or "-")]
    if d.get("found"):
        lines.append(("found", d["found"]))
    lines.append(("readings", f"{d['readings']}  ({', '.join(extra)})"))
    if d.get("keys"):
        lines.append(("keys", str(d["keys"])))
    if d["readings"]:
        lines += [
            ("time", f"reading index {d['time_first']:g} .. {d['time_last']:g}  (no time column)"
             if d.get("time_is_index") else
             f"{_time(d['time_first'])} .. {_time(d['time_last'])}  (span {_span(d['time_span_s'])})"),
            ("mean", f"{d['mean']:.2f}"),
            ("spread (std)", f"{d['std']:.2f}  (min {d['min']:.2f}, max {d['max']:.2f})"),
            (f"above {d['threshold']:g} bpm", f"{100 * d['above_threshold']:.1f}%  "
                                              f"({d['above_count']} of {d['readings']})"),
        ]
        if d["labels"] is not None:
            lines.append(("labelled 1", f"{100 * d['labels']:.1f}%"))
    unit = d.get("unit") or ("line" if d["format"] == "csv" else "record")
    for rec, reason in d["first_rejects"]:
        lines.append(("rejected", f"{unit} {rec}: {reason}"))
    return "".join(f"{k:<15} {v}\n" for k, v in lines)
