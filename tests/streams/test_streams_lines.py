"""LineParser: header, column choice, rejects with their reasons, times, labels, the invariant."""

from __future__ import annotations

import numpy as np
import pytest

from streams import Batch, LineParser, Reject, SourceError


def parse(lines, **kw) -> Batch:
    return LineParser(**kw).parse(lines)


def accounted(batch: Batch) -> int:
    return len(batch) + len(batch.rejected) + batch.header_lines


# -- header, no header ------------------------------------------------------------------------


def test_header_is_counted_and_names_the_columns():
    p = LineParser()
    b = p.parse(["t,hr", "0.0,80", "0.5,81"])
    assert b.header_lines == 1 and p.names_ == ("t", "hr")
    assert b.x.ravel().tolist() == [80.0, 81.0]
    assert b.time.tolist() == [0.0, 0.5]
    assert b.line.tolist() == [2, 3]
    assert b.x.shape == (2, 1) and b.x.dtype == np.float64 and b.line.dtype == np.int64
    assert np.isnan(b.y).all() and b.key is None


def test_bare_numbers_have_no_header_and_are_timed_by_index():
    p = LineParser()
    b = p.parse(["80", "81.5", "82"])
    assert b.header_lines == 0 and p.names_ == ("0",) and p.header_ is None
    assert b.x.ravel().tolist() == [80.0, 81.5, 82.0]
    assert b.time.tolist() == [0.0, 1.0, 2.0]
    assert b.line.tolist() == [1, 2, 3]


def test_reading_index_continues_across_blocks():
    p = LineParser()
    p.parse(["80", "x", "82"], first_line=1)
    b = p.parse(["83", "84"], first_line=4)
    assert b.time.tolist() == [2.0, 3.0] and b.line.tolist() == [4, 5]


def test_headerless_columns_are_named_by_position():
    notes = []
    b = parse(["0.0,80", "0.5,81"], column="1", time_column="0", on_note=notes.append)
    assert b.x.ravel().tolist() == [80.0, 81.0] and b.time.tolist() == [0.0, 0.5]
    assert notes == ["reading column '1', time column '0' (no header)"]


def test_headerless_two_numeric_columns_need_a_column():
    with pytest.raises(SourceError) as e:
        parse(["0.0,80", "0.5,81"])
    assert str(e.value) == ("cannot tell which column holds the heart rate among: 0, 1; "
                            "pass --column NAME")


def test_iso_time_in_the_first_line_is_not_a_header():
    p = LineParser(column="1", time_column="0")
    b = p.parse(["2024-01-01T00:00:00Z,80"])
    assert p.header_ is None and b.time.tolist() == [1704067200.0]


def test_empty_lines_before_the_header_are_rejected():
    b = parse(["", "  ", "t,hr", "0,80"])
    assert b.header_lines == 1 and len(b) == 1
    assert b.rejected == (Reject(1, "", "empty line"), Reject(2, "  ", "empty line"))


def test_header_alone_then_data_in_the_next_block():
    p = LineParser()
    b = p.parse(["t,hr"])
    assert (len(b), b.header_lines, b.rejected) == (0, 1, ())
    b = p.parse(["0,80"], first_line=2)
    assert b.x.ravel().tolist() == [80.0] and b.header_lines == 0


# -- column choice ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hr", "HR", "heart_rate", "heartrate", "heart rate", "Heart-Rate",
                                  "bpm", "BPM", "value", "pulse", "Pulse"])
def test_reading_column_by_common_name(name):
    notes = []
    # another numeric column, so the choice can only come from the name
    b = parse([f"t,other,{name}", "0,5,80", "1,6,81"], on_note=notes.append)
    assert b.x.ravel().tolist() == [80.0, 81.0]
    assert notes == [f"reading column {name!r}, time column 't'"]


def test_common_names_in_order_of_preference():
    b = parse(["value,hr", "1,80"])
    assert b.x.ravel().tolist() == [80.0]


@pytest.mark.parametrize("name", ["time", "t", "timestamp", "datetime", "date", "seconds", "ts",
                                  "Time", "TS"])
def test_time_column_by_common_name(name):
    b = parse([f"{name},hr", "10,80", "12.5,81"])
    assert b.time.tolist() == [10.0, 12.5]


