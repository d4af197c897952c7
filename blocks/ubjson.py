"""A bounds-checked UBJSON reader for the subset XGBoost writes (`Booster.save_raw("ubj")`).

XGBoost's own reader trusts lengths and indices in the bytes, so a crafted model crashes the
process while it loads. The registry reads a stored booster here first, in Python, where any
malformation is a `ValueError`, and checks the trees before XGBoost sees the bytes. Hand-written
because no maintained package reads it: py-ubjson has had no release since 2020 and bjdata 0.6.6
(little-endian BJData) refuses XGBoost's files. Typed arrays (`[$<type>#<count>`) decode to numpy
arrays in native byte order; everything else to Python values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SCALARS: dict[bytes, np.dtype[Any]] = {
    b"i": np.dtype(">i1"),
    b"U": np.dtype(">u1"),
    b"I": np.dtype(">i2"),
    b"l": np.dtype(">i4"),
    b"L": np.dtype(">i8"),
    b"d": np.dtype(">f4"),
    b"D": np.dtype(">f8"),
    b"C": np.dtype(">u1"),
}
_LENGTHS = {b"i", b"U", b"I", b"l", b"L"}
MAX_DEPTH = 64


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.at = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.at + n > len(self.data):
            raise ValueError(f"ubjson: truncated at byte {self.at} (wanted {n} more)")
        part = self.data[self.at : self.at + n]
        self.at += n
        return part

    def marker(self) -> bytes:
        return bytes(self.take(1))

    def peek(self) -> bytes:
        return bytes(self.data[self.at : self.at + 1])

    def scalar(self, kind: bytes) -> int | float:
        dtype = _SCALARS[kind]
        value: int | float = np.frombuffer(self.take(dtype.itemsize), dtype)[0].item()
        return value

    def length(self) -> int:
        kind = self.marker()
        if kind not in _LENGTHS:
            raise ValueError(f"ubjson: a length must be an integer, not {kind!r}")
        n = int(self.scalar(kind))
        if n < 0:
            raise ValueError("ubjson: negative length")
        return n

    def text(self) -> str:
        return bytes(self.take(self.length())).decode("utf-8")

    def value(self, kind: bytes | None = None, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("ubjson: nested too deep")
        kind = kind or self.marker()
        if kind in _SCALARS:
            return self.scalar(kind)
        simple = {b"Z": None, b"T": True, b"F": False}
        if kind in simple:
            return simple[kind]
        if kind == b"S":
            return self.text()
        if kind == b"{":
            found: dict[str, Any] = {}
            while self.peek() != b"}":
                key = self.text()
                found[key] = self.value(depth=depth + 1)
            self.take(1)
            return found
        if kind == b"[":
            return self.array(depth)
        raise ValueError(f"ubjson: unknown marker {kind!r} at byte {self.at - 1}")

    def array(self, depth: int) -> Any:
        if self.peek() == b"$":
            self.take(1)
            kind = self.marker()
            if kind not in _SCALARS or self.marker() != b"#":
                raise ValueError("ubjson: a typed array needs a scalar type and a count")
            n = self.length()
            dtype = _SCALARS[kind]
            raw = self.take(n * dtype.itemsize)
            return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="))
        if self.peek() == b"#":
            self.take(1)
            return [self.value(depth=depth + 1) for _ in range(self.length())]
        items = []
        while self.peek() != b"]":
            if not self.peek():
                raise ValueError("ubjson: truncated array")
            items.append(self.value(depth=depth + 1))
        self.take(1)
        return items


def loads(data: bytes) -> Any:
    """The value encoded in `data`; a `ValueError` for anything malformed or left over."""
    reader = _Reader(data)
    value = reader.value()
    if reader.at != len(reader.data):
        raise ValueError(f"ubjson: {len(reader.data) - reader.at} bytes after the value")
    return value
