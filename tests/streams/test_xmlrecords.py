"""The one guarded XML record reader behind Apple Health and TCX: records handed over whole, finished
elements dropped, and an over-long record a one-line error (exit 2) rather than held in memory."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from monitor.cli import main
from streams import SourceError
from streams.apple_health import AppleHealthXml
from streams.tcx import TcxTrackpoints
from streams.xmlrecords import RecordTooLong, iter_records

NS = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"


def tcx(points: list[str]) -> str:
    return (f'<?xml version="1.0"?><TrainingCenterDatabase xmlns="{NS}"><Activities><Activity><Lap><Track>'
            + "".join(points) + "</Track></Lap></Activity></Activities></TrainingCenterDatabase>")


def tp(s: int, bpm, extra: str = "") -> str:
    return (f"<Trackpoint><Time>2024-04-01T08:00:{s:02d}Z</Time><HeartRateBpm><Value>{bpm}</Value></HeartRateBpm>"
            f"{extra}</Trackpoint>")


def apple(records: list[str]) -> str:
    return '<?xml version="1.0"?><HealthData>' + "".join(records) + "</HealthData>"


def hr(s: int, bpm, meta: str = "") -> str:
    return (f'<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" '
            f'startDate="2024-04-01 08:00:{s:02d} +0000" value="{bpm}">{meta}</Record>')


def test_records_keep_their_children_and_finished_elements_are_dropped():
    doc = b"<Root><Lap><Sum>1</Sum><R><v>5</v><w/></R><R><v>6</v></R></Lap></Root>"
    seen = []
    root = None
    for kind, elem in iter_records(io.BytesIO(doc), "R"):
        if kind == "root":
            root = elem
            continue
        seen.append([c.tag for c in elem])
        assert [c.tag for c in root.iter()][-1] == "v"  # earlier records are gone from the tree
    assert seen == [["v", "w"], ["v"]]
    assert [c.tag for c in root.iter()] == ["Root"]  # nothing finished stays in memory


def test_a_namespaced_record_tag_matches_by_local_name():
    doc = tcx([tp(0, 70), tp(1, 71)]).encode()
    kinds = [(k, e.tag.rsplit("}", 1)[-1]) for k, e in iter_records(io.BytesIO(doc), "Trackpoint")]
    assert kinds == [("root", "TrainingCenterDatabase"), ("record", "Trackpoint"), ("record", "Trackpoint")]


def test_the_limit_bounds_what_the_parser_is_fed():
    """A text of 50,000 bytes inside one element, limit 1,000: refused after at most ~2 x 1,000 bytes."""
    class Counting(io.BytesIO):
        fed = 0

        def read(self, n=-1):
            data = super().read(n)
            Counting.fed += len(data)
            return data

    f = Counting(b"<Root><R>" + b"x" * 50_000 + b"</R></Root>")
    with pytest.raises(RecordTooLong):
        list(iter_records(f, "R", max_record=1000))
    assert Counting.fed <= 2 * 1001 + 16


def test_broken_xml_is_a_parse_error_after_the_records_before_it():
    out = []
    with pytest.raises(ET.ParseError):
        for kind, elem in iter_records(io.BytesIO(b"<Root><R n='1'/><R n='2'/><R n="), "R"):
            out.append(elem.get("n"))
    assert out == [None, "1", "2"]


@pytest.mark.parametrize("fmt", ["tcx", "apple-health"])
def test_a_record_over_max_line_bytes_is_a_one_line_error(tmp_path, fmt):
    long_text = "<Note>" + "z" * 30_000 + "</Note>"
    if fmt == "tcx":
        path = tmp_path / "run.tcx"
        path.write_text(tcx([tp(0, 70), tp(1, 71), tp(2, 72, "<Extensions>" + long_text + "</Extensions>")]))
        source = TcxTrackpoints(path, max_record=10_000)
        after = "trackpoint 2"
    else:
        path = tmp_path / "export.xml"
        path.write_text(apple([hr(0, 70), hr(1, 71), hr(2, 72, "<MetadataEntry>" + long_text + "</MetadataEntry>")]))
        source = AppleHealthXml(path, max_record=10_000)
        after = "heart-rate record 2"
    with pytest.raises(SourceError, match=f"more than 10,000 bytes without an element ending, after {after}"):
        list(source)
    res = CliRunner().invoke(main, ["replay", str(path), "--max-line-bytes", "10000"], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]  # besides the note saying what is read
    assert len(errors) == 1 and "more than 10,000 bytes" in errors[0] and "--max-line-bytes" in errors[0], res.output
    assert "Traceback" not in res.output
    # under the default limit (1 MB) the same file reads
    ok = CliRunner().invoke(main, ["replay", str(path)], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output


def test_tcx_takes_the_limit_from_the_cli_through_open_file(tmp_path):
    from streams import open_file
    path = tmp_path / "run.tcx"
    path.write_text(tcx([tp(0, 70)]))
    assert open_file(path, max_line=1234).max_record == 1234
