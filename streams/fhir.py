"""HL7 FHIR R4 heart-rate Observations, from a JSON Bundle or Bulk Data NDJSON, keyed by patient.

A heart-rate Observation has the LOINC code 8867-4 in ``code.coding``; the reading is
``valueQuantity.value`` (unit ``/min``, ``{beats}/min``, ``beats/min`` or ``bpm``, or none given),
the time ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start`` (ISO 8601, UTC
when it has no zone), and the key is the patient, ``subject.reference`` (``Patient/123``): a file
of many patients is a keyed stream, with per-patient normalisation and alerts.

Resources are numbered from 1 in file order (the entry of a Bundle, the line of NDJSON). Other
resources and other Observations (SpO2 59408-5, temperature 8310-5...) are skipped and counted by
code (``found_``, shown by ``monitor info``); a heart-rate Observation that is not a reading
(no value, a wrong unit, no time, no subject, status entered-in-error) is a Reject with a reason.

Both shapes stream: NDJSON a block of lines at a time (and live, from standard input, each line
as it arrives); a Bundle entry by entry (``json.JSONDecoder.raw_decode`` on a sliding buffer),
so memory holds one block of resources, never the file.

>>> import json, pathlib, tempfile
>>> def obs(code, value, t, patient):
...     return {"resourceType": "Observation", "status": "final",
...             "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
...             "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": t,
...             "valueQuantity": {"value": value, "unit": "beats/minute", "code": "/min"}}
>>> path = pathlib.Path(tempfile.mkdtemp(), "obs.ndjson")
>>> _ = path.write_text("\\n".join(json.dumps(r) for r in [
...     obs("8867-4", 72, "2024-04-01T08:00:00Z", "a"), obs("59408-5", 97, "2024-04-01T08:00:00Z", "a"),
...     obs("8867-4", None, "2024-04-01T08:01:00Z", "b"), obs("8867-4", 99, "2024-04-01T08:01:00Z", "b")]))
>>> source = FhirObservations(path, on_note=print)
>>> batches = list(source)
reading heart-rate Observations (LOINC 8867-4): valueQuantity.value, effective time, subject as key (FHIR NDJSON)
>>> [(v, k, n) for b in batches for v, k, n in zip(b.x.ravel().tolist(), b.key.tolist(), b.line.tolist())]
[(72.0, 'Patient/a', 1), (99.0, 'Patient/b', 4)]
>>> [(r.line, r.reason) for b in batches for r in b.rejected]
[(3, 'missing valueQuantity.value')]
>>> source.found_
'heart rate (8867-4) 3, skipped 1 (59408-5 1); 2 subjects'
"""

from __future__ import annotations

import codecs
import json
import math
import os
from collections import Counter
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.compression import iter_blocks
from streams.fields import iso_seconds
from streams.live import read_chunks
from streams.lines import MAX_LINE, too_long
from streams.records import RAW_MAX, no_readings, to_batch

__all__ = ["FhirObservations", "HEART_RATE_LOINC", "looks_like_fhir"]

HEART_RATE_LOINC = "8867-4"
_UNITS = {"/min", "{beats}/min", "{beat}/min", "beats/min", "beat/min", "bpm", "1/min", "beats/minute"}


def looks_like_fhir(head: bytes) -> bool:
    """True when the first bytes are JSON naming a FHIR ``resourceType``.

    >>> looks_like_fhir(b'{"resourceType": "Bundle", "type": "collection"}'), looks_like_fhir(b'[{"bpm": 1}]')
    (True, False)
    """
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return start[:1] == b"{" and b'"resourceType"' in start


