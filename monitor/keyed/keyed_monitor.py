"""Many patients in one stream: per-key normalisation, per-key alerts and counts, bounded keys.

`KeyedMonitor` is a drop-in for `Monitor` (``process(batch) -> Scored``, ``summary()``). On a stream
without keys it scores exactly as `Monitor` does (it delegates), and only adds alerts. On a keyed
stream every key gets its own running normaliser (`models.keyed_normaliser.KeyedNormaliser`), its own
alert state and its own counts; how keys share the network is ``model``:

``shared`` (default)
    One network for all keys, fed two inputs per reading: the reading itself (normalised with the
    running statistics of the whole stream, as a single-key monitor does) and the reading normalised
    with its own key's running statistics. The first keeps the absolute level the label is defined
    on (a bpm threshold), the second says how unusual the reading is for this patient. A new key is
    scored by a network already trained on every other patient: it cold-starts well.
``shared-z``
    One network fed only the per-key normalised reading (measured in the README, not recommended:
    with a bpm threshold, a patient's own z-score cannot tell 95 bpm from 60 bpm).
``per-key``
    One network (and normaliser) per key, each exactly what replaying that key alone gives.
``global``
    Keys ignored for scoring (one normaliser and network): the single-key monitor, for comparison.

>>> import numpy as np
>>> from streams import Batch
>>> mon = KeyedMonitor(seed=0)
>>> b = Batch(time=np.arange(6.0), x=np.array([[60.0], [100.0], [62.0], [104.0], [61.0], [99.0]]),
...           y=np.full(6, np.nan), line=np.arange(1, 7), key=np.array(list("ababab"), dtype=object))
>>> s = mon.process(b)
>>> s.key.tolist(), s.x.ravel().tolist()[:2]
(['a', 'b', 'a', 'b', 'a', 'b'], [60.0, 100.0])
>>> mon.summary()["keys"]["b"]["readings"]
3
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from models.keyed_normaliser import KeyedNormaliser
from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner  # the learner, its step written out in torch ops (replay speed)
from monitor.config import MonitorConfig, Span
from monitor.keyed.alerts import AlertTracker
from monitor.keyed.key_table import KeyTable, TooManyKeys
from monitor.core.labels import DEFAULT_THRESHOLD, label
from monitor.core.metrics import PrequentialMetrics
from monitor.core.monitor import Monitor, Scored
from streams import Batch

__all__ = ["KeyedMonitor", "KEY_MODELS"]

KEY_MODELS = ("shared", "shared-z", "per-key", "global")


class KeyedMonitor:
    """Monitor for keyed streams; see the module docstring.

    Parameters
    ----------
    config, threshold, seed, learn, late_from, trace
        As for `Monitor` (per-key networks are all built with ``seed``, so a key's network does not
        depend on which other keys exist); a reading is flagged when p > ``flag_at`` (0.5).
    model
        One of KEY_MODELS.
    max_keys
        Most keys kept at once; the least recently seen one is evicted (its state dropped) to make
        room. None: no bound.
    alert_after, alert_clear
        Spans that open and close an alert episode (see `monitor.keyed.alerts`).
    """

    def __init__(self, config: LearnerConfig | None = None, *, threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 0, learn: bool = True, late_from: int | None = None,
                 trace: bool = False, model: str = "shared", max_keys: int | None = None,
                 alert_after: Span = Span(seconds=60.0), alert_clear: Span = Span(seconds=120.0)) -> None:
        if model not in KEY_MODELS:
            raise ValueError(f"model must be one of {', '.join(KEY_MODELS)}, got {model!r}")
        if max_keys is not None and max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.config = config
        self.threshold = threshold
        self.seed = seed
        self.learn = learn
        self.model = model
        self.max_keys = max_keys
        self.inner = Monitor(config, threshold=threshold, seed=seed, learn=learn, late_from=late_from, trace=trace)
        self.flag_at = self.inner.flag_at
        self.table = KeyTable(max_keys=max_keys)
        self.normaliser = KeyedNormaliser()
        self.alerts = AlertTracker(after=alert_after, clear=alert_clear)
        self.learners: dict[int, OnlineLearner] = {}  # model="per-key": key id -> its learner
        self.metrics = PrequentialMetrics()  # model="per-key": the whole stream's metrics
        self.keyed_: bool | None = None  # known from the first batch
        self._counts = np.zeros((0, 3), dtype=np.int64)  # key id -> readings, flags, correct
        self.n_scored = 0

    @classmethod
    def from_config(cls, config: MonitorConfig, *, late_from: int | None = None,
                    trace: bool = False) -> "KeyedMonitor":
        """The monitor that a monitor.config.MonitorConfig describes."""
        return cls(config.learner, threshold=config.threshold, seed=config.seed, learn=config.learn,
                   late_from=late_from, trace=trace, model=config.key_model, max_keys=config.max_keys,
                   alert_after=config.alert_after, alert_clear=config.alert_clear)

    def __repr__(self) -> str:
        return (f"KeyedMonitor(model={self.model!r}, keys={len(self.table)}, max_keys={self.max_keys}, "
                f"evicted={self.table.n_evicted_}, readings={self.n_scored}, {self.alerts!r})")

    def train_behind(self, lag=None, *, threaded: bool = True) -> None:
        """The shared network learns behind the scores: see Monitor.train_behind."""
        self.inner.train_behind(lag, threaded=threaded)

    @property
    def trains_behind(self) -> bool:
        return self.inner.trains_behind and self.model != "per-key"

    # ------------------------------------------------------------------ processing

    def process(self, batch: Batch, emit: Callable[[Scored], None] | None = None) -> Scored:
        """Score, learn, count and track alerts for a batch; the Scored carries alert records.

        With `emit` (live feeds), records are handed over as soon as they are scored: an unkeyed
        stream's slice by slice before learning, a keyed batch whole; alert records follow in an
        empty Scored once the batch's flags are known.
        """
        if self.keyed_ is None and len(batch):
            self.keyed_ = batch.key is not None
        if batch.key is None:
            scored = self.inner.process(batch, emit=emit)
            ids = np.zeros(len(batch), dtype=np.intp)
            names: list = [None]
            evicted_events: list[dict] = []
        else:
            try:
                ids, evicted = self.table.lookup(batch.key)
            except TooManyKeys:  # more distinct keys than max_keys in one batch: halve it
                half = len(batch) // 2
                return _concat([self.process(batch.slice(0, half), emit),
                                self.process(batch.slice(half, len(batch)), emit)])
            evicted_events = self._forget(evicted)
            scored = self._score_keyed(batch, ids)
            names = self.table._keys
        self.n_scored += len(scored)
        events = evicted_events + self.alerts.update(ids, names, scored.time, scored.x[:, 0], scored.flag)
        self._count(ids, scored)
        result = replace(scored, alerts=tuple(events))
        if emit is not None:
            if batch.key is not None:
                emit(result)
            elif events:
                emit(replace(result.take(0, 0), alerts=tuple(events)))
        return result

    def _score_keyed(self, batch: Batch, ids: np.ndarray) -> Scored:
        x = batch.x
        y = label(x, batch.y, threshold=self.threshold)
        if self.model == "per-key":
            p = self._per_key(ids, x, y)
            flag = p > self.flag_at
            self.metrics.update(y, p, flag)
            return Scored(time=batch.time, x=x, label=y, p=p, flag=flag, line=batch.line, key=batch.key)
        if self.model == "global":
            features = x
        else:
            z = self.normaliser.transform_update(ids, x)  # (n, d) each reading vs its own key's past
            features = np.hstack([x, z]) if self.model == "shared" else z
        s = self.inner.process(Batch(time=batch.time, x=features, y=y, line=batch.line, key=batch.key))
        return replace(s, x=x)

    def _per_key(self, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One learner per key: group the batch by key, each group through `Monitor.test_then_train`."""
        p = np.empty(len(x))
        order = np.argsort(ids, kind="stable")
        sid = ids[order]
        cuts = np.flatnonzero(sid[1:] != sid[:-1]) + 1
        config = (self.config or LearnerConfig()).with_(n_features=x.shape[1])
        for idx in np.split(order, cuts):
            k = int(ids[idx[0]])
            learner = self.learners.get(k)
            if learner is None:
                learner = self.learners[k] = ManualStepLearner(config, seed=self.seed)
            p[idx] = self.inner.test_then_train(learner, x[idx], y[idx])  # the monitor's own loop
        return p

    def _forget(self, evicted: list[tuple[str, int]]) -> list[dict]:
        """Drop the state of evicted keys; close records for episodes they had open."""
        events = []
        if evicted:
            slots = np.array([k for _, k in evicted], dtype=np.intp)
            self.normaliser.reset(slots)
            inside = slots[slots < len(self._counts)]
            self._counts[inside] = 0
            for key, k in evicted:
                self.learners.pop(k, None)
                rec = self.alerts.forget(k, key)
                if rec is not None:
                    events.append(rec)
        return events

    def _count(self, ids: np.ndarray, s: Scored) -> None:
        if not len(ids):
            return
        top = int(ids.max()) + 1
        if top > len(self._counts):
            grown = np.zeros((max(top, 2 * len(self._counts)), 3), dtype=np.int64)
            grown[:len(self._counts)] = self._counts
            self._counts = grown
        if len(ids) == 1:  # a live line: three additions, not three bincounts over every key
            self._counts[ids[0]] += (1, int(s.flag[0]), int(s.flag[0] == (s.label[0] > 0.5)))
            return
        k = len(self._counts)
        self._counts[:, 0] += np.bincount(ids, minlength=k)
        self._counts[:, 1] += np.bincount(ids, weights=s.flag, minlength=k).astype(np.int64)
        self._counts[:, 2] += np.bincount(ids, weights=(s.flag == (s.label > 0.5)), minlength=k).astype(np.int64)

    # ------------------------------------------------------------------ reporting

    def key_summary(self) -> dict:
        """{key: {readings, flags, episodes, accuracy}} for the keys currently held."""
        out = {}
        episodes = self.alerts.episodes_
        for key, k in sorted(self.table.keys().items()):
            n, flags, correct = (self._counts[k].tolist() if k < len(self._counts) else (0, 0, 0))
            out[key] = {"readings": n, "flags": flags,
                        "episodes": int(episodes[k]) if k < len(episodes) else 0,
                        "accuracy": round(correct / n, 6) if n else None}
        return out

    def summary(self) -> dict:
        """The Monitor summary, plus keys, evictions, episodes and the per-key table."""
        out = self.inner.summary()  # per-key too: nan_scores and final_loss of the loop every key runs through
        if self.model == "per-key" and self.keyed_:
            learners = self.learners.values()
            out.update(self.metrics.result())  # the whole stream's metrics are kept here, not in inner
            out.pop("accuracy_second_half", None)  # (not kept per key)
            out.update({"steps": sum(ln.n_steps_ for ln in learners),
                        "skipped_steps": sum(ln.n_skipped_ for ln in learners),
                        "normaliser_skipped": sum(getattr(ln.normaliser, "n_refused_", 0) for ln in learners),
                        "network": "one per key: " + out["network"]})
        out["episodes"] = self.alerts.n_episodes_
        out["alert_after"], out["alert_clear"] = str(self.alerts.after), str(self.alerts.clear)
        if self.keyed_:
            out.update({"key_model": self.model, "keys_seen": len(self.table) + self.table.n_evicted_,
                        "keys_held": len(self.table), "max_keys": self.max_keys,
                        "evicted_keys": self.table.n_evicted_, "keys": self.key_summary()})
        return out

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """The per-key state (key table, per-key normaliser, alert state, counts), JSON-able.

        The shared learner and metrics belong to ``inner`` (a Monitor) and per-key learners to
        ``learners``; they are included when those objects provide ``state_dict``.
        """
        out = {"model": self.model, "keyed": self.keyed_, "n_scored": self.n_scored,
               "table": self.table.state_dict(), "normaliser": self.normaliser.state_dict(),
               "alerts": self.alerts.state_dict(), "counts": self._counts.tolist(),
               "metrics": self.metrics.state_dict()}
        if hasattr(self.inner, "state_dict"):
            out["inner"] = self.inner.state_dict()
        if self.learners:
            out["n_features"] = next(iter(self.learners.values())).config.n_features
        if self.learners and all(hasattr(ln, "state_dict") for ln in self.learners.values()):
            out["learners"] = {str(k): ln.state_dict() for k, ln in self.learners.items()}
        return out

    def load_state_dict(self, state: dict, *, model_only: bool = False) -> None:
        """Continue from a `state_dict`; ``model_only`` (a frozen monitor on a new stream) takes the
        learned model (network, normalisers, key table) and leaves alerts, counts and metrics new."""
        if state["model"] != self.model:
            raise ValueError(f"state is for model {state['model']!r}, this monitor uses {self.model!r}")
        if model_only:
            self.keyed_ = state["keyed"]
            self.table.load_state_dict(state["table"])
            self.normaliser.load_state_dict(state["normaliser"])
            if "inner" in state:
                self.inner.load_state_dict(state["inner"], model_only=True)
            self._load_learners(state)
            return
        self.keyed_ = state["keyed"]
        self.n_scored = int(state["n_scored"])
        self.table.load_state_dict(state["table"])
        self.normaliser.load_state_dict(state["normaliser"])
        self.alerts.load_state_dict(state["alerts"])
        self._counts = np.asarray(state["counts"], dtype=np.int64).reshape(-1, 3)
        self.metrics.load_state_dict(state["metrics"])
        if "inner" in state and hasattr(self.inner, "load_state_dict"):
            self.inner.load_state_dict(state["inner"])
        self._load_learners(state)

    def _load_learners(self, state: dict) -> None:
        config = (self.config or LearnerConfig()).with_(n_features=state.get("n_features", 1))
        for k, ls in state.get("learners", {}).items():
            learner = ManualStepLearner(config, seed=self.seed)
            learner.load_state_dict(ls)
            self.learners[int(k)] = learner


def _concat(parts: list[Scored]) -> Scored:
    cat = np.concatenate
    return Scored(time=cat([p.time for p in parts]), x=cat([p.x for p in parts]),
                  label=cat([p.label for p in parts]), p=cat([p.p for p in parts]),
                  flag=cat([p.flag for p in parts]), line=cat([p.line for p in parts]),
                  key=cat([p.key for p in parts]), alerts=tuple(e for p in parts for e in p.alerts))
