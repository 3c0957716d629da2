"""FHIR and the longest record (--max-line-bytes): an over-long NDJSON line is a counted reject and reading
goes on, whatever the chunking; an over-long Bundle entry is one Error line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_fhir import observation, stamp
from test_formats import START

from monitor.cli import main
from streams import SourceError
from streams.fhir import FhirObservations


def ndjson_lines(n=6, long_at=(2,), pad=30_000) -> list[bytes]:
    lines = []
    for i in range(n):
        r = observation("8867-4", 70 + i, stamp(START.timestamp() + 60 * i), "Patient/a")
        if i in long_at:
            r["note"] = [{"text": "z" * pad}]
        lines.append(json.dumps(r).encode())
    return lines


class Chunks:
    """NDJSON bytes handed over in pieces of `size` (as a pipe or a file reader would)."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def __iter__(self):
        for i in range(0, len(self.data), self.size):
            yield self.data[i:i + self.size]


@pytest.mark.parametrize("size", [1 << 20, 4096, 997])
def test_an_over_long_ndjson_line_is_a_counted_reject(size):
    lines = ndjson_lines(long_at=(2, 5))
    source = FhirObservations(stream=None, max_record=10_000)
    source._hr, source._skipped, source._subjects, source._noted = 0, __import__("collections").Counter(), set(), True
    batches = list(source._ndjson(Chunks(b"\n".join(lines), size), live=False))
    assert np.concatenate([b.x[:, 0] for b in batches]).tolist() == [70.0, 71.0, 73.0, 74.0]
    rejects = [(r.line, r.reason) for b in batches for r in b.rejected]
    assert [line for line, _ in rejects] == [3, 6]
    assert rejects[0][1] == f"longer than 10,000 bytes ({len(lines[2]):,} bytes)"
    assert rejects[1][1].startswith("longer than 10,000 bytes") and rejects[1][1].endswith("not ended (file cut off?)")
    assert all(len(r.raw) <= 200 for b in batches for r in b.rejected)


def test_replay_counts_the_long_line_and_an_over_long_bundle_entry_is_one_error(tmp_path):
    nd = tmp_path / "obs.ndjson"
    nd.write_bytes(b"\n".join(ndjson_lines()) + b"\n")
    res = CliRunner().invoke(main, ["replay", str(nd), "--max-line-bytes", "10000", "--format", "jsonl"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") == 5 and "rejected 1" in res.stderr

    entries = [{"resource": json.loads(line)} for line in ndjson_lines()]
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}, indent=1))
    with pytest.raises(SourceError, match="entry 3 of the Bundle is longer than 10,000 characters and is not read"):
        list(FhirObservations(bundle, max_record=10_000))
    res = CliRunner().invoke(main, ["replay", str(bundle), "--max-line-bytes", "10000"], catch_exceptions=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "--max-line-bytes" in errors[0]
    ok = CliRunner().invoke(main, ["replay", str(bundle), "--format", "jsonl"], catch_exceptions=False)  # 1 MB default
    assert ok.exit_code == 0 and ok.stdout.count("\n") == 6


def test_a_bundle_entry_larger_than_a_read_is_refused_before_it_is_held_whole(tmp_path):
    """An entry of 3 MB, read 1 MB at a time, under the default 1 MB limit: refused as it grows."""
    entries = [{"resource": json.loads(line)} for line in ndjson_lines(n=4, long_at=(1,), pad=3_000_000)]
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}, indent=1))
    with pytest.raises(SourceError, match="entry 2 of the Bundle is longer than 1,048,576 characters"):
        list(FhirObservations(bundle))
