"""Numbers to text a whole column at a time, byte for byte what Python's own formatting gives.

The sinks write millions of records; formatting them one float at a time (``repr``, ``"%.6f" %``)
cost more than scoring them. Here a column of n numbers becomes an (n, w) uint8 matrix of ASCII
characters, right-aligned, padded with byte 255 (never part of UTF-8 text); ``join_rows`` lays such matrices and literal
texts side by side and drops the padding, which gives the records' bytes in one pass.

Exactness: ``repr_text`` finds for each value the fewest decimals d whose rounded integer
m = rint(|x| 10^d) reads back as x (m / 10^d == x: both exact in float64, and IEEE division is
correctly rounded, as Python's float() of the decimal text is). With at most 15 significant digits
two decimal texts of one length cannot both read back as x, so this is the shortest round-trip text
``repr`` prints. ``fixed_text`` (``"%.{d}f"``) rounds x 10^d to the nearest integer and leaves values
within 1e-6 of a tie to Python. Values outside the fast range (NaN, inf, |x| < 1e-4, more than 15
significant digits) are formatted by Python, one by one: the result is the same either way.

>>> import numpy as np
>>> x = np.array([80.0, -0.0, 93.63, 0.1, 1e-7, 123456.789, float("nan")])
>>> join_rows([repr_text(x), b"\\n"]).decode().split()
['80.0', '-0.0', '93.63', '0.1', '1e-07', '123456.789', 'nan']
>>> join_rows([fixed_text(np.array([0.5, 0.0123456789, 1.0]), 6), b";"]).decode()
'0.500000;0.012346;1.000000;'
"""

from __future__ import annotations

import numpy as np

PAD = 255  # padding byte: never part of UTF-8 text, dropped by join_rows

__all__ = ["repr_text", "fixed_text", "int_text", "strings_text", "pad_left", "join_rows", "choose"]

_MAX_SIG = 1e15  # at most 15 significant digits on the fast path
_POW = 10.0 ** np.arange(16)
_FOUR = np.array([list(f"{i:04d}".encode()) for i in range(10_000)], dtype=np.uint8)  # (10000, 4) digits
_FOUR32 = _FOUR.view(np.uint32).ravel()  # (10000,) the same four bytes as one word each


