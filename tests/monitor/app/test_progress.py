"""monitor.app.progress: the pieces a progress bar cuts a source into do not change the records."""

from __future__ import annotations

import io

import numpy as np

from monitor.core.monitor import Monitor
from monitor.app.progress import with_progress
from streams import CsvReplay


def test_progress_pieces_do_not_change_the_records(hr_csv):
    plain = Monitor(seed=0)
    want = [plain.process(b) for b in CsvReplay(hr_csv)]
    shown = Monitor(seed=0)
    bar = io.StringIO()
    pieces, got = [], []
    for piece in with_progress(CsvReplay(hr_csv), shown, total=1001, stream=bar, step=128):
        pieces.append(piece)
        got.append(shown.process(piece))
    assert len(pieces) == 8 and sum(len(p) for p in pieces) == 1000 and pieces[0].header_lines == 1
    assert np.array_equal(np.concatenate([s.p for s in got]), np.concatenate([s.p for s in want]))
    assert "0/1001" in bar.getvalue()
