"""monitor.keyed.key_table: keys to ids, least-recently-seen eviction, state round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.keyed.key_table import KeyTable, TooManyKeys


def test_key_table_evicts_least_recently_seen_and_counts():
    table = KeyTable(max_keys=3)
    ids, ev = table.lookup(np.array(["a", "b", "c", "a"], dtype=object))
    assert ids.tolist() == [0, 1, 2, 0] and ev == []
    ids, ev = table.lookup(np.array(["d", "c"], dtype=object))  # b is the least recently seen
    assert ev == [("b", 1)] and ids.tolist() == [1, 2]
    ids, ev = table.lookup(np.array(["b"], dtype=object))  # now a (seen at reading 4) goes
    assert ev == [("a", 0)] and ids.tolist() == [0]
    assert table.n_evicted_ == 2 and set(table.keys()) == {"b", "c", "d"}
    with pytest.raises(TooManyKeys):
        table.lookup(np.array(list("wxyz"), dtype=object))
    copy = KeyTable(max_keys=3)
    copy.load_state_dict(json.loads(json.dumps(table.state_dict())))
    assert copy.lookup(np.array(["e"], dtype=object)) == table.lookup(np.array(["e"], dtype=object))
