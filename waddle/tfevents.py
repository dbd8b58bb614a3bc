"""Reading TensorBoard's event files (``*tfevents*``) without TensorFlow.

A tfevents file is a sequence of records, each ``uint64 length``, ``uint32 masked CRC-32C of
the length``, ``length`` bytes of an ``Event`` protobuf, ``uint32 masked CRC-32C of the data``
(all little-endian; masked: ``((crc >> 15 | crc << 17) + 0xa282ead8) mod 2**32``). This module
owns that framing and the decoding of the summary values waddle keeps. It promises:

- every record's CRCs are checked (with ``google-crc32c`` when installed, else in Python, far
  slower; a length's CRC is computed once per distinct length, then compared): a record whose
  data fails its check is reported and skipped; a length that fails its check ends the file
  there (nothing after it can be framed), reported;
- a torn last record (a writer that died mid-write) ends the file at the tear, reported with
  its byte offset: everything before it is read;
- events are decoded with the ``tensorboard`` package's protobuf classes when it is installed,
  else with a minimal decoder of the few fields read here; both give the same values. The
  bulk of most files, one old-style scalar per event, is read by hand either way (exactly
  the bytes TensorBoard's writers make of it), at a fraction of the cost.

What comes out, per event with summary values: ``(step, wall_time, values)``, each value a
``(tag, kind, payload)``: ``scalar`` (a float), ``histogram`` (waddle's histogram value),
``image`` (encoded bytes, width, height), ``audio`` (encoded bytes, sample rate, channels,
frames, content type), ``text`` (a string) or ``hparams`` (a dict). Values of other plugins
(PR curves, meshes, custom scalar layouts, graphs) are counted by plugin and left out.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ProblemHandler = Callable[[Path, int, str], None]
Value = tuple[str, str, Any]

_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8

# Types of TensorProto's dtype this module reads: DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64.
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8"}


def is_event_file(path: Path) -> bool:
    """Whether ``path`` is named like a TensorBoard event file."""
    return "tfevents" in path.name and path.is_file() and not path.is_symlink()


# ---- record framing ------------------------------------------------------------------------


def _crc32c_python() -> Callable[[bytes], int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)

    def crc32c(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF

    return crc32c


try:
    from google_crc32c import value as crc32c
except ImportError:  # the slow way: correct, about a megabyte a second
    crc32c = _crc32c_python()


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def records(path: Path, on_problem: ProblemHandler) -> Iterator[tuple[int, bytes]]:
    """``(offset, data)`` of every sound record of ``path`` (module docstring for the rest)."""
    for batch in record_batches(path, on_problem):
        yield from batch


def record_batches(
    path: Path, on_problem: ProblemHandler, batch_bytes: int = 1 << 20
) -> Iterator[list[tuple[int, bytes]]]:
    """:func:`records` in lists of about ``batch_bytes`` of the file (a record larger than
    that alone): a hot loop over a list is cheaper than one step of a generator per record.
    A problem is reported once the records before it are handed over, as with :func:`records`.

    The file is mapped, not read whole: an event file of images can be larger than memory."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield from _framed(path, data, on_problem, batch_bytes)