def _render(m: np.ndarray, d: int, neg: np.ndarray) -> np.ndarray:
    """(n,) int64 m >= 0, decimals d, (n,) bool sign -> (n, w) right-aligned text of "-m / 10^d"."""
    n = len(m)
    ndig = np.maximum(_digits(m), d + 1)  # (n,) digits written: at least one before the point
    width = int(ndig.max(initial=1))
    blocks = -(-width // 4)  # four digits at a time, by table lookup (one 4-byte word per lookup)
    words = np.empty((n, blocks), dtype=np.uint32)
    rest = m
    for b in range(blocks):
        rest, low = np.divmod(rest, 10_000) if b < blocks - 1 else (None, rest)
        words[:, blocks - 1 - b] = _FOUR32[low]
    text = words.view(np.uint8).reshape(n, 4 * blocks)[:, 4 * blocks - width:]
    short = np.flatnonzero(ndig < width)  # rows with leading zeros beyond their digits: padding there
    if len(short):
        text[short] = np.where(np.arange(width)[None, :] < (width - ndig[short])[:, None], PAD, text[short])
    point = d > 0
    out = np.empty((n, 1 + width + point), dtype=np.uint8)
    out[:, 0] = PAD
    out[:, 1:1 + width - d] = text[:, :width - d]
    if point:
        out[:, 1 + width - d] = 46
        out[:, 2 + width - d:] = text[:, width - d:]
    rows = np.flatnonzero(neg)
    if len(rows):  # "-" just before the first digit
        out[rows, out.shape[1] - 1 - ndig[rows] - point] = 45
    return out


def _digits(m: np.ndarray) -> np.ndarray:
    """Decimal digits of each m >= 0 (1 for 0)."""
    return np.searchsorted(_POW, m, side="right").clip(min=1)


def _with_fallback(fast: np.ndarray, ok: np.ndarray, texts_of, values: np.ndarray) -> np.ndarray:
    """Rows not ok are formatted by Python (texts_of(value) -> str) and merged into the matrix."""
    bad = np.flatnonzero(~ok)
    if not len(bad):
        return fast
    slow = strings_text([texts_of(v) for v in values[bad].tolist()])
    width = max(fast.shape[1], slow.shape[1])
    fast = pad_width(fast, width)
    fast[bad] = pad_width(slow, width)
    return fast


def pad_width(a: np.ndarray, width: int) -> np.ndarray:
    """A right-aligned matrix widened on the left to `width` columns (padding)."""
    if a.shape[1] >= width:
        return a
    out = np.full((a.shape[0], width), PAD, dtype=np.uint8)
    out[:, width - a.shape[1]:] = a
    return out


@np.errstate(invalid="ignore", over="ignore")
def repr_text(x: np.ndarray) -> np.ndarray:
    """(n,) float64 -> (n, w) uint8: ``repr(float(v))`` of each value, right-aligned."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    neg = np.signbit(x)
    ok = np.isfinite(x) & (((a >= 1e-4) & (a < _MAX_SIG)) | (a == 0))
    m = np.zeros(len(x), dtype=np.int64)
    d = np.zeros(len(x), dtype=np.int64)
    todo = ok.copy()  # rows still looking for their number of decimals
    for dd in range(1, 16):
        s = _POW[dd]
        mm = np.rint(a * s)
        good = todo & (mm < _MAX_SIG) & (mm / s == a)
        m[good] = mm[good]
        d[good] = dd
        todo &= ~good & (mm < _MAX_SIG)
        if not todo.any():
            break
    ok &= d > 0  # found its decimals (the rest: Python)
    present = np.flatnonzero(np.bincount(d[ok], minlength=16))  # the numbers of decimals in use
    groups = [(dd, np.flatnonzero(ok & (d == dd))) for dd in present.tolist()]
    if len(groups) == 1 and len(groups[0][1]) == len(x):
        fast = _render(m, groups[0][0], neg)
    else:
        parts = [(rows, _render(m[rows], dd, neg[rows])) for dd, rows in groups]
        fast = np.full((len(x), max([p.shape[1] for _, p in parts], default=1)), PAD, dtype=np.uint8)
        for rows, p in parts:
            fast[rows, fast.shape[1] - p.shape[1]:] = p
    return _with_fallback(fast, ok, repr, x)


@np.errstate(invalid="ignore", over="ignore")
def fixed_text(x: np.ndarray, decimals: int) -> np.ndarray:
    """(n,) float64 -> (n, w) uint8: ``"%.{decimals}f" % v`` of each value, right-aligned."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    t = a * _POW[decimals]
    m = np.rint(t)
    frac = t - np.floor(t)
    ok = np.isfinite(t) & (m < _MAX_SIG) & (np.abs(frac - 0.5) > 1e-6)
    m = np.where(ok, m, 0).astype(np.int64)
    fast = _render(m, decimals, np.signbit(x) & ok)
    spec = f"%.{decimals}f"
    return _with_fallback(fast, ok, spec.__mod__, x)


def int_text(v: np.ndarray) -> np.ndarray:
    """(n,) integers -> (n, w) uint8: ``str(int(v))``, right-aligned."""
    v = np.asarray(v, dtype=np.int64)
    ok = (v > -(2 ** 62)) & (v < 2 ** 62)
    a = np.where(ok, np.abs(v), 0)
    fast = _render(a, 0, (v < 0) & ok)
    return _with_fallback(fast, ok, str, v)


def strings_text(texts: list[str]) -> np.ndarray:
    """Texts -> (n, w) uint8 of their UTF-8 bytes, right-aligned."""
    raw = [t.encode("utf-8") for t in texts]
    n = len(raw)
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    w = int(lengths.max(initial=1)) or 1
    out = np.full((n, w), PAD, dtype=np.uint8)
    if not n:
        return out
    flat = np.frombuffer(b"".join(raw), dtype=np.uint8)
    ends = np.cumsum(lengths)
    row = np.repeat(np.arange(n), lengths)  # (total,) the row of each byte
    col = np.arange(len(flat)) - np.repeat(ends, lengths) + w  # right-aligned column of each byte
    out[row, col] = flat
    return out


def choose(index: np.ndarray, table: list[bytes]) -> np.ndarray:
    """(n,) indices into a table of texts -> (n, w) uint8 of the chosen texts, right-aligned."""
    return strings_text([t.decode() for t in table])[np.asarray(index, dtype=np.intp)]


def pad_left(a: np.ndarray, width: int, fill: int = 32) -> np.ndarray:
    """A right-aligned text matrix padded with `fill` (a space) to at least `width` characters."""
    a = pad_width(a, width)
    lead = a[:, a.shape[1] - width:]
    lead[lead == PAD] = fill  # only the last `width` columns: wider texts keep their padding
    return a


def join_rows(parts: list) -> bytes:
    """Lay (n, w) text matrices and literal bytes side by side; the concatenated rows, padding dropped.

    Any UTF-8 text is safe: the padding byte 255 never occurs in it.
    """
    mats = [p for p in parts if isinstance(p, np.ndarray)]
    n = mats[0].shape[0]
    cols = [p if isinstance(p, np.ndarray) else np.broadcast_to(np.frombuffer(p, dtype=np.uint8), (n, len(p)))
            for p in parts]
    flat = np.hstack(cols).ravel()
    return flat[flat != PAD].tobytes()