def test_only_numeric_column_is_the_reading():
    notes = []
    b = parse(["when,reading,note", "2024-01-01T00:00:00,80,ok", "2024-01-01T00:00:01,81,ok"],
              on_note=notes.append)
    assert b.x.ravel().tolist() == [80.0, 81.0]
    assert notes == ["reading column 'reading', no time column (time = reading index)"]


def test_time_column_is_not_the_only_numeric_column():
    b = parse(["t,reading", "0,80", "1,81"])
    assert b.x.ravel().tolist() == [80.0, 81.0] and b.time.tolist() == [0.0, 1.0]


def test_named_columns_are_case_insensitive():
    b = parse(["Seconds,Rate,Sick,Who", "0,80,1,ann", "1,81,0,bob"], column="rate",
              time_column="SECONDS", label_column="sick", key_column="who")
    assert b.x.ravel().tolist() == [80.0, 81.0]
    assert b.y.tolist() == [1.0, 0.0] and b.key.tolist() == ["ann", "bob"]


def test_cannot_tell_which_column():
    with pytest.raises(SourceError) as e:
        parse(["a,b,c", "1,2,3"])
    assert str(e.value) == ("cannot tell which column holds the heart rate among: a, b, c; "
                            "pass --column NAME")


@pytest.mark.parametrize("option,flag", [("column", "--column"), ("time_column", "--time-column"),
                                         ("label_column", "--label-column"),
                                         ("key_column", "--key-column")])
def test_missing_named_column(option, flag):
    with pytest.raises(SourceError) as e:
        parse(["t,hr", "0,80"], **{option: "bpm"})
    assert str(e.value) == f"no column named 'bpm' ({flag}); the columns are: t, hr"


def test_missing_column_is_reported_at_the_header():
    with pytest.raises(SourceError, match="no column named 'pulse'"):
        LineParser(column="pulse").parse(["t,hr"])


def test_note_is_given_once():
    notes = []
    p = LineParser(on_note=notes.append)
    p.parse(["t,hr", "0,80"])
    p.parse(["1,81"], first_line=3)
    assert notes == ["reading column 'hr', time column 't'"]


def test_note_names_label_and_key():
    notes = []
    parse(["ts,bpm,y,id", "2024-01-01T00:00:00,80,0,a"], label_column="y", key_column="id",
          on_note=notes.append)
    assert notes == ["reading column 'bpm', time column 'ts' (ISO 8601), label column 'y', "
                     "key column 'id'"]


# -- rejects ----------------------------------------------------------------------------------

MIXED = [
    "t,hr",          # 1 header
    "0.0,80",        # 2
    "",              # 3
    "   ",           # 4
    "0.5,81,9",      # 5
    "1.0",           # 6
    "1.5,abc",       # 7
    "2.0,nan",       # 8
    "2.5,inf",       # 9
    "3.0,-Infinity",  # 10
    "3.5,",          # 11
    "x,82",          # 12
    "t,hr",          # 13
    " 4.0 , 83 ",    # 14
    ",",             # 15
    "4.5,NaN",       # 16
    "5.0,84",        # 17
]
MIXED_REJECTS = [
    (3, "empty line"),
    (4, "empty line"),
    (5, "wrong field count: expected 2, got 3"),
    (6, "wrong field count: expected 2, got 1"),
    (7, "not a number: 'abc'"),
    (8, "not finite: 'nan'"),
    (9, "not finite: 'inf'"),
    (10, "not finite: '-Infinity'"),
    (11, "empty field 'hr'"),
    (12, "not a time: 'x'"),
    (13, "repeated header"),
    (15, "empty field 'hr'"),
    (16, "not finite: 'NaN'"),
]


def test_every_reject_reason_with_its_line_number():
    b = parse(MIXED)
    assert [(r.line, r.reason) for r in b.rejected] == MIXED_REJECTS
    assert [r.raw for r in b.rejected] == [MIXED[r.line - 1] for r in b.rejected]
    assert b.x.ravel().tolist() == [80.0, 83.0, 84.0]
    assert b.line.tolist() == [2, 14, 17]
    assert b.time.tolist() == [0.0, 4.0, 5.0]


