"""waddle/tfevents.py's fast paths agree with its general ones.

The import reads the bulk of a file (one old-style scalar per event) without a general
decoding, checks each record length's CRC once per length, and frames records in batches:
what a user would notice if any of that went wrong is a value read differently, a corrupt
record taken, or a sound one lost. Each fast path is checked here against the slow way.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waddle import tfevents

tags = st.text(min_size=0, max_size=40)
steps = st.integers(min_value=-(2**63), max_value=2**63 - 1)
wall_times = st.floats(allow_nan=True, allow_infinity=True)
values = st.floats(width=32, allow_nan=True, allow_infinity=True)


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (as bit patterns of the floats, which are what is read)."""
    if a is None or b is None:
        return a is b
    step_a, t_a, values_a = a
    step_b, t_b, values_b = b
    pack = struct.Struct("<d").pack
    return (
        step_a == step_b
        and pack(t_a) == pack(t_b)
        and [(tag, kind) for tag, kind, _ in values_a] == [(tag, kind) for tag, kind, _ in values_b]
        and [pack(v) for _, _, v in values_a] == [pack(v) for _, _, v in values_b]
    )


def _general(decoder: tfevents.Decoder, record: bytes):
    """What the decoder's general path makes of ``record`` (its scalar fast path bypassed);
    "error" when it cannot decode it."""
    general = decoder._with_protobuf if decoder.protobuf else decoder._by_hand
    try:
        return general(record)
    except Exception:
        return "error"


def _fast(record: bytes):
    found = tfevents.scalar(record)
    if found is None:
        return None
    step, t, tag, value = found
    return step, t, [(tag, "scalar", value)]


@pytest.fixture(scope="module", params=[False, True], ids=["by hand", "protobuf"])
def decoder(request):
    if request.param:
        pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")
    return tfevents.Decoder(use_protobuf=request.param)


@settings(max_examples=300, deadline=None)
@given(step=steps, wall_time=wall_times, tag=tags, value=values)
def test_a_scalar_event_reads_as_the_general_decoder_reads_it(decoder, step, wall_time, tag, value):
    record = tfevents.scalar_record(step, wall_time, tag, value)[12:-4]  # the event, unframed
    fast = _fast(record)
    general = _general(decoder, record)
    if len(tag.encode()) < 120:  # lengths of one byte: the fast path's own
        assert fast is not None
    if fast is not None:
        assert _same(fast, general), (fast, general)
        assert fast[2][0][0] == tag and fast[0] == step


@settings(max_examples=500, deadline=None)
@given(
    step=steps,
    tag=tags,
    value=values,
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=3),
    cut=st.integers(min_value=0, max_value=4),
)
def test_a_damaged_event_is_read_as_the_general_decoder_reads_it_or_left_to_it(
    decoder, step, tag, value, edits, cut
):
    """Any bytes the fast path takes, it reads as the general decoder does (the rest it
    leaves to the general decoder): a tag seen before must not stand in for other bytes."""
    record = bytearray(tfevents.scalar_record(step, 1.7e9, tag, value)[12:-4])
    tfevents.scalar(bytes(record))  # the tag's bytes now known to the fast path
    for where, byte in edits:
        record[where % len(record)] = byte
    record = bytes(record[: len(record) - cut])
    fast = _fast(record)
    if fast is not None:
        assert _same(fast, _general(decoder, record))


def test_a_step_whose_tenth_varint_byte_carries_more_than_64_bits_reads_as_protobuf_does(
    decoder,
):
    # Step -1 is ten varint bytes ending in 0x01; a damaged 0x03 adds a bit past 64, which
    # protobuf drops (hypothesis found the fast path reading 2**64 - 1 instead).
    record = tfevents.scalar_record(-1, 1.7e9, "loss", 0.5)[12:-4]
    tenth = record.index(b"\xff" * 9 + b"\x01") + 9
    damaged = record[:tenth] + b"\x03" + record[tenth + 1 :]
    assert _fast(damaged)[0] == _general(decoder, damaged)[0] == -1


def test_the_decoder_reads_a_scalar_as_its_general_path_does(decoder):
    record = tfevents.scalar_record(300, 1.7e9, "loss", 0.5)[12:-4]
    assert decoder(record) == _general(decoder, record) == (300, 1.7e9, [("loss", "scalar", 0.5)])


def _reference_records(data: bytes) -> tuple[list[tuple[int, bytes]], list[tuple[int, str]]]:
    """Records and problems, framing the slow way: every CRC computed."""
    found, problems, position = [], [], 0
    while position < len(data):
        if len(data) - position < 12:
            problems.append((position, "torn"))
            break
        (length,) = struct.unpack_from("<Q", data, position)
        (length_crc,) = struct.unpack_from("<I", data, position + 8)
        if tfevents.masked_crc(data[position : position + 8]) != length_crc:
            problems.append((position, "corrupt record length"))
            break
        end = position + 12 + length + 4
        if end > len(data):
            problems.append((position, "torn"))
            break
        payload = data[position + 12 : end - 4]
        if tfevents.masked_crc(payload) != struct.unpack_from("<I", data, end - 4)[0]:
            problems.append((position, "fails its CRC"))
        else:
            found.append((position, payload))
        position = end
    return found, problems


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.sampled_from([b"", b"a", b"bb", b"x" * 40, b"y" * 40]), max_size=30),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=3),
    cut=st.integers(min_value=0, max_value=60),
    batch_bytes=st.integers(min_value=1, max_value=200),
)
def test_records_framed_in_batches_are_the_records_framed_one_by_one(
    tmp_path_factory, payloads, edits, cut, batch_bytes
):
    """Lengths repeat (their CRC is checked once per length): a record whose length's CRC
    is damaged still ends the file there, one whose data is damaged is still skipped."""
    data = bytearray(b"".join(tfevents.frame(payload) for payload in payloads))
    for where, byte in edits:
        if data:
            data[where % len(data)] = byte
    data = bytes(data[: max(len(data) - cut, 0)])
    path = tmp_path_factory.mktemp("frames") / "events.out.tfevents.1"
    path.write_bytes(data)
    problems: list[tuple[int, str]] = []
    batches = list(
        tfevents.record_batches(
            path, lambda _, offset, reason: problems.append((offset, reason)), batch_bytes
        )
    )
    expected, expected_problems = _reference_records(data)
    assert [record for batch in batches for record in batch] == expected
    assert all(batches)
    assert [offset for offset, _ in problems] == [offset for offset, _ in expected_problems]
    for (_, reason), (_, kind) in zip(problems, expected_problems, strict=True):
        assert kind in reason


def test_a_negative_step_reads_as_tensorboard_writes_it():
    record = tfevents.scalar_record(-5, 1.7e9, "loss", 1.0)[12:-4]
    assert tfevents.scalar(record) == (-5, 1.7e9, "loss", 1.0)
    assert not math.isnan(tfevents.scalar(record)[3])
