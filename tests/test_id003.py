"""JCM ID-003 framing, statuses and currency table (drivers/bill/id003.py), no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.bill import id003
from drivers.bill.id003 import (Command, Decoder, Denomination, Frame, ProtocolError, Status,
                                encode, parse_status)

# (cmd, data, the bytes on the wire) -- from the protocol notes, cross-checked with lamassu.
VECTORS = [
    (Command.STATUS_REQUEST, b"", "FC 05 11 27 56"),
    (Command.ACK, b"", "FC 05 50 AA 05"),
    (Command.RESET, b"", "FC 05 40 2B 15"),
    (Command.STACK_1, b"", "FC 05 41 A2 04"),
    (Command.RETURN, b"", "FC 05 43 B0 27"),
    (Command.INHIBIT, b"\x01", "FC 06 C3 01 8D C7"),
    (Command.INHIBIT, b"\x00", "FC 06 C3 00 04 D6"),
]
# Device answers built with encode(), to have frames with data of several lengths too.
ANSWERS = [
    (Status.ESCROW, b"\x63"),
    (Status.REJECTING, b"\x79"),
    (Command.GET_CURRENCY, id003.encode_currency_table({0x61: 2000, 0x62: 100000}, 0xF0, 2)),
    (Command.GET_VERSION, b"i(PHL)100-SS ID003-05V000-00 01JAN25 SIM1"),
]
ALL_FRAMES = [(c, d, bytes.fromhex(h)) for c, d, h in VECTORS] + \
             [(c, d, encode(c, d)) for c, d in ANSWERS]
IDS = [f"{c:02x}-{d.hex()[:8]}" for c, d, _ in ALL_FRAMES]


@pytest.mark.parametrize("cmd,data,wire", [(c, d, bytes.fromhex(h)) for c, d, h in VECTORS])
def test_known_vectors_encode(cmd: int, data: bytes, wire: bytes) -> None:
    assert encode(cmd, data) == wire
    assert id003.crc16_kermit(wire[:-2]) == int.from_bytes(wire[-2:], "little")


def test_crc16_kermit_check_value() -> None:
    assert id003.crc16_kermit(b"123456789") == 0x2189     # the catalogued KERMIT check
    assert id003.crc16_kermit(b"") == 0


@pytest.mark.parametrize("cmd,data,wire", ALL_FRAMES, ids=IDS)
def test_decoded_whole(cmd: int, data: bytes, wire: bytes) -> None:
    assert Decoder().feed(wire) == [Frame(cmd, data)]


@pytest.mark.parametrize("cmd,data,wire", ALL_FRAMES, ids=IDS)
def test_decoded_in_two_halves_at_every_split(cmd: int, data: bytes, wire: bytes) -> None:
    for cut in range(1, len(wire)):
        decoder = Decoder()
        assert decoder.feed(wire[:cut]) == []
        assert decoder.feed(wire[cut:]) == [Frame(cmd, data)]
        assert decoder.pending == 0


@pytest.mark.parametrize("cmd,data,wire", ALL_FRAMES, ids=IDS)
def test_decoded_byte_by_byte(cmd: int, data: bytes, wire: bytes) -> None:
    decoder = Decoder()
    out = [f for i in range(len(wire)) for f in decoder.feed(wire[i:i + 1])]
    assert out == [Frame(cmd, data)]
    assert (decoder.garbage_bytes, decoder.bad_crc, decoder.bad_length) == (0, 0, 0)


def test_frame_to_bytes_and_back() -> None:
    frame = Frame(Status.ESCROW, b"\x61")
    assert Decoder().feed(frame.to_bytes()) == [frame]


def test_garbage_before_and_between_frames() -> None:
    stream = b"\x00\x13\xaa" + encode(0x11) + b"\x55\x66" + encode(0x13, b"\x62") + b"\x01"
    decoder = Decoder()
    assert decoder.feed(stream) == [Frame(0x11), Frame(0x13, b"\x62")]
    assert decoder.garbage_bytes == 6


def test_bad_crc_is_dropped_and_the_next_frame_found() -> None:
    bad = bytearray(encode(0x13, b"\x61"))
    bad[-1] ^= 0x01
    decoder = Decoder()
    assert decoder.feed(bytes(bad) + encode(0x16)) == [Frame(0x16)]
    assert decoder.bad_crc == 1


def test_bad_crc_frame_hiding_a_sync_inside() -> None:
    """The scan resumes right after the dropped FC, so a frame inside the bad one is found."""
    inner = encode(0x11)
    outer = bytearray(encode(0x88, b"\x00" + inner))
    outer[-2] ^= 0xFF
    assert Decoder().feed(bytes(outer)) == [Frame(0x11)]


@pytest.mark.parametrize("lng", [0, 1, 4, 251, 255])
def test_absurd_length_resyncs(lng: int) -> None:
    decoder = Decoder()
    assert decoder.feed(bytes((0xFC, lng)) + encode(0x1A)) == [Frame(0x1A)]
    assert decoder.bad_length == 1


def test_stray_sync_with_long_length_does_not_swallow_the_next_frames() -> None:
    decoder = Decoder()
    frames = decoder.feed(b"\xfc\xf0" + encode(0x11))
    assert frames == [Frame(0x11)]
    assert decoder.garbage_bytes == 2
    assert decoder.feed(encode(0x1A)) == [Frame(0x1A)]


def test_incomplete_frame_waits() -> None:
    decoder = Decoder()
    wire = encode(0x13, b"\x61")
    assert decoder.feed(wire[:4]) == []
    assert decoder.pending == 4
    assert decoder.feed(wire[4:]) == [Frame(0x13, b"\x61")]


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(ProtocolError):
        encode(0x100)
    with pytest.raises(ProtocolError):
        encode(0x88, bytes(246))
    assert len(encode(0x88, bytes(245))) == 250


@given(st.binary(max_size=600))
def test_decoder_never_raises_and_yields_only_frames_from_the_input(data: bytes) -> None:
    decoder = Decoder()
    frames = decoder.feed(data)
    for frame in frames:
        assert frame.to_bytes() in data
    assert decoder.pending <= id003.MAX_FRAME


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=8),
       st.binary(max_size=30), st.integers(1, 7))
def test_frames_in_noise_chunked(frames: list[tuple[int, bytes]], noise: bytes,
                                 chunk: int) -> None:
    """Frames separated by noise without FC, fed in chunks, all come out in order."""
    noise = noise.replace(b"\xfc", b"")
    stream = b"".join(noise + encode(c, d) for c, d in frames)
    decoder = Decoder()
    out = [f for i in range(0, len(stream), chunk) for f in decoder.feed(stream[i:i + chunk])]
    assert out == [Frame(c, d) for c, d in frames]


# ---------------------------------------------------------------------------- statuses
NO_DATA = [s for s in Status if s not in (Status.ESCROW, Status.REJECTING, Status.FAILURE)]


@pytest.mark.parametrize("status", NO_DATA, ids=lambda s: s.name)
def test_parse_status_without_data(status: Status) -> None:
    report = parse_status(Frame(status))
    assert report.status is status
    assert report.denomination is report.reject_reason is report.failure_code is None
    assert report.transient == (status in id003.TRANSIENT)
    with pytest.raises(ProtocolError):
        parse_status(Frame(status, b"\x00"))


def test_transient_statuses() -> None:
    assert {s for s in Status if parse_status(Frame(s, b"\x61"[:id003._DATA_BYTES.get(s, 0)]))
            .transient} == {Status.ACCEPTING, Status.STACKING, Status.VEND_VALID,
                            Status.STACKED, Status.REJECTING, Status.RETURNING, Status.PAUSE,
                            Status.INITIALIZE}


def test_parse_escrow() -> None:
    report = parse_status(Frame(Status.ESCROW, b"\x64"))
    assert (report.status, report.denomination, report.transient) == (Status.ESCROW, 0x64, False)


@pytest.mark.parametrize("code,name", sorted(id003.REJECT_REASONS.items()))
def test_parse_rejecting(code: int, name: str) -> None:
    report = parse_status(Frame(Status.REJECTING, bytes((code,))))
    assert (report.reject_code, report.reject_reason, report.reason) == (code, name, name)
    assert report.transient


def test_reject_table_covers_0x71_to_0x7e() -> None:
    assert sorted(id003.REJECT_REASONS) == list(range(0x71, 0x7F))
    assert id003.REJECT_REASONS[0x79] == "inhibit"


def test_unlisted_reject_reason_is_named_not_refused() -> None:
    assert parse_status(Frame(Status.REJECTING, b"\x7f")).reject_reason == "unknown_0x7f"


def test_parse_failure() -> None:
    report = parse_status(Frame(Status.FAILURE, b"\xa2"))
    assert report.failure_code == 0xA2
    assert id003.FAILURE_CODES[0xA2] == "stack_motor"


@pytest.mark.parametrize("frame", [
    Frame(Status.ESCROW), Frame(Status.ESCROW, b"\x61\x00"), Frame(Status.REJECTING),
    Frame(Status.FAILURE), Frame(Status.FAILURE, b"\xa2\xa5"), Frame(0x50), Frame(0xC3, b"\x00"),
    Frame(0x00), Frame(0x8A, b""),
], ids=repr)
def test_parse_status_refuses_malformed(frame: Frame) -> None:
    with pytest.raises(ProtocolError):
        parse_status(frame)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# ---------------------------------------------------------------------------- currency
PHP = {0x61: 2000, 0x62: 5000, 0x63: 10000, 0x64: 20000, 0x65: 50000, 0x66: 100000}


def test_currency_table_round_trip() -> None:
    data = id003.encode_currency_table(PHP, country=0xF0, currency_exponent=2)
    assert len(data) == 24
    assert data[-4:] == bytes((0x66, 0xF0, 100, 1))     # 1000 pesos = 100 x 10^1
    table = id003.parse_currency_table(data)
    assert {code: d.minor(2) for code, d in table.items()} == PHP
    assert {code: d.minor("PHP") for code, d in table.items()} == PHP
    assert table[0x63] == Denomination(0x63, 0xF0, 100, 0)
    assert table[0x63].value == 100


def test_currency_table_layout_skips_empty_slots_and_trailing_bytes() -> None:
    data = bytes((0x61, 0x01, 1, 0, 0x62, 0x01, 0, 0, 0x63, 0x01, 5, 0, 0x00, 0x00))
    table = id003.parse_currency_table(data)
    assert sorted(table) == [0x61, 0x63]
    assert table[0x63].value == 5


def test_currency_table_duplicate_code() -> None:
    with pytest.raises(ProtocolError):
        id003.parse_currency_table(bytes((0x61, 1, 1, 0, 0x61, 1, 5, 0)))


@pytest.mark.parametrize("values", [{0x61: 1999}, {0x61: 0}, {0x61: 25600}, {0x161: 100}])
def test_currency_table_refuses_what_it_cannot_encode(values: dict[int, int]) -> None:
    with pytest.raises(ProtocolError):
        id003.encode_currency_table(values, country=1, currency_exponent=0)


def test_to_minor() -> None:
    assert id003.to_minor(20, 2) == 2000
    assert id003.to_minor(20, "PHP") == 2000
    assert id003.to_minor(500, "JPY") == 500
    with pytest.raises(ProtocolError):
        id003.to_minor(20, "XXX")


def test_denomination_mask() -> None:
    assert id003.denomination_mask(range(0x61, 0x71)) == b"\x00\x00"
    assert id003.denomination_mask([]) == b"\xff\xff"
    mask = id003.denomination_mask([0x61, 0x62, 0x63, 0x64, 0x65, 0x66])
    assert mask == b"\xc0\xff"
    assert id003.inhibited_codes(mask) == frozenset(range(0x67, 0x71))
    assert id003.inhibited_codes(id003.denomination_mask([0x62, 0x69])) == \
        frozenset(range(0x61, 0x71)) - {0x62, 0x69}
    with pytest.raises(ProtocolError):
        id003.denomination_mask([0x60])
    with pytest.raises(ProtocolError):
        id003.inhibited_codes(b"\x00")


def test_command_codes() -> None:
    for setting in id003.SETTING_LENGTHS:
        assert Command(setting - id003.GETTER_OFFSET).name == "GET_" + Command(setting).name
    assert (Command.GET_VERSION, Command.GET_BOOT_VERSION, Command.GET_CURRENCY) == \
        (0x88, 0x89, 0x8A)
    assert Command.ACK not in id003.ANSWERED_WITH_ACK
