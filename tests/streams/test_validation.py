"""One validation path for every input (issue 12, item 3): the range check in every format and in publish."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from monitor.cli import main

BAD = [0, -5, 5000, 1e308]


def fitbit(path, values):
    recs = [{"dateTime": f"04/01/24 00:00:{i:02d}", "value": {"bpm": v, "confidence": 2}} for i, v in enumerate(values)]
    path.write_text(json.dumps(recs))
    return path


def apple(path, values):
    rec = ('<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" '
           'startDate="2024-04-01 08:00:{:02d} +0000" value="{}"/>')
    path.write_text('<?xml version="1.0"?><HealthData>' + "".join(rec.format(i, v) for i, v in enumerate(values))
                    + "</HealthData>")
    return path


def csv(path, values):
    path.write_text("t,hr\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    return path


def summary(tmp_path, *args):
    res = CliRunner().invoke(main, ["replay", *args, "--out", os.devnull, "--summary-json",
                                    str(tmp_path / "s.json"), "--rejects", str(tmp_path / "r.jsonl")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rejects = [json.loads(ln) for ln in (tmp_path / "r.jsonl").read_text().splitlines()]
    return json.loads((tmp_path / "s.json").read_text()), rejects


@pytest.mark.parametrize("make", [csv, fitbit, apple], ids=["csv", "fitbit", "apple"])
def test_the_range_check_applies_to_every_format(tmp_path, make):
    values = [70, 71] + BAD + [72]
    path = make(tmp_path / "in", values)
    s, rejects = summary(tmp_path, str(path))
    assert (s["readings"], s["rejected"]) == (3, 4)
    assert [r["line"] for r in rejects] == [3 + (make is csv), 4 + (make is csv), 5 + (make is csv), 6 + (make is csv)]
    assert all(r["reason"].startswith("out of range 20..300") for r in rejects), rejects
    s, _ = summary(tmp_path, str(path), "--no-range-check")
    assert (s["readings"], s["rejected"]) == (7, 0)
    s, _ = summary(tmp_path, str(path), "--min", "-10", "--max", "6000")
    assert (s["readings"], s["rejected"]) == (6, 1)


class FakeRedis:
    """Just what streams.redis_stream.publish uses: the layout hash, the groups, pipeline().xadd(...).execute()."""

    def __init__(self):
        self.entries, self.hashes = [], {}

    def hgetall(self, name):
        return self.hashes.get(name, {})

    def hset(self, name, mapping):
        self.hashes[name] = {str(k).encode(): str(v).encode() for k, v in mapping.items()}

    def xgroup_create(self, name, group, id="0", mkstream=False):
        pass

    def pipeline(self, transaction=False):
        return self

    def xadd(self, name, fields, **kw):
        self.entries.append((name, fields))

    def execute(self):
        return []


@pytest.mark.parametrize("make", [csv, fitbit, apple], ids=["csv", "fitbit", "apple"])
def test_publish_publishes_what_a_replay_scores_and_counts_the_rest(tmp_path, make, monkeypatch):
    import streams.redis_stream as rs

    fake = FakeRedis()
    monkeypatch.setattr(rs, "connect", lambda target: fake)
    path = make(tmp_path / "in", [70, 71] + BAD + [72, "abc"])
    res = CliRunner().invoke(main, ["publish", str(path), "redis://127.0.0.1:1/hr", "--pack", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    s, rejects = summary(tmp_path, str(path))
    assert len(fake.entries) == s["readings"] == 3
    published = json.loads(res.output.split("published ", 1)[1])
    assert published["rejected"] == s["rejected"] == 5
    assert [float(f["value"]) for _, f in fake.entries] == [70.0, 71.0, 72.0]


@pytest.mark.parametrize("make", [csv, fitbit, apple], ids=["csv", "fitbit", "apple"])
def test_info_counts_what_a_replay_reads(tmp_path, make):
    path = make(tmp_path / "in", [70, 71] + BAD + [72, "abc"])
    s, _ = summary(tmp_path, str(path))
    res = CliRunner().invoke(main, ["info", str(path), "--json"], catch_exceptions=False)
    d = json.loads(res.output)
    assert (d["readings"], d["rejected"]) == (s["readings"], s["rejected"]) == (3, 5)


def test_the_line_limit_is_a_setting(tmp_path):
    path = csv(tmp_path / "in.csv", [70, 71, "9" * 50, 72])
    s, rejects = summary(tmp_path, str(path), "--max-line-bytes", "20")
    assert (s["readings"], s["rejected"]) == (3, 1) and "longer than 20 bytes" in rejects[0]["reason"]
    s, _ = summary(tmp_path, str(path))
    assert (s["readings"], s["rejected"]) == (3, 1)  # 1e49..: out of range, read as a number


def test_numbers_are_ascii_decimal_and_a_stray_cr_is_not_dropped(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes("t,hr\n0,80\n1,9_5\n2,\uff19\uff15\n3,9\r5\n4,81\r\n5,82\n".encode())
    s, rejects = summary(tmp_path, str(path))
    assert (s["readings"], s["rejected"]) == (3, 3)
    assert [r["line"] for r in rejects] == [3, 4, 5]
    assert all(r["reason"].startswith("not a number") for r in rejects), rejects


def test_a_port_out_of_range_is_named_so():
    from streams import SourceError
    from streams.redis_stream import parse_url
    with pytest.raises(SourceError, match="out of range"):
        parse_url("redis://127.0.0.1:99999/hr")
    with pytest.raises(SourceError, match="not a number"):
        parse_url("redis://127.0.0.1:http/hr")


@pytest.mark.parametrize("make", [csv, fitbit], ids=["csv", "fitbit"])
def test_a_redis_replay_scores_what_the_file_replay_scores(tmp_path, make, redis_url):
    url = redis_url  # a fresh stream on the test server, its keys deleted after (tests/conftest.py)
    path = make(tmp_path / "in", [70, 71] + BAD + [72, "abc", 95])
    res = CliRunner().invoke(main, ["publish", str(path), url, "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    s, _ = summary(tmp_path, str(path))
    res = CliRunner().invoke(main, ["replay", url, "--until-idle", "-q", "--summary-json", str(tmp_path / "r.json"),
                                    "--out", str(tmp_path / "r.jsonl")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["readings"] == s["readings"] == 4
    values = [json.loads(ln)["value"] for ln in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert values == [70.0, 71.0, 72.0, 95.0]
