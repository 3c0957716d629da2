"""FHIR R4 Observations: a mixed Bundle of 20 patients gives the alerts of the same keyed CSV."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import select

import numpy as np
import pytest
from click.testing import CliRunner
from forked import ForkedCli
from test_formats import START

from monitor.cli import main
from monitor.app.describe_input import describe
from streams import SourceError, detect, open_file
from streams.fhir import FhirObservations


def ward(n_patients=20, n=60, seed=3):
    """(epoch seconds, patient reference, bpm) rows in time order: a reading every 30 s per patient;
    every 4th patient runs fast (about 100 bpm) for a stretch, so alerts open and close."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for p in range(n_patients):
            fast = p % 4 == 0 and 20 <= i < 40
            bpm = int(round(rng.normal(101 if fast else 74 + p % 5, 3)))
            rows.append((START.timestamp() + 30 * i + p, f"Patient/p{p:02d}", bpm))
    return rows


def stamp(s: float) -> str:
    return dt.datetime.fromtimestamp(s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def observation(code, value, when, subject, unit="/min", time_key="effectiveDateTime"):
    r = {"resourceType": "Observation", "status": "final",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "vital-signs"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
         "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}
    if subject is not None:
        r["subject"] = {"reference": subject}
    if time_key == "effectivePeriod":
        r["effectivePeriod"] = {"start": when}
    elif when is not None:
        r[time_key] = when
    return r


def resources(rows, bad=True):
    """The rows as heart-rate Observations (the three time fields in turn), with SpO2 and body
    temperature Observations and Patient resources mixed in, and bad heart-rate Observations."""
    out = [{"resourceType": "Patient", "id": f"p{p:02d}"} for p in range(20)]
    for k, (s, who, bpm) in enumerate(rows):
        out.append(observation("8867-4", bpm, stamp(s), who,
                               time_key=("effectiveDateTime", "effectiveInstant", "effectivePeriod")[k % 3]))
        if k % 5 == 0:
            out.append(observation("59408-5", 97, stamp(s), who, unit="%"))
        if k % 50 == 0:
            out.append(observation("8310-5", 36.8, stamp(s), who, unit="Cel"))
    if bad:
        s = stamp(rows[0][0])
        out.insert(100, observation("8867-4", None, s, "Patient/p01"))
        out.insert(200, observation("8867-4", 80, s, "Patient/p01", unit="/s"))
        out.insert(300, observation("8867-4", 80, s, None))
        out.insert(400, observation("8867-4", 80, None, "Patient/p02"))
        out.insert(500, observation("8867-4", 0, s, "Patient/p03"))
    return out


BAD_REASONS = ["missing valueQuantity.value", "unit '/s', expected /min", "missing subject.reference",
               "missing effectiveDateTime (or effectiveInstant, effectivePeriod.start)", "out of range 20..300: '0'"]


def bundle_text(res) -> str:
    """A pretty-printed searchset Bundle (entry after link, as servers write it)."""
    return json.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(res),
                       "link": [{"relation": "self", "url": "Observation?code=8867-4"}],
                       "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(res)]}, indent=1)


def ndjson_text(res) -> str:
    return "".join(json.dumps(r) + "\n" for r in res)


def keyed_csv(rows) -> str:
    return "timestamp,Heart Rate,patient\n" + "".join(f"{s!r},{b},{who}\n" for s, who, b in rows)


def readings(path) -> list:
    """Everything a file's source hands the monitor: each batch's readings, times, keys, lines and rejects."""
    return [(b.x.tolist(), b.time.tolist(), b.key.tolist(), b.line.tolist(), [(r.line, r.reason) for r in b.rejected])
            for b in open_file(path)]


def replay(*args, input=None):
    res = CliRunner().invoke(main, ["replay", *args, "--format", "jsonl"], input=input)
    return res.stdout_bytes, res.stderr, res.exit_code


def test_a_mixed_bundle_of_20_patients_alerts_like_the_keyed_csv(tmp_path):
    rows = ward()
    res = resources(rows)
    files = {"b.json": bundle_text(res).encode(), "o.ndjson": ndjson_text(res).encode()}
    files["b.json.gz"] = gzip.compress(files["b.json"])
    files["o.ndjson.gz"] = gzip.compress(files["o.ndjson"])
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "ward.csv").write_text(keyed_csv(rows))
    want, _, code = replay(str(tmp_path / "ward.csv"), "--alerts", str(tmp_path / "want.alerts"))
    assert code == 0
    want_alerts = (tmp_path / "want.alerts").read_text()
    opened = [json.loads(a) for a in want_alerts.splitlines()]
    patients = {a["key"] for a in opened}
    assert {"Patient/p00", "Patient/p04", "Patient/p08"} <= patients and len(patients) < 20
    for name in files:
        assert str(detect(tmp_path / name)) == "fhir" + (" (gzip)" if name.endswith(".gz") else "")
        if name.endswith(".gz"):  # the same batches as the plain file's, which are replayed below
            assert readings(tmp_path / name) == readings(tmp_path / name[:-3]), name
            continue
        got, err, code = replay(str(tmp_path / name), "--alerts", str(tmp_path / "got.alerts"))
        assert code == 0, err
        assert got == want, name
        assert (tmp_path / "got.alerts").read_text() == want_alerts, name
        assert [ln.split(" rejected: ", 1)[1] for ln in err.splitlines() if " rejected: " in ln] == BAD_REASONS
    d = describe(tmp_path / "b.json")
    # info applies the replay's range check (issue 12): the reading of 0 is a reject there too
    assert (d["format"], d["readings"], d["rejected"], d["keys"]) == ("fhir", 1200, 5, 20)
    assert d["found"] == "heart rate (8867-4) 1205, skipped 284 (59408-5 240, 8310-5 24, Patient 20); 20 subjects"


def test_ndjson_on_standard_input_equals_the_file(tmp_path):
    res = resources(ward(n_patients=5, n=40), bad=False)
    (tmp_path / "o.ndjson").write_text(ndjson_text(res))
    want, _, code = replay(str(tmp_path / "o.ndjson"))
    assert code == 0 and want.count(b"\n") == 200
    got, err, code = replay("-", "--format-in", "fhir", input=ndjson_text(res).encode())
    assert code == 0, err
    assert got == want
    _, err, code = replay("-", "--format-in", "fhir", input=b'{"resourceType": "Observation"\n')
    assert code == 0 and "resource 1 rejected: not valid JSON" in err


def test_ndjson_live_each_resource_scored_as_it_arrives(tmp_path):
    """A real process (forked): a record comes back for each line before standard input is closed."""
    res = resources(ward(n_patients=2, n=3), bad=False)
    hr = [r for r in res if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "8867-4"]
    proc = ForkedCli(["replay", "-", "--format-in", "fhir", "--format", "jsonl", "-q"])
    try:
        for r in hr[:3]:
            proc.stdin.write((json.dumps(r) + "\n").encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no record within 60 s of writing a line"
            record = json.loads(proc.stdout.readline())
            assert record["key"] == r["subject"]["reference"] and record["value"] == r["valueQuantity"]["value"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_broken_and_cut_off_bundles(tmp_path):
    res = resources(ward(n_patients=3, n=20), bad=False)
    text = bundle_text(res)
    p = tmp_path / "cut.json"
    p.write_text(text[: len(text) // 2])
    batches = list(FhirObservations(p, block=16))
    n = sum(len(b) for b in batches)
    (cut,) = [r for b in batches for r in b.rejected]
    assert 10 < n < 50 and cut.reason == "incomplete entry (file cut off?)"
    p.write_text(text.replace('"valueQuantity"', '"valueQuantity" 1', 1))
    with pytest.raises(SourceError, match="not valid JSON at entry"):
        list(open_file(p))
    p.write_text(json.dumps({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}))
    with pytest.raises(SourceError, match=r"holds no heart-rate Observations .*found: .*Patient 1"):
        list(open_file(p))
    _, err, code = replay(str(p))
    assert code == 2 and err.splitlines()[-1].startswith("Error: ") and "Traceback" not in err
