"""Records of an XML export, streamed, with a limit on the bytes of any one of them.

Apple Health (``<Record>``) and Garmin TCX (``<Trackpoint>``) read the same way: ``iterparse``
looks at each element when it ends; a record (an element with the record tag, compared by local
name so namespaces do not matter) is handed over whole, with its children, and then removed from
its parent, as is every other finished element outside a record, at any depth. Memory holds the
open elements and one record, never the document.

The parser holds whatever it is fed until an element ends, so a file with an enormous element (or
text) would be held whole. ``max_record`` bounds that: more than that many bytes fed to the parser
without any element starting or ending is a `RecordTooLong` (the readers turn it into a one-line
SourceError; the record cannot be skipped without being read). ``--max-line-bytes`` sets it, as it
sets the longest line of a CSV.

>>> import io
>>> doc = b'<Root><A/><R n="1"><v>5</v></R><R n="2"/></Root>'
>>> [(kind, e.tag, e.get("n")) for kind, e in iter_records(io.BytesIO(doc), "R")]
[('root', 'Root', None), ('record', 'R', '1'), ('record', 'R', '2')]
>>> list(iter_records(io.BytesIO(b'<Root><R>' + b'x' * 5000 + b'</R></Root>'), "R", max_record=1000))
Traceback (most recent call last):
...
streams.xmlrecords.RecordTooLong: 1000
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

from streams.batch import Reject
from streams.lines import MAX_LINE

__all__ = ["iter_records", "local_name", "RecordTooLong", "too_long_message", "cut_off"]


class RecordTooLong(Exception):
    """More than ``max_record`` bytes were fed to the parser without an element starting or ending."""


def local_name(tag: str) -> str:
    """``{namespace}Name`` -> ``Name``."""
    return tag.rsplit("}", 1)[-1]


def iter_records(f: BinaryIO, tag: str, *, max_record: int = MAX_LINE) -> Iterator[tuple[str, object]]:
    """Yield ``("root", element)`` once, when the root starts, then ``("record", element)`` for each
    finished element whose local name is ``tag`` (children included).

    Raises `RecordTooLong` past ``max_record`` bytes without an element boundary, and
    ``xml.etree.ElementTree.ParseError`` where the XML is not well-formed (after yielding the
    records before it). ``f`` is not closed.
    """
    from xml.etree.ElementTree import iterparse

    guard = _Guard(f, max_record)
    stack: list = []  # the open elements, root first
    in_record = 0  # open record elements (their children wait for them)
    for event, elem in iterparse(guard, events=("start", "end")):
        guard.fed = 0  # an element started or ended: the bytes of the next one count from here
        if event == "start":
            if not stack:
                yield "root", elem
            stack.append(elem)
            in_record += local_name(elem.tag) == tag
            continue
        stack.pop()
        if local_name(elem.tag) == tag:
            in_record -= 1
            yield "record", elem
        elif in_record:  # a child of a record: goes with its record
            continue
        if stack:  # drop the finished element (and its children), at any depth
            stack[-1].remove(elem)


def too_long_message(name: str, max_record: int, after: str) -> str:
    """The one line said when a record is over the limit; ``after`` names the last record read."""
    return (f"{name}: more than {max_record:,} bytes without an element ending, after {after}: a record that "
            "long is not read (raise --max-line-bytes if the file is right)")


def cut_off(number: int, error: Exception) -> Reject:
    """The Reject counted for a file that stops being well-formed XML before record ``number``."""
    return Reject(number, "", f"not well-formed XML after this point ({error}): file cut off?")


class _Guard:
    """The file as iterparse reads it, refusing to feed more than ``limit`` bytes between two elements."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self.f, self.limit, self.fed = f, limit, 0

    def read(self, n: int = -1) -> bytes:
        if self.fed > self.limit:
            raise RecordTooLong(self.limit)
        data = self.f.read(n if n is not None and 0 <= n <= self.limit + 1 else self.limit + 1)
        self.fed += len(data)
        return data
