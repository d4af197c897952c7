"""Crafting damaged model files for the load-safety tests: the edits an attacker would make.

Each function takes the bytes of a good skops file and returns them with one structural rule
broken, everything else left consistent, so that the check under test is the only thing in the way.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


def _nodes(schema: Any, match: Callable[[dict[str, Any]], bool]) -> Iterator[dict[str, Any]]:
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if match(item):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _rewrite(archive: zipfile.ZipFile, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in archive.infolist():
            target.writestr(info.filename, replace.get(info.filename, archive.read(info.filename)))
    return out.getvalue()


def edit_tree_nodes(data: bytes, edit: Callable[[np.ndarray], None], which: int = 0) -> bytes:
    """Apply `edit` to the node records (sklearn NODE_DTYPE) of the `which`-th Tree in the file."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(archive.read("schema.json"))
    tree = list(_nodes(schema, lambda d: d.get("__loader__") == "TreeNode"))[which]
    member = tree["content"]["content"]["nodes"]["file"]
    nodes = np.load(io.BytesIO(archive.read(member)), allow_pickle=False)
    edit(nodes)
    buffer = io.BytesIO()
    np.save(buffer, nodes, allow_pickle=False)
    return _rewrite(archive, {member: buffer.getvalue()})


def set_tree_scalar(data: bytes, key: str, value: int, which: int = 0) -> bytes:
    """Set a Tree's max_depth or node_count in schema.json (a fresh __id__: skops memoises)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(archive.read("schema.json"))
    tree = list(_nodes(schema, lambda d: d.get("__loader__") == "TreeNode"))[which]
    node = tree["content"]["content"][key]
    node["content"] = json.dumps(value)
    node["__id__"] = 10**15 + 1
    return _rewrite(archive, {"schema.json": json.dumps(schema).encode()})


def _booster(schema: Any) -> dict[str, Any]:
    return next(_nodes(schema, lambda d: d.get("__class__") == "Booster"))


def edit_lightgbm_text(data: bytes, edit: Callable[[str], str]) -> bytes:
    archive = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(archive.read("schema.json"))
    handle = _booster(schema)["content"]["content"]["_handle"]
    handle["content"] = json.dumps(edit(json.loads(handle["content"])))
    handle["__id__"] = 10**15 + 3
    return _rewrite(archive, {"schema.json": json.dumps(schema).encode()})


def lightgbm_tree_field(text: str, tree: int, key: str, position: int, value: object) -> str:
    """Set one value of `key=` in tree `tree`, keeping tree_sizes consistent with the edit."""
    head, _, rest = text.partition("\nTree=0\n")
    body, end, tail = ("Tree=0\n" + rest).partition("end of trees")
    blocks = body.split("\n\n\n")
    lines = blocks[tree].split("\n")
    row = next(i for i, line in enumerate(lines) if line.startswith(key + "="))
    values = lines[row][len(key) + 1 :].split(" ")
    values[position] = str(value)
    lines[row] = f"{key}=" + " ".join(values)
    blocks[tree] = "\n".join(lines)
    sizes = " ".join(str(len(b) + 3) for b in blocks[:-1])
    head = "\n".join(
        f"tree_sizes={sizes}" if line.startswith("tree_sizes=") else line
        for line in head.split("\n")
    )
    return head + "\n" + "\n\n\n".join(blocks) + end + tail


def edit_xgboost_snapshot(data: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    archive = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(archive.read("schema.json"))
    member = _booster(schema)["content"]["content"]["handle"]["file"]
    return _rewrite(archive, {member: edit(archive.read(member))})


def ubjson_dumps(value: Any) -> bytes:
    """A UBJSON writer for the snapshot edits (the project itself only reads UBJSON)."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


_TYPE_OF = {
    np.dtype("int8"): b"i",
    np.dtype("uint8"): b"U",
    np.dtype("int16"): b"I",
    np.dtype("int32"): b"l",
    np.dtype("int64"): b"L",
    np.dtype("float32"): b"d",
    np.dtype("float64"): b"D",
}


def _text(value: str, out: bytearray) -> None:
    raw = value.encode()
    out += b"L" + struct.pack(">q", len(raw)) + raw


def _encode(value: Any, out: bytearray) -> None:
    if value is None:
        out += b"Z"
    elif value is True:
        out += b"T"
    elif value is False:
        out += b"F"
    elif isinstance(value, int):
        out += b"L" + struct.pack(">q", value)
    elif isinstance(value, float):
        out += b"D" + struct.pack(">d", value)
    elif isinstance(value, str):
        out += b"S"
        _text(value, out)
    elif isinstance(value, dict):
        out += b"{"
        for key, item in value.items():
            _text(key, out)
            _encode(item, out)
        out += b"}"
    elif isinstance(value, np.ndarray):
        out += b"[$" + _TYPE_OF[value.dtype] + b"#L" + struct.pack(">q", value.size)
        out += value.astype(value.dtype.newbyteorder(">")).tobytes()
    elif isinstance(value, list):
        out += b"[#L" + struct.pack(">q", len(value))
        for item in value:
            _encode(item, out)
    else:
        raise TypeError(type(value))


def edit_hist_nodes(data: bytes, edit: Callable[[np.ndarray], None], which: int = 0) -> bytes:
    """Apply `edit` to the node records of the `which`-th TreePredictor (histogram boosting)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(archive.read("schema.json"))
    predictor = list(_nodes(schema, lambda d: d.get("__class__") == "TreePredictor"))[which]
    member = predictor["content"]["content"]["nodes"]["file"]
    nodes = np.load(io.BytesIO(archive.read(member)), allow_pickle=False)
    edit(nodes)
    buffer = io.BytesIO()
    np.save(buffer, nodes, allow_pickle=False)
    return _rewrite(archive, {member: buffer.getvalue()})