def _framed(
    path: Path, data: Any, on_problem: ProblemHandler, batch_bytes: int
) -> Iterator[list[tuple[int, bytes]]]:
    size = len(data)
    position = 0
    header, trailer, crc32c_of = _HEADER.unpack_from, _CRC.unpack_from, crc32c
    # The length's CRC is a function of the length alone, and most records of a file share a
    # few lengths: each length is checked once, then its CRC is compared with the one found.
    checked: dict[int, int] = {}
    batch: list[tuple[int, bytes]] = []
    batch_end = batch_bytes  # where the batch is handed over
    problem = None
    while position < size:
        if size - position < 12:
            problem = f"torn record: {size - position} bytes of a header"
            break
        length, length_crc = header(data, position)
        if checked.get(length) != length_crc:
            crc = crc32c_of(data[position : position + 8])  # masked_crc, inline: the hot loop
            if (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF != length_crc:
                problem = "corrupt record length (CRC mismatch); the rest is unread"
                break
            checked[length] = length_crc
        start = position + 12
        end = start + length + 4
        if end > size:
            problem = f"torn record: {size - start} of {length + 4} bytes"
            break
        payload = data[start : start + length]
        crc = crc32c_of(payload)
        if (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF != trailer(data, end - 4)[0]:
            if batch:
                yield batch
                batch = []
            on_problem(path, position, "record data fails its CRC; skipped")
        else:
            batch.append((position, payload))
            if end >= batch_end:
                yield batch
                batch = []
                batch_end = end + batch_bytes
        position = end
    if batch:
        yield batch
    if problem is not None:
        on_problem(path, position, problem)


def frame(payload: bytes) -> bytes:
    """One record around ``payload``, as TensorBoard writes it (tests, benchmarks)."""
    header = struct.pack("<Q", len(payload))
    return header + _CRC.pack(masked_crc(header)) + payload + _CRC.pack(masked_crc(payload))


def scalar_record(step: int, wall_time: float, tag: str, value: float) -> bytes:
    """The framed record of one scalar event, byte for byte as TensorBoard's writers make it
    (tests, benchmarks: files made without TensorBoard)."""
    tag_bytes = tag.encode()
    value_message = b"\x0a" + _encode_varint(len(tag_bytes)) + tag_bytes
    value_message += b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + _encode_varint(len(value_message)) + value_message
    event = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _encode_varint(step % 2**64)
    event += b"\x2a" + _encode_varint(len(summary)) + summary
    return frame(event)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# ---- events --------------------------------------------------------------------------------


class Decoder:
    """Turns an Event record into ``(step, wall_time, values)``, or None when it holds no
    summary; counts what it leaves out in ``skipped`` (by plugin or kind)."""

    def __init__(self, use_protobuf: bool | None = None) -> None:
        self.skipped: Counter = Counter()
        self._event = None
        if use_protobuf is not False:
            try:
                from tensorboard.compat.proto.event_pb2 import Event
                from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
            except ImportError:
                if use_protobuf:
                    raise
            else:
                self._event, self._hparams = Event, HParamsPluginData
        self.protobuf = self._event is not None

    def __call__(self, record: bytes) -> tuple[int, float, list[Value]] | None:
        found = scalar(record)
        if found is not None:
            return found[0], found[1], [(found[2], "scalar", found[3])]
        if self._event is not None:
            return self._with_protobuf(record)
        return self._by_hand(record)

    # -- with tensorboard's classes

    def _with_protobuf(self, record: bytes) -> tuple[int, float, list[Value]] | None:
        event = self._event.FromString(record)
        if not event.HasField("summary"):
            return None
        values = []
        for value in event.summary.value:
            which = value.WhichOneof("value")
            if which == "simple_value":
                values.append((value.tag, "scalar", value.simple_value))
                continue
            plugin = value.metadata.plugin_data.plugin_name
            content = value.metadata.plugin_data.content
            if which == "histo":
                h = value.histo
                found = _histogram(
                    h.min, h.max, h.num, h.sum, h.sum_squares, list(h.bucket_limit), list(h.bucket)
                )
            elif which == "image":
                image = value.image
                found = ("image", (image.encoded_image_string, image.width, image.height))
            elif which == "audio":
                a = value.audio
                found = (
                    "audio",
                    (
                        a.encoded_audio_string,
                        a.sample_rate,
                        a.num_channels,
                        a.length_frames,
                        a.content_type,
                    ),
                )
            elif which == "tensor":
                t = value.tensor
                found = _tensor(
                    plugin,
                    content,
                    t.dtype,
                    [dim.size for dim in t.tensor_shape.dim],
                    t.tensor_content,
                    {5: list(t.float_val), 6: list(t.double_val), 7: list(t.int_val),
                     10: list(t.int64_val), 8: list(t.string_val)},
                    self._hparams_of,
                )  # fmt: skip
            elif plugin == "hparams" and content:
                found = _hparams_value(self._hparams_of(content))
            else:
                found = None
            self._add(values, value.tag, plugin or which, found)
        return event.step, event.wall_time, values

    def _hparams_of(self, content: bytes) -> dict[str, Any] | None:
        data = self._hparams.FromString(content)
        if not data.HasField("session_start_info"):
            return None
        out = {}
        for name, value in data.session_start_info.hparams.items():
            kind = value.WhichOneof("kind")
            out[name] = None if kind in (None, "null_value") else getattr(value, kind)
        return out

    # -- by hand

    def _by_hand(self, record: bytes) -> tuple[int, float, list[Value]] | None:
        fields = _fields(record)
        summary = fields.get(5)
        if not summary:
            return None
        step = _signed(fields.get(2, [0])[-1])
        wall_time = struct.unpack("<d", struct.pack("<Q", fields.get(1, [0])[-1]))[0]
        values = []
        for raw in _fields(summary[-1]).get(1, []):
            value = _fields(raw)
            tag = _text(value.get(1, [b""])[-1])
            metadata = _fields(value.get(9, [b""])[-1])
            plugin_data = _fields(metadata.get(1, [b""])[-1])
            plugin = _text(plugin_data.get(1, [b""])[-1])
            content = plugin_data.get(2, [b""])[-1]
            if 2 in value:
                values.append((tag, "scalar", _float32(value[2][-1])))
                continue
            if 5 in value:
                h = _fields(value[5][-1])
                found = _histogram(
                    _double(h.get(1, [0])[-1]),
                    _double(h.get(2, [0])[-1]),
                    _double(h.get(3, [0])[-1]),
                    _double(h.get(4, [0])[-1]),
                    _double(h.get(5, [0])[-1]),
                    _doubles(h.get(6, [])),
                    _doubles(h.get(7, [])),
                )
                which = "histo"
            elif 4 in value:
                image = _fields(value[4][-1])
                found = (
                    "image",
                    (image.get(4, [b""])[-1], image.get(2, [0])[-1], image.get(1, [0])[-1]),
                )
                which = "image"
            elif 6 in value:
                a = _fields(value[6][-1])
                found = (
                    "audio",
                    (a.get(4, [b""])[-1], _float32(a.get(1, [0])[-1]), a.get(2, [0])[-1],
                     a.get(3, [0])[-1], _text(a.get(5, [b""])[-1])),
                )  # fmt: skip
                which = "audio"
            elif 8 in value:
                t = _fields(value[8][-1])
                shape = [
                    _fields(dim).get(1, [0])[-1] for dim in _fields(t.get(2, [b""])[-1]).get(2, [])
                ]
                lists = {
                    5: _floats(t.get(5, [])),
                    6: _doubles(t.get(6, [])),
                    7: [_signed(v) for v in _varints(t.get(7, []))],
                    10: [_signed(v) for v in _varints(t.get(10, []))],
                    8: t.get(8, []),
                }
                found = _tensor(
                    plugin, content, t.get(1, [0])[-1], shape, t.get(4, [b""])[-1], lists,
                    _hparams_by_hand,
                )  # fmt: skip
                which = "tensor"
            elif plugin == "hparams" and content:
                found = _hparams_value(_hparams_by_hand(content))
                which = plugin
            else:
                found, which = None, "other"
            self._add(values, tag, plugin or which, found)
        return step, wall_time, values

    def _add(self, values: list[Value], tag: str, what: str, found: tuple | None) -> None:
        if found is None:
            self.skipped[what] += 1
        elif found[0] != "nothing":
            values.append((tag, found[0], found[1]))


def _histogram(
    low: float, high: float, num: float, total: float, squares: float, limits: list, counts: list
) -> tuple[str, dict] | None:
    """A HistogramProto as waddle's histogram value: bins from ``low`` through the right edges
    (an infinite or huge last edge, TensorBoard's catch-all, becomes ``high``)."""
    if not counts or len(limits) != len(counts):
        return None
    edges = [min(low, limits[0])]
    for limit in limits:
        if not math.isfinite(limit) or limit >= 1e300:
            limit = max(high, edges[-1])
        edges.append(max(limit, edges[-1]))
    mean = total / num if num else None
    variance = squares / num - mean * mean if num else None
    return "histogram", {
        "_type": "histogram",
        "bins": edges,
        "counts": [int(c) if float(c).is_integer() else c for c in counts],
        "count": int(num) if float(num).is_integer() else num,
        "min": low,
        "max": high,
        "mean": mean,
        "std": math.sqrt(max(variance, 0.0)) if variance is not None else None,
        "nan": 0,
        "posinf": 0,
        "neginf": 0,
    }


def _tensor(
    plugin: str,
    content: bytes,
    dtype: int,
    shape: list[int],
    packed: bytes,
    lists: dict[int, list],
    hparams_of: Callable[[bytes], dict | None],
) -> tuple[str, Any] | None:
    """A TensorProto value by the plugin that wrote it."""
    if plugin == "hparams":
        return _hparams_value(hparams_of(content)) if content else None
    if plugin == "text":
        strings = lists[8]
        if not strings:
            return None
        return "text", "\n\n".join(_text(item) for item in strings)
    if plugin == "images" and len(lists[8]) >= 3:
        width, height = int(_text(lists[8][0])), int(_text(lists[8][1]))
        return "image", (lists[8][2], width, height)
    numbers = _numbers(dtype, packed, lists)
    if numbers is None:
        return None
    if plugin in ("scalars", "") and len(numbers) == 1:
        return "scalar", float(numbers[0])
    if (
        plugin == "histograms"
        and len(shape) == 2
        and shape[1] == 3
        and len(numbers) == 3 * shape[0]
    ):
        rows = [numbers[i : i + 3] for i in range(0, len(numbers), 3)]
        if not rows:
            return None
        limits = [float(row[1]) for row in rows]
        counts = [float(row[2]) for row in rows]
        centres = [(row[0] + row[1]) / 2 for row in rows]
        num = sum(counts)
        total = sum(c * x for c, x in zip(counts, centres, strict=True))
        squares = sum(c * x * x for c, x in zip(counts, centres, strict=True))
        return _histogram(rows[0][0], rows[-1][1], num, total, squares, limits, counts)
    return None


def _numbers(dtype: int, packed: bytes, lists: dict[int, list]) -> list | None:
    if packed:
        code = _DTYPES.get(dtype)
        if code is None or len(packed) % struct.calcsize(code):
            return None
        return list(struct.unpack(f"<{len(packed) // struct.calcsize(code)}{code[1]}", packed))
    for number in (6, 5, 10, 7):
        if lists[number]:
            return lists[number]
    return None


def _hparams_value(hparams: dict | None) -> tuple[str, Any]:
    """The hparams plugin's session start (the hyperparameters); its other records (the
    experiment's domains, the session's end) carry nothing waddle keeps."""
    return ("hparams", hparams) if hparams is not None else ("nothing", None)


def scalar(record: bytes) -> tuple[int, float, str, float] | None:
    """``(step, wall_time, tag, value)`` of the event of one old-style scalar, the bulk of most
    files, read at a fraction of the cost of a general decoding: exactly the bytes TensorBoard's
    writers make of it (wall_time, step, a summary of one value of a tag and a simple_value,
    nothing else; lengths under 128 bytes); None for any other event, which the general
    decoders read (and read the same: tests/test_tfevents.py)."""
    size = len(record)
    if size < 18 or record[0] != 0x09 or record[9] != 0x10:
        return None
    step, position = record[10], 11
    if step >= 0x80:  # two or three bytes for steps below 2**21, inline: most steps
        low, step, position = step & 0x7F, record[11], 12
        if step >= 0x80:
            step, position = (step & 0x7F) << 7 | record[12] << 14, 13
            if record[12] >= 0x80:
                step, position = _varint(record, 10)
                step = _signed(step)  # int64: a negative step takes ten bytes
                low = 0
        else:
            step <<= 7
        step |= low
    # The rest up to the float (summary, its one value, the value's tag) is the same bytes in
    # every event of a tag: read once per tag, then looked up.
    tag = _SCALAR_TAGS.get(record[position : size - 4])
    if tag is None:
        tag = _scalar_tag(record, position)
        if tag is None:
            return None
    return step, _WALL.unpack_from(record, 1)[0], tag, _FLOAT.unpack_from(record, size - 4)[0]


def _scalar_tag(record: bytes, position: int) -> str | None:
    """The tag of a scalar event whose summary starts at ``position`` (:func:`scalar`), None if
    it is not one; remembered by the bytes that hold it (up to _SCALAR_TAGS_MAX tags)."""
    size = len(record)
    # summary (5), its one value (1), the value's tag (1): one-byte lengths, then the float
    if size - position < 11 or record[position] != 0x2A:
        return None
    summary = record[position + 1]
    length = record[position + 5]
    end = position + 6 + length
    if (
        summary != size - position - 2
        or record[position + 2] != 0x0A
        or record[position + 3] != summary - 2
        or record[position + 4] != 0x0A
        or end + 5 != size
        or record[end] != 0x15
    ):
        return None
    try:
        tag = record[position + 6 : end].decode()
    except UnicodeDecodeError:
        return None
    if len(_SCALAR_TAGS) < _SCALAR_TAGS_MAX:
        _SCALAR_TAGS[record[position : size - 4]] = tag
    return tag


_SCALAR_TAGS: dict[bytes, str] = {}
_SCALAR_TAGS_MAX = 4096
_WALL = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


# ---- the minimal protobuf decoder ------------------------------------------------------------


def _fields(data: bytes) -> dict[int, list]:
    """Every field of a protobuf message: number -> values (ints for varints and fixed
    widths, bytes for length-delimited ones), in order."""
    out: dict[int, list] = {}
    position, size = 0, len(data)
    while position < size:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1:
            value = int.from_bytes(data[position : position + 8], "little")
            position += 8
        elif wire == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire == 5:
            value = int.from_bytes(data[position : position + 4], "little")
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _varints(items: list) -> list[int]:
    """Repeated varints, packed (bytes) or not (ints)."""
    out = []
    for item in items:
        if isinstance(item, bytes):
            position = 0
            while position < len(item):
                value, position = _varint(item, position)
                out.append(value)
        else:
            out.append(item)
    return out


def _signed(value: int) -> int:
    """An int64 field as protobuf reads it: the varint cut to its low 64 bits (a damaged
    tenth byte may carry more), then two's complement."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _float32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _floats(items: list) -> list[float]:
    out: list[float] = []
    for item in items:
        if isinstance(item, bytes):
            out.extend(struct.unpack(f"<{len(item) // 4}f", item))
        else:
            out.append(_float32(item))
    return out


def _doubles(items: list) -> list[float]:
    out: list[float] = []
    for item in items:
        if isinstance(item, bytes):
            out.extend(struct.unpack(f"<{len(item) // 8}d", item))
        else:
            out.append(_double(item))
    return out


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _hparams_by_hand(content: bytes) -> dict[str, Any] | None:
    """HParamsPluginData's session_start_info.hparams: name -> google.protobuf.Value."""
    start = _fields(content).get(3)
    if not start:
        return None
    out = {}
    for entry in _fields(start[-1]).get(1, []):
        item = _fields(entry)
        name = _text(item.get(1, [b""])[-1])
        value = _fields(item.get(2, [b""])[-1])
        if 2 in value:
            out[name] = _double(value[2][-1])
        elif 3 in value:
            out[name] = _text(value[3][-1])
        elif 4 in value:
            out[name] = bool(value[4][-1])
        else:
            out[name] = None
    return out