class FhirObservations:
    """Heart-rate Observations from a FHIR Bundle or NDJSON file, or NDJSON live on a stream.

    Parameters
    ----------
    path
        The file (may be gzip-compressed); None to read ``stream``.
    stream
        A binary stream or file descriptor of NDJSON arriving live (standard input when ``path``
        and ``stream`` are both None); each read's whole lines become one Batch at once.
    valid_range
        ``(low, high)``: readings outside it are rejected; None accepts any finite value.
    block
        Resources per Batch when reading a file.
    on_note
        Called once with a one-line note saying what is read.
    max_record
        Bytes one resource may take (``--max-line-bytes``): a longer NDJSON line is dropped as it
        arrives and counted as a Reject; a longer Bundle entry is a one-line SourceError (an entry
        cannot be skipped without being parsed).

    Attributes
    ----------
    found_ : str
        After (or during) iteration: heart-rate Observations, what was skipped by code, subjects.
    """

    record_unit = "resource"  # Reject.line and Batch.line count resources (NDJSON: lines)

    def __init__(self, path: str | os.PathLike | None = None, *, stream: BinaryIO | int | None = None,
                 valid_range: tuple[float, float] | None = None, block: int = 8192,
                 on_note: Callable[[str], None] | None = None, max_record: int = MAX_LINE) -> None:
        self.path = path
        self.stream = stream
        self.valid_range = valid_range
        self.block = block
        self.on_note = on_note
        self.max_record = max_record  # bytes: a longer NDJSON line is a counted reject, a longer Bundle entry an error
        self.found_: str | None = None

    @property
    def live(self) -> bool:
        return self.path is None

    def __repr__(self) -> str:
        where = repr(os.fspath(self.path)) if self.path is not None else "stream"
        return f"FhirObservations({where})"

    def __iter__(self) -> Iterator[Batch]:
        self._hr = 0
        self._skipped: Counter = Counter()
        self._subjects: set = set()
        self._noted = False
        if self.live:
            yield from self._ndjson(read_chunks(self.stream), live=True)
            return
        name = os.fspath(self.path)
        chunks = iter_blocks(self.path, 1 << 20)
        head = b""
        for chunk in chunks:  # enough bytes to tell a Bundle from NDJSON: the first line, or 1 MB
            head += chunk
            if b"\n" in head.lstrip(b" \t\r\n\xef\xbb\xbf") or len(head) >= 1 << 20:
                break
        body = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
        if not body:
            raise SourceError(f"{name} is empty")
        if body[:1] != b"{":
            raise SourceError(f"{name}: expected FHIR JSON (a Bundle, or NDJSON: one resource a line), "
                              f"got {body[:20].decode('utf-8', 'replace')!r}...")
        first = body.split(b"\n", 1)[0]
        rest = _chain([head], chunks)
        if _parses(first):
            yield from self._ndjson(rest, live=False)
        else:
            yield from self._bundle(rest, name)
        if self._hr == 0:
            raise SourceError(f"{name} holds no heart-rate Observations (LOINC {HEART_RATE_LOINC}); "
                              f"found: {self._found()}")

    # -- what is found ------------------------------------------------------------------------
    def _found(self) -> str:
        skipped = sum(self._skipped.values())
        by_code = ", ".join(f"{k} {v}" for k, v in self._skipped.most_common(8))
        text = f"heart rate ({HEART_RATE_LOINC}) {self._hr}, skipped {skipped}" + (f" ({by_code})" if skipped else "")
        return text + f"; {len(self._subjects)} subject" + ("s" if len(self._subjects) != 1 else "")

    def _note(self, shape: str) -> None:
        if not self._noted and self.on_note is not None:
            self.on_note(f"reading heart-rate Observations (LOINC {HEART_RATE_LOINC}): valueQuantity.value, "
                         f"effective time, subject as key (FHIR {shape})")
        self._noted = True

    # -- resources to a batch -----------------------------------------------------------------
    def _batch(self, resources: list, numbers: list[int], raws: list[str]) -> Batch:
        """The heart-rate Observations among resources (numbered), the others counted as skipped."""
        values, times, keys, lines, problems, texts = [], [], [], [], {}, []
        for r, number, text in zip(resources, numbers, raws):
            kind = _kind(r)
            if kind is not None:
                if isinstance(r, dict) and r.get("resourceType") == "Bundle" and isinstance(r.get("entry"), list):
                    kind = None  # a Bundle on one NDJSON line: its entries are resources too
                    for e in r["entry"]:
                        sub = e.get("resource") if isinstance(e, dict) else None
                        k = _kind(sub)
                        if k is not None:
                            self._skipped[k] += 1
                            continue
                        self._add(sub, number, json.dumps(sub), values, times, keys, lines, problems, texts)
                    continue
                self._skipped[kind] += 1
                continue
            self._add(r, number, text, values, times, keys, lines, problems, texts)
        self._hr += len(values)
        self._subjects.update(k for k in keys if k is not None)
        self.found_ = self._found()
        t = iso_seconds([v if isinstance(v, str) else "" for v in times]) if times else np.empty(0)
        return to_batch(np.array(values, dtype=np.float64), t, np.array(lines, dtype=np.int64),
                        raw=texts.__getitem__, problems=problems, key=np.array(keys, dtype=object),
                        valid_range=self.valid_range)

    @staticmethod
    def _add(r: dict, number: int, text: str, values, times, keys, lines, problems, texts) -> None:
        value, when, key, problem = _reading(r)
        if problem is not None:
            problems[len(values)] = problem
        values.append(value)
        times.append(when)
        keys.append(key)
        lines.append(number)
        texts.append(text)

    # -- NDJSON -------------------------------------------------------------------------------
    def _ndjson(self, chunks: Iterable[bytes], *, live: bool) -> Iterator[Batch]:
        self._note("NDJSON")
        line = 1  # number of the next line
        pending = b""
        skip: list | None = None  # [first bytes, size] of a line over max_record, dropped as it arrives
        for chunk in chunks:
            if skip is not None:
                end = chunk.find(b"\n")
                skip[1] += len(chunk) if end < 0 else end
                if end < 0:
                    continue
                yield self._too_long(line, *skip)
                line, skip, chunk = line + 1, None, chunk[end + 1:]
            pending += chunk
            cut = pending.rfind(b"\n")
            if cut >= 0:
                block, pending = pending[:cut], pending[cut + 1:]
                for part in _line_blocks(block, 1 if live else self.block):
                    batch, line = self._lines(part, line)
                    yield batch
            if len(pending) > self.max_record:  # the line being read is already too long: drop it
                skip, pending = [pending[:RAW_MAX], len(pending)], b""
        if skip is not None:
            yield self._too_long(line, *skip, ended=False)
        elif pending.strip():
            batch, line = self._lines(pending, line)
            yield batch

    def _too_long(self, line: int, head: bytes, size: int, ended: bool = True) -> Batch:
        why = too_long(size, self.max_record) + ("" if ended else ", not ended (file cut off?)")
        return no_readings([Reject(line, head.decode("utf-8", "replace"), why)], keyed=True)

    def _lines(self, block: bytes, first: int) -> tuple[Batch, int]:
        lines = block.split(b"\n")
        resources, numbers, raws, rejects = [], [], [], []
        for i, ln in enumerate(lines):
            text = ln.strip()
            if not text:
                continue
            if len(ln) > self.max_record:
                rejects.append(Reject(first + i, text[:RAW_MAX].decode("utf-8", "replace"),
                                      too_long(len(ln), self.max_record)))
                continue
            try:
                r = json.loads(text)
            except (ValueError, RecursionError):
                rejects.append(Reject(first + i, text.decode("utf-8", "replace")[:200], "not valid JSON"))
                continue
            resources.append(r)
            numbers.append(first + i)
            raws.append(text.decode("utf-8", "replace")[:200])
        batch = self._batch(resources, numbers, raws)
        if rejects:
            both = sorted(list(batch.rejected) + rejects)
            batch = Batch(time=batch.time, x=batch.x, y=batch.y, line=batch.line, key=batch.key, rejected=tuple(both))
        return batch, first + len(lines)

    # -- Bundle -------------------------------------------------------------------------------
    def _bundle(self, chunks: Iterable[bytes], name: str) -> Iterator[Batch]:
        self._note("Bundle")
        text = _Text(chunks, self.max_record)
        dec = json.JSONDecoder()
        text.skip_ws()
        if not text.take("{"):
            raise SourceError(f"{name}: expected a FHIR Bundle ({{\"resourceType\": \"Bundle\", ...}})")
        resource_type = None
        entry_no = 0
        while True:
            text.skip_ws()
            text.take(",")
            text.skip_ws()
            if text.take("}") or text.at_end():
                break
            key = text.value(dec, name, "a member name")
            text.skip_ws()
            text.take(":")
            text.skip_ws()
            if key != "entry":
                value = text.value(dec, name, f"the value of {key!r}")
                if key == "resourceType":
                    resource_type = value
                continue
            if resource_type not in (None, "Bundle"):
                raise SourceError(f"{name}: a FHIR {resource_type} resource, expected a Bundle or NDJSON")
            if not text.take("["):
                raise SourceError(f"{name}: Bundle.entry is not a list")
            resources, numbers, raws = [], [], []
            while True:
                text.skip_ws()
                text.take(",")
                text.skip_ws()
                if text.take("]"):
                    break
                try:
                    entry, raw = text.entry(dec)
                except _Truncated:
                    if resources:
                        yield self._batch(resources, numbers, raws)
                    yield no_readings([Reject(entry_no + 1, "", "incomplete entry (file cut off?)")], keyed=True)
                    return
                except _Broken as e:
                    raise SourceError(f"{name}: not valid JSON at entry {entry_no + 1}: {e}") from None
                except _TooLong as e:
                    raise SourceError(f"{name}: entry {entry_no + 1} of the Bundle is {e} and is not read "
                                      "(raise --max-line-bytes if the file is right)") from None
                entry_no += 1
                resources.append(entry.get("resource") if isinstance(entry, dict) else entry)
                numbers.append(entry_no)
                raws.append(raw)
                if len(resources) == self.block:
                    yield self._batch(resources, numbers, raws)
                    resources, numbers, raws = [], [], []
            if resources:
                yield self._batch(resources, numbers, raws)
        if resource_type not in (None, "Bundle"):
            raise SourceError(f"{name}: a FHIR {resource_type} resource, expected a Bundle or NDJSON")


