"""W&B's offline run file (``run-<id>.wandb``): its records, read without W&B's reader.

W&B 0.31 no longer ships a Python reader for this file's framing, so waddle reads the framing
itself and leaves every record's contents to the ``wandb`` package's protobuf classes. The file
starts with a 7-byte header (``:W&B``, a 2-byte magic, a version byte); records follow in
LevelDB's log framing: 32 KiB blocks, each piece of a record behind a 7-byte header (a masked
CRC-32C, a 2-byte little-endian length, a type: full, first, middle or last), and a block's
tail too short for a header padded with zeros. A torn last record (a writer that died) ends
the reading there; :func:`records` reports it through ``on_torn``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HEADER = b":W&B"
FILE_HEADER_BYTES = 7
BLOCK = 32 * 1024
PIECE_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path, on_torn: Callable[[int], None] | None = None) -> Iterator[Any]:
    """Every record of the file as a ``wandb.proto.wandb_internal_pb2.Record``, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        raise ValueError(f"{path} is not a W&B run file (it does not start with {HEADER!r})")
    for payload in _payloads(data, on_torn):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def _payloads(data: bytes, on_torn: Callable[[int], None] | None) -> Iterator[bytes]:
    offset = FILE_HEADER_BYTES
    pending: list[bytes] = []
    while offset < len(data):
        room = BLOCK - offset % BLOCK
        if room < PIECE_HEADER.size:  # a block's padding
            offset += room
            continue
        if offset + PIECE_HEADER.size > len(data):
            break
        _, length, kind = PIECE_HEADER.unpack_from(data, offset)
        start = offset + PIECE_HEADER.size
        if kind == 0 and length == 0:  # zeros: the rest of a block, or of a preallocated file
            offset += room
            continue
        if start + length > len(data) or kind not in (FULL, FIRST, MIDDLE, LAST):
            if on_torn:
                on_torn(offset)
            return
        piece = data[start : start + length]
        offset = start + length
        if kind == FULL:
            yield piece
        elif kind == FIRST:
            pending = [piece]
        elif kind == MIDDLE:
            pending.append(piece)
        else:
            pending.append(piece)
            yield b"".join(pending)
            pending = []
    if pending and on_torn:
        on_torn(offset)
