"""Pictures: training-loss curves of the ablation, and a replayed series with its flags.

matplotlib is an optional extra (``pip install 'monitor[plot]'``); it is imported only when a plot
is asked for, with the headless Agg backend, so no display is needed.

>>> import numpy as np
>>> smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist()
[1.0, 2.0, 4.0, 6.0]
>>> smooth(np.array([1.0, 3.0]), 25).tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["PlotUnavailable", "require_matplotlib", "smooth", "plot_ablation", "plot_replay"]

MISSING = "--plot needs matplotlib, which is not installed: pip install 'monitor[plot]'"
COLOURS = {"none": "tab:red", "running": "tab:blue", "batchnorm": "tab:green", "stream-batchnorm": "tab:orange",
           "running+stream-batchnorm": "tab:purple"}
DASHED = {"running+stream-batchnorm"}  # often on top of "running": keep both visible


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported; the message says how to install it."""


def require_matplotlib():
    """Return matplotlib.pyplot on the Agg backend, or raise PlotUnavailable."""
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def smooth(values: np.ndarray, k: int) -> np.ndarray:
    """Trailing mean over the last k values (fewer at the start), one output per value."""
    cum = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))  # (n + 1,)
    stop = np.arange(1, len(values) + 1)
    start = np.maximum(0, stop - max(1, k))
    return (cum[stop] - cum[start]) / (stop - start)


def plot_ablation(runs: Sequence, path: str | os.PathLike, *, title: str | None = None,
                  k: int = 25) -> None:
    """One panel per stream: the training loss of each treatment against the readings learned.

    The loss is a moving average over k optimiser steps, on a log scale (the treated runs end
    orders of magnitude below the untreated one). Dotted lines mark the passes over the series.
    """
    plt = require_matplotlib()
    streams = list(dict.fromkeys(r.stream for r in runs))
    fig, axes = plt.subplots(1, len(streams), figsize=(5 * len(streams), 3.6), dpi=100, squeeze=False)
    try:
        for ax, stream in zip(axes[0], streams):
            these = [r for r in runs if r.stream == stream]
            low, high = np.inf, 0.0
            for r in these:
                if len(r.loss) == 0:
                    continue
                y = np.maximum(smooth(r.loss, k), 1e-6)
                ax.plot(r.loss_at, y, lw=1.2, color=COLOURS.get(r.treatment), label=r.treatment,
                        ls="--" if r.treatment in DASHED else "-")
                low, high = min(low, float(y.min())), max(high, float(y.max()))
            if high > 0:
                ax.set_ylim(low / 2, high * 2)
            total = max(len(r.correct) for r in these)
            last = these[0].last
            if stream == "heart-rate" and last:
                for b in range(last, total, last):
                    ax.axvline(b, color="grey", lw=0.6, ls=":")
            ax.set_yscale("log")
            ax.set_xlim(0, total)
            ax.set_title(f"{stream}: training loss", fontsize=10)
            ax.set_xlabel("readings learned")
            ax.set_ylabel(f"loss (mean of {k} steps)")
            ax.grid(alpha=0.3, which="both", lw=0.4)
            ax.legend(fontsize=8, title="input treatment", title_fontsize=8)
        _save(fig, path, title)
    finally:
        plt.close(fig)


def plot_replay(trace: dict, path: str | os.PathLike, *, threshold: float | None, flag_at: float = 0.5,
                window: int = 200, title: str | None = None) -> None:
    """The replayed series with the threshold and the flagged readings; loss and accuracy below.

    Parameters
    ----------
    trace
        ``Monitor.trace.arrays()``: p, label, x, loss, loss_at per reading / step.
    threshold
        Drawn as a horizontal line on a one-feature series (None: not drawn).
    flag_at
        A reading is flagged when p > flag_at.
    window
        Readings in the sliding window of the second accuracy curve.

    With two features (circles) the top panel is the plane, flagged points marked.
    """
    plt = require_matplotlib()
    p, y, x = trace["p"], trace["label"], trace["x"]
    n = len(p)
    i = np.arange(1, n + 1)
    flag = p > flag_at
    correct = flag == (y == 1)
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), dpi=100, height_ratios=[2.2, 1, 1])
    try:
        top, mid, bot = axes
        if x.ndim == 2 and x.shape[1] == 2:
            top.scatter(x[~flag, 0], x[~flag, 1], s=3, color="tab:blue", label="not flagged")
            top.scatter(x[flag, 0], x[flag, 1], s=3, color="tab:red", label="flagged")
            top.set_aspect("equal", adjustable="datalim")
            top.set_title("readings (two features)", fontsize=10)
        else:
            v = x[:, 0] if x.ndim == 2 else x
            top.plot(i, v, lw=0.6, color="0.35", label="reading")
            top.scatter(i[flag], v[flag], s=6, color="tab:red", zorder=3, label=f"flagged (p > {flag_at:g})")
            if threshold is not None:
                top.axhline(threshold, color="tab:orange", lw=1, ls="--", label=f"threshold {threshold:g}")
            top.set_xlim(0, n)
            top.set_ylabel("reading")
            top.set_title("replayed series", fontsize=10)
        top.legend(fontsize=8, loc="upper right", markerscale=2)
        if len(trace["loss"]):
            mid.plot(trace["loss_at"], np.maximum(trace["loss"], 1e-6), lw=0.5, color="tab:purple")
            mid.set_yscale("log")
        mid.set_ylabel("training loss")
        mid.set_xlim(0, n)
        mid.grid(alpha=0.3, lw=0.4)
        if n:
            bot.plot(i, np.cumsum(correct) / i, lw=1, color="tab:blue", label="since the start")
            if n >= window:
                w = np.convolve(correct, np.ones(window) / window, mode="valid")
                bot.plot(i[window - 1:], w, lw=1, color="tab:green", label=f"last {window} readings")
        bot.set_ylim(min(0.5, float(np.min(np.cumsum(correct) / i))) if n else 0, 1.01)
        bot.set_xlim(0, n)
        bot.set_ylabel("accuracy")
        bot.set_xlabel("reading")
        bot.grid(alpha=0.3, lw=0.4)
        bot.legend(fontsize=8, loc="lower right")
        _save(fig, path, title)
    finally:
        plt.close(fig)


def _save(fig, path: str | os.PathLike, title: str | None) -> None:
    """Title, tight layout and PNG: the same last steps for every picture."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