class _Truncated(Exception):
    pass


class _Broken(Exception):
    pass


class _TooLong(Exception):
    pass


class _Text:
    """Decoded text of byte chunks, consumed from the front, refilled on demand."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self.limit = limit  # characters one value may take before it is refused
        self._chunks = iter(chunks)
        self._dec = codecs.getincrementaldecoder("utf-8-sig")("replace")
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self.eof = True
            self.buf = self.buf[self.pos:] + self._dec.decode(b"", final=True)
        else:
            self.buf = self.buf[self.pos:] + self._dec.decode(chunk)
        self.pos = 0
        return True

    def skip_ws(self) -> None:
        while True:
            n = len(self.buf)
            while self.pos < n and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < n or not self._more():
                return

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.buf)

    def take(self, ch: str) -> bool:
        if self.pos >= len(self.buf):
            self._more()
        if self.buf.startswith(ch, self.pos):
            self.pos += 1
            return True
        return False

    def _decode(self, dec: json.JSONDecoder):
        while True:
            try:
                obj, end = dec.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    start, self.pos = self.pos, end
                    return obj, start, end
            except (ValueError, RecursionError) as e:
                if self.eof:
                    raise _Truncated() if _incomplete(e, self.buf) else _Broken(str(e)) from None
                if len(self.buf) - self.pos > self.limit:
                    raise _TooLong(f"longer than {self.limit:,} characters") from None
            self._more()

    def value(self, dec: json.JSONDecoder, name: str, what: str):
        try:
            return self._decode(dec)[0]
        except (_Truncated, _Broken) as e:
            raise SourceError(f"{name}: not valid JSON in {what} of the Bundle {e}".rstrip()) from None
        except _TooLong as e:
            raise SourceError(f"{name}: {what} of the Bundle is {e} and is not read "
                              "(raise --max-line-bytes if the file is right)") from None

    def entry(self, dec: json.JSONDecoder):
        obj, start, end = self._decode(dec)
        if end - start > self.limit:  # whole in the buffer already, but over the limit all the same
            raise _TooLong(f"longer than {self.limit:,} characters")
        return obj, self.buf[start:min(end, start + 200)]


def _incomplete(e: Exception, buf: str) -> bool:
    """A decode error at the very end of the text: the file was cut off (not broken syntax)."""
    pos = getattr(e, "pos", None)
    return pos is not None and len(buf[pos:].strip()) == 0 or "Unterminated string" in str(e)


def _kind(r) -> str | None:
    """None for a heart-rate Observation; otherwise what the resource is, for the skipped count."""
    if not isinstance(r, dict):
        return None  # a reading with a problem: rejected by _reading
    kind = r.get("resourceType")
    if kind != "Observation":
        return str(kind) if kind is not None else None
    codes = _codes(r)
    if HEART_RATE_LOINC in codes:
        return None
    return codes[0] if codes else "Observation without code"


def _codes(r: dict) -> list[str]:
    code = r.get("code")
    coding = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(coding, list):
        return []
    return [str(c.get("code")) for c in coding if isinstance(c, dict) and c.get("code") is not None]


def _reading(r) -> tuple[float, str | None, str | None, str | None]:
    """(value, time text, subject, problem) of a heart-rate Observation (problem None when fine)."""
    if not isinstance(r, dict):
        return math.nan, None, None, "not a FHIR resource (JSON object)"
    if r.get("status") in ("entered-in-error", "cancelled"):
        return math.nan, None, None, f"status {r['status']}"
    q = r.get("valueQuantity")
    v = q.get("value") if isinstance(q, dict) else None
    if v is None:
        return math.nan, None, None, "missing valueQuantity.value"
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return math.nan, None, None, f"value not a number: {str(v)[:40]!r}"
    try:
        value = float(v)
    except OverflowError:
        return math.nan, None, None, f"value not finite: {str(v)[:40]}"
    unit = q.get("code") or q.get("unit")
    if unit is not None and str(unit).strip().lower() not in _UNITS:
        return math.nan, None, None, f"unit {unit!r}, expected /min"
    period = r.get("effectivePeriod")
    when = r.get("effectiveDateTime") or r.get("effectiveInstant") or (
        period.get("start") if isinstance(period, dict) else None)
    if not isinstance(when, str):
        return math.nan, None, None, "missing effectiveDateTime (or effectiveInstant, effectivePeriod.start)"
    if not math.isfinite(iso_seconds([when])[0]):
        return math.nan, None, None, f"not a time: {when[:40]!r}"
    subject = r.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str) or not ref.strip():
        return math.nan, None, None, "missing subject.reference"
    return value, when, ref.strip(), None


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except (ValueError, RecursionError):
        return False


def _chain(first: list[bytes], rest: Iterable[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _line_blocks(block: bytes, n: int) -> Iterator[bytes]:
    """A block of whole lines in pieces of at most n lines (all of it when it is shorter)."""
    if n <= 1 or block.count(b"\n") < n:
        yield block
        return
    lines = block.split(b"\n")
    for i in range(0, len(lines), n):
        yield b"\n".join(lines[i:i + n])
