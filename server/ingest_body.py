"""The body of ``POST /api/ingest``: how a relay frames the events of several runs, and how the
central server reads and checks them (docs/api.md, "Relaying").

The body is gzip-compressed. Inside, a header line, then per run a chunk: a line saying whose
events follow, and that many bytes of event lines exactly as the run's segments hold them::

    {"v":1,"origin":"gpu-7"}
    {"project":"demo","run":"20261123-094418-136-ri3fsw","after":41,"bytes":5120}
    <5120 bytes: event lines, each ending in a newline>
    {"project":"demo","run":"…","after":-1,"bytes":0}
    {"project":"demo","run":"20261123-094418-136-ri3fsw","rank":1,"after":-1,"bytes":980}
    <980 bytes: event lines of rank 1's stream>

``rank`` (absent: 0) says which stream of the run the chunk continues (waddle/ranks.py: rank
0's is the run folder's own, rank N's its ``ranks/N/``); each stream has its own seqs.
``after`` is the seq of the event the relay read just before the chunk's first one (-1: the
run's start); a chunk of 0 bytes asks where the central server stands. :func:`decode` promises
that a body it returns is whole and consistent: valid names, events that decode
(waddle/event.py) in rising seq order, above ``after``, and a ``run_start`` naming the chunk's
own project and run; anything else raises :class:`BadBody` naming the chunk and line, and the
central server then writes nothing of the body.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import orjson

from waddle import event as event_format
from waddle import names, ranks, segment

VERSION = 1
# What one request may carry: compressed as sent, and once decompressed.
MAX_BODY_BYTES = 32 << 20
MAX_RAW_BYTES = 128 << 20
# A header line (the body's or a chunk's) is short; anything longer is no header.
MAX_HEADER_BYTES = 4096


class BadBody(ValueError):
    """A body that is not a valid batch; the message says where and why."""


@dataclass
class Chunk:
    """The events of one stream of a run (its ``rank``) in a body: ``lines`` of complete event
    lines, with the seq of each and the offset just past each line in ``lines``."""

    project: str
    run: str
    after: int
    lines: bytes = b""
    seqs: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    rank: int = 0

    @property
    def last(self) -> int:
        """The seq of the chunk's last event, or ``after`` when it has none."""
        return self.seqs[-1] if self.seqs else self.after


def encode(origin: str, chunks: list[Chunk], level: int = 1) -> bytes:
    """The compressed body of ``chunks`` from ``origin``."""
    parts = [orjson.dumps({"v": VERSION, "origin": origin}) + b"\n"]
    for chunk in chunks:
        header = {"project": chunk.project, "run": chunk.run}
        if chunk.rank:
            header["rank"] = chunk.rank
        header.update(after=chunk.after, bytes=len(chunk.lines))
        parts.append(orjson.dumps(header) + b"\n")
        parts.append(chunk.lines)
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: the gzip container
    return compressor.compress(b"".join(parts)) + compressor.flush()


def decompress(body: bytes) -> bytes:
    """The raw body; BadBody when it is not gzip or would pass MAX_RAW_BYTES."""
    inflater = zlib.decompressobj(31)
    try:
        raw = inflater.decompress(body, MAX_RAW_BYTES)
    except zlib.error as error:
        raise BadBody(f"the body is not gzip-compressed ({error})") from None
    if inflater.unconsumed_tail:
        raise BadBody(f"the body holds more than {MAX_RAW_BYTES} bytes once decompressed")
    if not inflater.eof:
        raise BadBody("the gzip stream of the body is cut short")
    return raw


def decode(raw: bytes) -> tuple[str, list[Chunk]]:
    """The origin and the chunks of a decompressed body, every event checked."""
    header, at = _header(raw, 0, "the body's header")
    if header.get("v") != VERSION:
        raise BadBody(f"the body's version is {header.get('v')!r}; this server reads {VERSION}")
    origin = header.get("origin")
    try:
        names.check_origin(origin)
    except ValueError as error:
        raise BadBody(str(error)) from None
    chunks = []
    while at < len(raw):
        where = f"chunk {len(chunks) + 1}"
        fields, at = _header(raw, at, f"the header of {where}")
        project, run, after, size = (fields.get(k) for k in ("project", "run", "after", "bytes"))
        if not (names.is_valid(project) and names.is_valid(run)):
            raise BadBody(f"{where}: project {project!r} or run {run!r} is not a valid name")
        rank = fields.get("rank", 0)
        if not ranks.is_rank(rank):
            raise BadBody(
                f"{where} ({project}/{run}): rank {rank!r} is not a rank (an integer from 0 to "
                f"{ranks.RANK_MAX})"
            )
        where = f"{where} ({project}/{run}{f', rank {rank}' if rank else ''})"
        if type(after) is not int or not -1 <= after <= event_format.SEQ_MAX:
            raise BadBody(f"{where}: after must be a seq or -1, not {after!r}")
        if type(size) is not int or not 0 <= size <= len(raw) - at:
            raise BadBody(f"{where}: bytes {size!r} is not the length of what follows")
        chunk = Chunk(project, run, after, raw[at : at + size], rank=rank)
        _check_events(chunk, where)
        chunks.append(chunk)
        at += size
    return origin, chunks


def _header(raw: bytes, at: int, what: str) -> tuple[dict, int]:
    end = raw.find(b"\n", at, at + MAX_HEADER_BYTES)
    if end < 0:
        raise BadBody(f"{what} is missing or longer than {MAX_HEADER_BYTES} bytes")
    try:
        value = orjson.loads(raw[at:end])
    except orjson.JSONDecodeError as error:
        raise BadBody(f"{what} is not JSON ({error})") from None
    if type(value) is not dict:
        raise BadBody(f"{what} is not a JSON object")
    return value, end + 1


def _check_events(chunk: Chunk, where: str) -> None:
    lines = chunk.lines
    if lines and not lines.endswith(b"\n"):
        raise BadBody(f"{where}: its last line has no newline")
    previous, start = chunk.after, 0
    for number, line in enumerate(lines.split(b"\n")[:-1], 1):
        if len(line) > segment.MAX_LINE_BYTES:
            raise BadBody(f"{where}, line {number}: longer than {segment.MAX_LINE_BYTES} bytes")
        head = event_format.peek(line)  # the common line; decode() says what is wrong
        if head is not None:
            seq, kind, event = head
        else:
            try:
                event = event_format.decode(line)
            except event_format.MalformedEvent as error:
                raise BadBody(f"{where}, line {number}: {error}") from None
            seq, kind = event["seq"], event["type"]
        if seq <= previous:
            raise BadBody(f"{where}, line {number}: seq {seq} does not come after seq {previous}")
        if kind == "run_start" and (
            event.get("project") != chunk.project or event.get("run_id") != chunk.run
        ):
            raise BadBody(
                f"{where}, line {number}: run_start of {event.get('project')!r}/"
                f"{event.get('run_id')!r}, another run than the chunk's"
            )
        previous, start = seq, start + len(line) + 1
        chunk.seqs.append(seq)
        chunk.ends.append(start)