def test_invariant_for_mixed_file_in_any_blocks():
    for size in (1, 2, 3, 5, len(MIXED)):
        p = LineParser()
        rejects = []
        for start in range(0, len(MIXED), size):
            block = MIXED[start:start + size]
            b = p.parse(block, first_line=start + 1)
            assert accounted(b) == len(block)
            rejects += [(r.line, r.reason) for r in b.rejected]
        assert rejects == MIXED_REJECTS


def test_label_rejects():
    b = parse(["t,hr,y", "0,80,1", "1,81,maybe", "2,82,", "3,83,TRUE", "4,84, false "],
              label_column="y")
    assert [(r.line, r.reason) for r in b.rejected] == [
        (3, "not a label (0/1/true/false): 'maybe'"), (4, "empty field 'y'")]
    assert b.y.tolist() == [1.0, 1.0, 0.0]


def test_time_rejects():
    b = parse(["t,hr", "0,80", "abc,81", ",82", "inf,83", "1,84", "2,85", "3,86"])
    assert [(r.line, r.reason) for r in b.rejected] == [
        (3, "not a time: 'abc'"), (4, "empty field 't'"), (5, "not finite: 'inf'")]
    assert b.time.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_common_time_name_whose_values_are_not_times_is_not_the_time():
    notes = []
    b = parse(["date,hr", "monday,80", "tuesday,81"], on_note=notes.append)
    assert b.time.tolist() == [0.0, 1.0]
    assert notes == ["reading column 'hr', no time column (time = reading index)"]


def test_iso_time_rejects():
    b = parse(["time,hr", "2024-01-01T00:00:00Z,80", "yesterday,81", "2024-01-01T00:00:01Z,82"])
    assert [(r.line, r.reason) for r in b.rejected] == [(3, "not a time: 'yesterday'")]
    assert b.time.tolist() == [1704067200.0, 1704067201.0]


def test_blank_line_of_bare_numbers():
    b = parse(["80", "", " ", "81"])
    assert [(r.line, r.reason) for r in b.rejected] == [(2, "empty line"), (3, "empty line")]


def test_repeated_header_in_a_later_block():
    p = LineParser()
    p.parse(["t,hr", "0,80"])
    b = p.parse(["1,81", "t,hr", "t, hr", "2,82"], first_line=3)
    assert [(r.line, r.reason) for r in b.rejected] == [(4, "repeated header"),
                                                        (5, "repeated header")]


def test_repeated_header_that_would_read_as_a_number():
    b = parse(["x,1", "0,80", "x,1", "9,81"], column="1")
    assert [(r.line, r.reason) for r in b.rejected] == [(3, "repeated header")]
    assert b.x.ravel().tolist() == [80.0, 81.0]


def test_raw_text_is_truncated_to_200_characters():
    b = parse(["t,hr", "0," + "x" * 500])
    assert len(b.rejected[0].raw) == 200 and b.rejected[0].raw.startswith("0,xxx")


def test_not_utf8_line_is_rejected_and_the_rest_parses():
    b = LineParser().parse_bytes(b"t,hr\n0,80\n0.5,\xff\xfe\n1,81", first_line=1)
    assert [(r.line, r.reason) for r in b.rejected] == [(3, "not UTF-8")]
    assert b.x.ravel().tolist() == [80.0, 81.0] and accounted(b) == 4


def test_only_bad_lines_before_any_data():
    p = LineParser()
    b = p.parse(["t,hr", "", "1,2,3", ","])
    assert [(r.line, r.reason) for r in b.rejected] == [
        (2, "empty line"), (3, "wrong field count: expected 2, got 3"), (4, "no values")]
    assert p.columns_ is None
    assert p.parse(["0,80"], first_line=5).x.ravel().tolist() == [80.0]


# -- text details -----------------------------------------------------------------------------


def test_windows_line_endings():
    b = parse(["t,hr\r", "0,80\r", "0.5,abc\r", "1,81\r"])
    assert b.x.ravel().tolist() == [80.0, 81.0] and b.header_lines == 1
    assert b.rejected == (Reject(3, "0.5,abc", "not a number: 'abc'"),)


def test_bom_is_stripped_from_the_header():
    p = LineParser()
    b = p.parse(["\ufefft,hr", "0,80"])
    assert p.names_ == ("t", "hr") and b.x.ravel().tolist() == [80.0]


