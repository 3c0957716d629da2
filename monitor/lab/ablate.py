"""Ablation of the input treatments: the same online network on heart rate and on circles, five ways.

The project's lesson is that a small network learns zero-centred inputs (circles) easily and raw
heart rate (mean ~92, spread ~5.5) badly, unless the inputs are normalised first. `ablate` runs
the monitor's own pipeline, test-then-train, under each treatment and reports, per stream and
treatment: the final training loss, the prequential accuracy over the last pass, and how many
readings it took until accuracy over a sliding window first held 0.95 and 0.99.

>>> TREATMENTS["running"], TREATMENTS["batchnorm"], TREATMENTS["running+stream-batchnorm"]
((True, 'none'), (False, 'plain'), (True, 'renorm'))
>>> import numpy as np
>>> run = AblationRun(stream="circles", treatment="none", loss=np.array([0.5, 0.1, 0.3]),
...                   loss_at=np.array([4, 8, 12]), correct=np.ones(12, dtype=bool), last=6)
>>> run.row(final_steps=2, window=4)
{'stream': 'circles', 'treatment': 'none', 'final_loss': 0.2, 'accuracy': 1.0, 'readings_to_95': 4, 'readings_to_99': 4}
>>> print(format_table([run.row(final_steps=2, window=20)]))
stream   treatment  final_loss  accuracy  readings_to_95  readings_to_99
circles  none           0.2000    1.0000           never           never
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from monitor.core.metrics import first_sustained

__all__ = ["TREATMENTS", "STREAMS", "DEFAULT_PASSES", "WINDOW", "FINAL_STEPS", "PLAIN", "AblationRun",
           "ablate", "format_table", "run_ablate"]

# treatment -> (running normalisation, input layer: see models.network.BATCHNORMS). "batchnorm" is plain
# BatchNorm1d (it fails on a stream: a mini-batch of consecutive readings is normalised by its own mean);
# "stream-batchnorm" is BatchRenorm1d on the raw input; the last one is the monitor's default.
TREATMENTS = {"none": (False, "none"), "running": (True, "none"), "batchnorm": (False, "plain"),
              "stream-batchnorm": (False, "renorm"), "running+stream-batchnorm": (True, "renorm")}
STREAMS = ("heart-rate", "circles")
ROW_KEYS = ("stream", "treatment", "final_loss", "accuracy", "readings_to_95", "readings_to_99")

# Three passes: the learner takes 16 optimiser steps per mini-batch for its first 2,000 readings and
# one afterwards, so with the 1,800-reading sample the first pass learns, the second ends the warm
# phase, and the third is measured with a model that has seen the whole series once before. More
# passes add only ~7 steps each (one per 256 readings) and change little.
DEFAULT_PASSES = 3
WINDOW = 200  # readings in the sliding window of readings_to_95 / readings_to_99
FINAL_STEPS = 50  # final_loss is the mean loss of this many last optimiser steps (as Monitor.summary)

# The "plain" setting: the textbook loop a static notebook would run on a stream -- one optimiser
# step per mini-batch of 32 new readings, no replay of older readings, no warm-up, no bias prior.
PLAIN = dict(replay=0, warm_steps=1, steps=1, min_batch=32, batch_size=32, growth=0, init_bias=False)


@dataclass(frozen=True)
class AblationRun:
    """What one treatment did on one stream, kept for the table and the plots."""

    stream: str  # "heart-rate" or "circles"
    treatment: str  # a key of TREATMENTS
    loss: np.ndarray  # (steps,) training loss of each optimiser step
    loss_at: np.ndarray  # (steps,) readings learned when that step ran
    correct: np.ndarray  # (n,) bool: reading i was classified right before it was learned
    last: int  # readings in the last pass (accuracy is measured over these)

    def __repr__(self) -> str:
        return (f"AblationRun(stream={self.stream!r}, treatment={self.treatment!r}, "
                f"readings={len(self.correct)}, steps={len(self.loss)})")

    def row(self, *, final_steps: int = FINAL_STEPS, window: int = WINDOW) -> dict:
        """One table row: the keys of ROW_KEYS, None where a value does not exist."""
        tail = self.correct[-self.last:] if self.last else self.correct[:0]
        return {
            "stream": self.stream,
            "treatment": self.treatment,
            "final_loss": float(np.mean(self.loss[-final_steps:])) if len(self.loss) else None,
            "accuracy": float(np.mean(tail)) if len(tail) else None,
            "readings_to_95": first_sustained(self.correct, window, 0.95),
            "readings_to_99": first_sustained(self.correct, window, 0.99),
        }


def _run(batches: Sequence, passes: int, treatment: str, stream: str, *, config, seed: int,
         threshold: float, last: int) -> AblationRun:
    from monitor.core.monitor import Monitor

    normalise, batchnorm = TREATMENTS[treatment]
    mon = Monitor(config.with_(normalise=normalise, batchnorm=batchnorm), threshold=threshold, seed=seed,
                  trace=True)
    for _ in range(passes):
        for batch in batches:
            mon.process(batch)
    a = mon.trace.arrays()
    return AblationRun(stream=stream, treatment=treatment, loss=a["loss"], loss_at=a["loss_at"],
                       correct=(a["p"] > mon.flag_at) == (a["label"] == 1), last=last)


def ablate(series: Sequence, *, passes: int = DEFAULT_PASSES, seed: int = 0, config=None,
           threshold: float = 91.0, circles: bool = True,
           on_run: Callable[[AblationRun], None] | None = None) -> list[AblationRun]:
    """Run every treatment over a heart-rate series (replayed `passes` times) and over circles.

    Parameters
    ----------
    series
        The heart-rate readings as a list of Batch (one pass); replayed as they are each pass.
    passes
        Times the series is replayed, >= 1. The circles stream gets as many readings in all
        (passes x len(series), fresh points, not a replay) so the two are comparable.
    seed
        Seeds the weights, the replay draws and the circles points.
    config
        LearnerConfig whose other settings are kept; ``normalise`` and ``batchnorm`` are set per
        treatment.
    threshold
        bpm above which a heart-rate reading is labelled abnormal.
    circles
        Also run the circles stream.
    on_run
        Called with each run as it finishes (progress).

    Returns
    -------
    list of AblationRun, heart-rate first, treatments in the order of TREATMENTS.
    """
    from models.learner import LearnerConfig
    from streams.circles import Circles

    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    config = config or LearnerConfig()
    n = sum(len(b) for b in series)
    plan = [("heart-rate", list(series), passes)]
    if circles:
        plan.append(("circles", list(Circles(n=passes * n, seed=seed)), 1))
    runs = []
    for stream, batches, times in plan:
        for treatment in TREATMENTS:
            run = _run(batches, times, treatment, stream, config=config, seed=seed, threshold=threshold, last=n)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return runs


def format_table(rows: Sequence[dict]) -> str:
    """Rows as an aligned text table; "never" where a sustained level was not reached."""
    def cell(key, v):
        if v is None:
            return "never" if key.startswith("readings_to") else "n/a"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [list(ROW_KEYS)] + [[cell(k, r[k]) for k in ROW_KEYS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(ROW_KEYS))]
    lines = []
    for c in cells:
        parts = [c[0].ljust(widths[0]), c[1].ljust(widths[1])] + [v.rjust(w) for v, w in zip(c[2:], widths[2:])]
        lines.append("  ".join(parts))
    return "\n".join(lines)


def run_ablate(*, file, column, passes, seed, threshold, loss, plain, fmt, plot, quiet) -> int:
    """The `monitor ablate` command: read the series, run the ablation, print the table, plot.

    Errors are raised as monitor.errors.MonitorError (one line, exit status 2).
    """
    from models.learner import LearnerConfig
    from monitor.errors import MonitorError
    from monitor.app.sources import SourceSpec, open_source
    from streams import SourceError

    import torch
    torch.set_num_threads(1)  # tiny networks: one thread is fastest and leaves the other core free

    if plot:
        from monitor.output.plots import PlotUnavailable, require_matplotlib
        try:
            require_matplotlib()
        except PlotUnavailable as e:
            raise MonitorError(str(e))
    note = (lambda msg: None) if quiet else (lambda msg: print(f"monitor: {msg}", file=sys.stderr))
    spec = SourceSpec(file=file, stream=None if file else "sample", column=column, valid_range=None)
    choice = open_source(spec, on_note=note)
    try:
        series = list(choice.source)
    except SourceError as e:
        raise MonitorError(str(e))
    rejected = sum(len(b.rejected) for b in series)
    n = sum(len(b) for b in series)
    if n == 0:
        raise MonitorError(f"no readings in {choice.name} ({rejected} lines rejected)")
    name = "the shipped sample" if file is None else choice.name
    note(f"heart rate from {name}: {n} readings ({rejected} lines rejected), {passes} passes; "
         f"circles: {n * passes} readings; setting: {'plain' if plain else 'learner defaults'}")
    config = LearnerConfig(loss=loss, **(PLAIN if plain else {}))
    runs = ablate(series, passes=passes, seed=seed, config=config, threshold=threshold,
                  on_run=lambda r: note(f"done: {r.stream} / {r.treatment}"))
    rows = [r.row() for r in runs]
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    if plot:
        from monitor.output.plots import plot_ablation
        title = f"{name}, {passes} passes, seed {seed}" + (", plain setting" if plain else "")
        try:
            plot_ablation(runs, plot, title=title)
        except OSError as e:
            raise MonitorError(f"cannot write {plot}: {e.strerror or e}")
        note(f"wrote {plot}")
    return 0
