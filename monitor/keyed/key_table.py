"""Keys (patient ids) to small integer ids, with a bound and least-recently-seen eviction.

Per-key state lives in arrays indexed by these ids. With ``max_keys`` set, a new key arriving when
every id is taken gets the id of the key seen least recently (not in the current batch); the owners
of per-key state reset that id. Work is per batch and per distinct key, never per reading.

>>> import numpy as np
>>> table = KeyTable(max_keys=2)
>>> table.lookup(np.array(["ann", "bob", "ann"], dtype=object))
(array([0, 1, 0]), [])
>>> ids, evicted = table.lookup(np.array(["cid"], dtype=object))   # bob was seen last before ann
>>> ids.tolist(), evicted
([1], [('bob', 1)])
>>> table
KeyTable(keys=2, max_keys=2, evicted=1)
"""

from __future__ import annotations

import numpy as np

__all__ = ["KeyTable", "TooManyKeys"]


class TooManyKeys(ValueError):
    """A batch holds more distinct keys than max_keys: split it and look up the parts."""


class KeyTable:
    """Assign ids 0, 1, ... to keys as they arrive; at most ``max_keys`` of them live at once.

    Parameters
    ----------
    max_keys
        Most keys kept at once (None: no bound). Reaching it, a new key takes the id of the key seen
        least recently, which counts as one eviction.

    Attributes
    ----------
    n_evicted_ : int
        Keys evicted so far.
    n_readings_ : int
        Readings looked up so far (the clock of "recently seen").
    """

    def __init__(self, *, max_keys: int | None = None) -> None:
        self.max_keys = max_keys
        self._ids: dict[str, int] = {}
        self._keys: list[str | None] = []  # id -> key, None when free
        self._last = np.zeros(0, dtype=np.int64)  # id -> reading clock when last seen
        self.n_evicted_ = 0
        self.n_readings_ = 0

    def __repr__(self) -> str:
        return f"KeyTable(keys={len(self._ids)}, max_keys={self.max_keys}, evicted={self.n_evicted_})"

    def __len__(self) -> int:
        return len(self._ids)

    def keys(self) -> dict[str, int]:
        """A copy of the live key -> id mapping."""
        return dict(self._ids)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """Ids (n,) of the keys of a batch, and the (key, id) pairs evicted to make room.

        Raises
        ------
        TooManyKeys
            If the batch alone holds more than max_keys distinct keys (nothing is changed).
        """
        import pandas as pd

        n = len(keys)
        if n == 0:
            return np.zeros(0, dtype=np.intp), []
        codes, uniques = pd.factorize(np.asarray(keys, dtype=object))  # (n,), (u,) first-seen order
        uniques = [str(u) for u in uniques]
        if self.max_keys is not None and len(uniques) > self.max_keys:
            raise TooManyKeys(f"a batch holds {len(uniques)} distinct keys, more than max_keys={self.max_keys}")
        found = np.array([self._ids.get(u, -1) for u in uniques], dtype=np.int64)  # (u,)
        evicted: list[tuple[str, int]] = []
        missing = np.flatnonzero(found < 0)
        if len(missing):
            free = [i for i, k in enumerate(self._keys) if k is None]
            grow = len(missing) - len(free)
            if self.max_keys is not None:
                grow = min(grow, self.max_keys - len(self._keys))
            grow = max(grow, 0)
            free += range(len(self._keys), len(self._keys) + grow)
            self._keys += [None] * grow
            self._last = np.concatenate([self._last, np.zeros(grow, dtype=np.int64)])
            short = len(missing) - len(free)
            if short > 0:  # evict the least recently seen keys not in this batch
                live = np.array([i for i, k in enumerate(self._keys) if k is not None], dtype=np.int64)
                live = live[~np.isin(live, found[found >= 0])]
                victims = live[np.argsort(self._last[live], kind="stable")[:short]].tolist()
                for v in victims:
                    evicted.append((self._keys[v], v))
                    del self._ids[self._keys[v]]
                    self._keys[v] = None
                self.n_evicted_ += len(victims)
                free += victims
            for j, slot in zip(missing.tolist(), free):
                found[j] = slot
                self._ids[uniques[j]] = slot
                self._keys[slot] = uniques[j]
        last = np.zeros(len(uniques), dtype=np.int64)
        np.maximum.at(last, codes, np.arange(n, dtype=np.int64))
        self._last[found] = self.n_readings_ + last + 1
        self.n_readings_ += n
        return found[codes].astype(np.intp), evicted

    def state_dict(self) -> dict:
        """JSON-able state: the id of each slot's key (None when free), last seen, counters."""
        return {"keys": list(self._keys), "last_seen": self._last.tolist(),
                "n_evicted": self.n_evicted_, "n_readings": self.n_readings_}

    def load_state_dict(self, state: dict) -> None:
        keys = list(state["keys"])
        last = np.asarray(state["last_seen"], dtype=np.int64)
        if len(keys) != len(last):
            raise ValueError("load_state_dict(): keys and last_seen must have the same length")
        self._keys = keys
        self._ids = {k: i for i, k in enumerate(keys) if k is not None}
        self._last = last
        self.n_evicted_ = int(state["n_evicted"])
        self.n_readings_ = int(state["n_readings"])