def test_bom_is_stripped_from_a_headerless_first_line():
    b = parse(["\ufeff80", "81"])
    assert b.header_lines == 0 and b.x.ravel().tolist() == [80.0, 81.0]


def test_whitespace_around_fields():
    b = parse(["  t , hr ", " 0 ,  80  ", "1\t,\t81"])
    assert b.x.ravel().tolist() == [80.0, 81.0] and b.time.tolist() == [0.0, 1.0]


def test_iso_times_to_epoch_seconds():
    b = parse(["timestamp,hr", "2024-01-01T00:00:00Z,80", "2024-01-01T00:00:00.5Z,81",
               "2024-01-01 01:00:01+01:00,82", "2024-01-01T00:00:02,83"])
    assert b.time.tolist() == [1704067200.0, 1704067200.5, 1704067201.0, 1704067202.0]


def test_keys_are_stripped():
    b = parse(["id,hr", " a ,80", "b,81", "a,82"], key_column="id")
    assert b.key.tolist() == ["a", "b", "a"] and b.key.dtype == object


def test_big_clean_block_and_the_same_with_a_bad_line_agree():
    rng = np.random.default_rng(0)
    hr = rng.normal(92, 5, 5000)
    lines = ["t,hr"] + [f"{i * 0.5},{float(v)!r}" for i, v in enumerate(hr)]
    clean = parse(lines)  # the vectorised path
    dirty = parse(lines[:100] + ["oops"] + lines[100:])  # the line-splitting path
    assert clean.x.ravel().tolist() == hr.tolist()  # exact float conversion
    assert dirty.x.ravel().tolist() == hr.tolist()
    assert clean.time.tolist() == dirty.time.tolist()
    assert dirty.rejected == (Reject(101, "oops", "wrong field count: expected 2, got 1"),)


def test_empty_list_gives_empty_batch():
    b = LineParser().parse([])
    assert (len(b), b.rejected, b.header_lines) == (0, (), 0)


def test_repr():
    assert repr(LineParser(column="hr")) == "LineParser(column='hr')"


AGREE_CASES = [
    # clean blocks, so that the pandas path is taken when allowed
    ["t,hr", "0, 80 ", " 0.5 ,+81", "1,.5e2", "1.5,82.", "2,1E2", "2.5,inf", "3,-Infinity"],
    ["hr", "80", "81.25", "-inf"],
    ["time,hr,y,id", "2024-01-01T00:00:00Z,80,1, a", "2024-01-01T00:00:01Z,81,FALSE,b ",
     "2024-01-01T00:00:02Z,82,maybe,c", "2024-01-01T00:00:03Z,83,true,a"],
    # blocks the pandas path hands back to the careful one
    ["t,hr", "0,80", "0.5,", "1,nan", "1.5,1_000", "2,81"],
    ["t,hr", "0,80", "t,hr", "1,81"],
    ["t,hr", "0,80", "1,81,5", "", "2", "3,82", "4,abc", "5,83"],
    ["t,hr", "0,80", "1,81", "2"],
    ["t,hr", "0,80", "1", "2,81"],
    ["hr", "80", "", "81", "x", "82,5", "83"],
    ["hr", "80", "81", ""],
    ["time,hr,y,id", "2024-01-01T00:00:00Z,80,1,a", "2024-01-01T00:00:01Z,81,0", "x,82,1,b",
     "2024-01-01T00:00:03Z,x,1,c", "2024-01-01T00:00:04Z,84,1,d"],
]


@pytest.mark.parametrize("lines", AGREE_CASES)
def test_fast_and_careful_paths_agree(monkeypatch, lines):
    import streams.lines

    results = []
    for threshold in (0, 10**9):  # every block through pandas first / never through pandas
        monkeypatch.setattr(streams.lines, "_FAST_MIN_LINES", threshold)
        p = LineParser(label_column="y" if "y" in lines[0] else None,
                       key_column="id" if "id" in lines[0] else None)
        p.parse(lines[:2])
        b = p.parse(lines[2:], first_line=3)  # the first block always goes the careful way
        results.append((b.x.tolist(), b.time.tolist(), np.nan_to_num(b.y, nan=-1).tolist(),
                        b.line.tolist(),
                        None if b.key is None else b.key.tolist(), b.rejected))
    assert results[0] == results[1]
