"""ZVT codec: frames, CRC, APDUs, bitmaps and messages, against published vectors; the
decoder fed whole, in halves and byte by byte; fuzzing that nothing but ZvtError escapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.card_terminal import pan, zvt
from drivers.card_terminal.zvt import (
    ACK,
    NAK,
    Apdu,
    BadFrame,
    Channel,
    Code,
    Control,
    Decoder,
    Frame,
    ZvtError,
)

H = bytes.fromhex

# Frames from wirelane/ecrterm tests/test_data_encoding.py (captured from real terminals'
# logs), and the completion after a status enquiry from its test_parsing.py.
VECTORS = [
    ("registration 123456 BA EUR", zvt.registration("123456", 0xBA, 978, service=None),
     "10 02 06 00 06 12 34 56 BA 09 78 10 03 24 C3"),
    ("authorisation 110.00 EUR (a 10 doubled)", zvt.authorisation(11000, 978),
     "10 02 06 01 0A 04 00 00 00 01 10 10 00 49 09 78 10 03 F2 FF"),
    ("print line", zvt.print_line("Gesamt      0       0,00"),
     ("10 02 06 D1 19 00 47 65 73 61 6D 74 20 20 20 20 20 20 30 20 20 20 20 20 20 20 30 2C 30 30"
      " 10 03 B5 AB")),
    ("positive", zvt.positive(), "10 02 80 00 00 10 03 F5 1F"),
    ("negative 9C", zvt.negative(0x9C), "10 02 84 9C 00 10 03 C3 41"),
    ("status enquiry", zvt.status_enquiry("123456"), "10 02 05 01 03 12 34 56 10 03 E0 43"),
    ("diagnosis 06 70", zvt.encode_apdu(0x06, 0x70), "10 02 06 70 00 10 03 D9 F9"),
    ("completion with version", H("06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00"),
     "10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11"),
]


def test_crc_is_kermit():
    assert zvt.crc16(b"123456789") == 0x2189
    assert zvt.crc16(b"") == 0


@pytest.mark.parametrize("name,apdu,wire", VECTORS, ids=[v[0] for v in VECTORS])
def test_frames_match_published_vectors(name, apdu, wire):
    assert zvt.frame(apdu) == H(wire)


@pytest.mark.parametrize("name,apdu,wire", VECTORS, ids=[v[0] for v in VECTORS])
@pytest.mark.parametrize("split", ["whole", "halves", "bytes"])
def test_decoder_takes_frames_in_any_pieces(name, apdu, wire, split):
    data = H(wire) * 2
    pieces = {"whole": [data], "halves": [data[:len(data) // 2], data[len(data) // 2:]],
              "bytes": [bytes((b,)) for b in data]}[split]
    d = Decoder()
    got = [item for piece in pieces for item in d.feed(piece)]
    assert got == [Frame(apdu), Frame(apdu)]


def test_every_dle_is_doubled_and_undoubled():
    apdu = zvt.encode_apdu(0x06, 0xD1, b"\x10\x10\x02\x10\x03x")
    wire = zvt.frame(apdu)
    assert wire[2:-4] == H("06 D1 06 10 10 10 10 02 10 10 03 78")   # 10 doubled, 02/03 not
    assert Decoder().feed(wire) == [Frame(apdu)]


def test_garbage_ack_nak_and_bad_frames():
    good = zvt.frame(zvt.positive())
    bad_crc = good[:-1] + bytes((good[-1] ^ 1,))
    d = Decoder()
    out = d.feed(b"\x00\xff\x42" + bytes((ACK,)) + b"\x10\x42" + bytes((NAK,)) + bad_crc
                 + b"\x10\x02\x80\x10\x77" + good)
    assert out == [Control(ACK), Control(NAK), BadFrame("bad CRC"),
                   BadFrame("10 77 inside a frame"), Frame(zvt.positive())]
    assert d.garbage_bytes == 5 and d.bad_frames == 2


def test_a_frame_cut_off_by_a_new_frame_is_dropped_without_nak():
    d = Decoder()
    assert d.feed(b"\x10\x02\x04\xff\x01" + zvt.frame(zvt.positive())) == [Frame(zvt.positive())]
    assert d.bad_frames == 0 and not d.in_frame


def test_too_long_a_frame_is_bad():
    d = Decoder(max_apdu=8)
    assert d.feed(b"\x10\x02" + bytes(9)) == [BadFrame("longer than the largest APDU")]
    assert d.feed(zvt.frame(zvt.positive())) == [Frame(zvt.positive())]


# ---------------------------------------------------------------------------- APDUs
def test_apdu_length_one_byte_and_extended():
    assert zvt.encode_apdu(6, 1, bytes(254))[2] == 254
    long = zvt.encode_apdu(6, 0xD3, bytes(300))
    assert long[2:5] == b"\xff\x2c\x01"                   # FF + little-endian 300
    assert zvt.decode_apdu(long) == Apdu(6, 0xD3, bytes(300))
    assert zvt.encode_apdu(6, 0xD3, bytes(255))[2:5] == b"\xff\xff\x00"


@pytest.mark.parametrize("raw,message", [
    (b"\x06", "at least 3"), (b"\x06\x01\x05\x00", "says 5 data bytes, has 1"),
    (b"\x06\x01\xff\x01", "cut short"), (b"\x80\x00\x00\x00", "says 0 data bytes, has 1"),
])
def test_malformed_apdus_raise_zvt_error(raw, message):
    with pytest.raises(ZvtError, match=message):
        zvt.decode_apdu(raw)


@pytest.mark.parametrize("call", [
    lambda: zvt.authorisation(0), lambda: zvt.authorisation(10**12),
    lambda: zvt.registration("12345", 0xBA), lambda: zvt.reversal("000000", "12345"),
    lambda: zvt.bcd("12a", 2), lambda: zvt.encode_apdu(0x100, 0),
    lambda: zvt.encode_apdu(6, 0, bytes(0x10000)), lambda: zvt.llvar(bytes(100)),
])
def test_misuse_raises_zvt_error(call):
    with pytest.raises(ZvtError):
        call()


def test_registration_carries_currency_config_and_service_byte():
    apdu = zvt.decode_apdu(zvt.registration("000000", 0xBE, 608))
    assert apdu.data == H("00 00 00 BE 06 08 03 01")
    cmd = zvt.parse_command(apdu)
    assert (cmd.password, cmd.config, cmd.currency, cmd.service) == ("000000", 0xBE, 608, 1)


def test_commands_parse_back():
    auth = zvt.parse_command(zvt.decode_apdu(zvt.authorisation(15000, 608)))
    assert (auth.code, auth.amount, auth.currency) == (Code.AUTHORISATION, 15000, 608)
    rev = zvt.parse_command(zvt.decode_apdu(zvt.reversal("123456", "0042")))
    assert (rev.code, rev.password, rev.receipt_no) == (Code.REVERSAL, "123456", "0042")
    assert zvt.decode_apdu(zvt.repeat_receipt("000000")) == Apdu(6, 0x20, bytes(3))
    assert zvt.decode_apdu(zvt.ecr_abort()) == Apdu(6, 0xB0)
    with pytest.raises(ZvtError, match="password"):
        zvt.parse_command(Apdu(6, 0x30, b"\x00"))


# ---------------------------------------------------------------------------- messages
# 04 0F from ecrterm tests/test_parsing.py: real terminals, with PAN (BMP 22), card
# sequence number, expiry, additional text and a TLV container.
REAL_STATUS = [
    ("04 0F 37 27 00 04 00 00 00 00 40 00 49 09 78 0C 09 38 48 0D 04 25 22 F1 F1 59 66 66 66 66"
     " D2 00 21 22 01 00 17 00 01 87 01 75 0B 61 39 95 19 40 29 60 09 99 14 0E 05 12 8A 02"),
    ("040FCE2700040000000010004909780C1230050D062922F0F8474843EEEEEE77438700023B38383931353000"
    "000B000733196029420030360E18018A0A8C038BF0F556495341002A3435353630303030303539392020203C"
    "F0F7F341532D544944203D2031334630303031330D41532D50726F632D436F6465203D203230203930332030"
    "300D436170742E2D5265662E3D20303030300D41494435393A20383039323538062B4102000A490200031502"
    "4445600F4204564953414307A00000000310102F0C1F1001001F1101011F120102"),
]


def test_real_status_information_is_read_without_the_card_number():
    first = zvt.parse_status_information(zvt.decode_apdu(H(REAL_STATUS[0])))
    assert (first.result_code, first.amount, first.currency, first.trace, first.receipt_no,
            first.terminal_id, first.time, first.date) == (
        0, 4000, 978, "613995", "0175", "60099914", "093848", "0425")
    second = zvt.parse_status_information(zvt.decode_apdu(H(REAL_STATUS[1])))
    assert second.approved and second.amount == 1000 and second.card_name == "VISA"
    assert second.auth_code == "889150" and second.card_type == 10
    assert second.vu_number == "455600000599" and second.stopped is None
    for info in (first, second):
        assert "5966" not in repr(info) and "4748" not in repr(info)   # PAN digits


def test_status_information_round_trip_and_reversal_flag():
    info = zvt.StatusInformation(result_code=0, amount=15000, currency=608, trace="000123",
                                 original_trace="000122", time="101112", date="0102",
                                 terminal_id="52500038", auth_code="A1B2C3", receipt_no="0042",
                                 card_type=6, card_name="Mastercard", payment_type=0x60,
                                 additional_text="AS-TID 13F00013")
    back = zvt.parse_status_information(zvt.decode_apdu(zvt.status_information(info)))
    assert back == info and back.reversal and back.approved


def test_unknown_bmp_stops_parsing_and_keeps_what_came_before():
    raw = zvt.encode_apdu(4, 0x0F, H("27 00 04 00 00 00 01 50 00 5F 01 02 87 00 01"))
    info = zvt.parse_status_information(zvt.decode_apdu(raw))
    assert info.result_code == 0 and info.amount == 15000 and info.receipt_no == ""
    assert info.stopped == "unknown BMP 5F"


@pytest.mark.parametrize("data,stopped", [
    ("27 00 8B F1", "BMP 8B: length header cut short"),
    ("27 00 8B F1 F9 41", "BMP 8B cut short"),
    ("27 00 8B 11 11", "BMP 8B: bad L*VAR length byte 11"),
    ("27 00 06 83 00 00 00", "BMP 06: bad TLV length 83 00 00"),
    ("27 00 04 00 00", "BMP 04 cut short"),
])
def test_broken_bmps_stop_cleanly(data, stopped):
    bmps, why = zvt.parse_bmps(H(data))
    assert bmps == {0x27: b"\x00"} and why == stopped


def test_non_bcd_amount_is_an_error():
    with pytest.raises(ZvtError, match="not BCD"):
        zvt.parse_status_information(Apdu(4, 0x0F, H("04 00 00 00 00 0A 00")))


def test_tlv_container_with_long_length_is_stepped_over():
    bmps, why = zvt.parse_bmps(H("06 81 03 01 02 03 27 6C"))
    assert why is None and bmps[0x27] == b"\x6c" and bmps[0x06] == H("01 02 03")


def test_card_data_bmps_are_never_kept_but_the_last_four_digits_of_the_pan():
    data = H("22 F0 F8 41 11 11 11 11 11 11 19 23 F0 F2 12 34 0E 24 12 17 00 01 3A 12 3F 27 00")
    bmps, why = zvt.parse_bmps(data)
    assert why is None and bmps == {0x22: b"1119", 0x27: b"\x00"}


# BMP 22: LLVAR packed BCD, E = a masked digit, F = the pad of an odd count of digits.
@pytest.mark.parametrize("value,last4", [
    ("47 61 73 EE EE EE 01 19", "0119"),              # 476173EEEEEE0119, masked by the PT
    ("47 61 73 90 01 01 01 19", "0119"),              # the same number in the clear
    ("37 64 12 34 56 78 90 1F", "8901"),              # 15 digits, padded with F
    ("EE EE EE EE EE EE 43 21", "4321"),              # all but the last four masked
    ("59 66 66 66 66 D2 00 21 22 01 00", ""),         # girocard EF_ID (ecrterm sample)
    ("47 61 73 EE EE EE EE EE", ""),                  # the tail masked too
    ("12 34 56", ""),                                 # too short for a card number
    ("", ""),
])
def test_pan_last_four_digits(value, last4):
    assert pan.last4(H(value)) == last4


@pytest.mark.parametrize("number", ["476173EEEEEE0119", "4761739001010119", "376412345678901"])
def test_status_information_keeps_only_the_last_four_digits_of_the_pan(number):
    info = zvt.StatusInformation(result_code=0, amount=100, receipt_no="0007")
    raw = zvt.status_information(info, pan.pan_bmp(number))
    assert raw.hex().upper().find(number.upper()[:6]) > 0     # the whole number is on the line
    back = zvt.parse_status_information(zvt.decode_apdu(raw))
    assert back.card_last4 == number[-4:] and back.receipt_no == "0007"
    assert number[:6] not in repr(back) and number[-5:] not in repr(back)


def test_pan_bmp_encoding():
    assert pan.pan_bmp("476173EEEEEE0119") == H("22 F0 F8 47 61 73 EE EE EE 01 19")
    assert pan.pan_bmp("376412345678901") == H("22 F0 F8 37 64 12 34 56 78 90 1F")
    with pytest.raises(ValueError):
        pan.pan_bmp("4761-73")


def test_intermediate_status_texts():
    real = zvt.parse_intermediate_status(zvt.decode_apdu(H(
        "04 FF 1E 0A 01 06 1A 24 18 07 16 42 69 74 74 65 20 4B 61 72 74 65 20 65 69 6E 73 74 65"
        " 63 6B 65 6E")))                     # ecrterm test_parsing: insert card, timeout 1
    assert (real.code, real.timeout_s) == (0x0A, 1) and "card" in real.text
    assert "PIN" in zvt.intermediate_text(0x01)
    assert zvt.intermediate_text(0x0B) == "Please remove your card"
    removing = zvt.intermediate_text(0x4A)
    assert removing.startswith("Insert") and "remove" in removing
    assert zvt.intermediate_text(0x99) == "Please wait"
    with pytest.raises(ZvtError):
        zvt.parse_intermediate_status(Apdu(4, 0xFF))


def test_print_lines_attributes_and_masked_numbers():
    last = zvt.parse_print_line(zvt.decode_apdu(zvt.print_line("THANK YOU", 0x81)))
    assert last == zvt.PrintLine("THANK YOU", 0x81) and last.last
    assert not zvt.PrintLine("x", 0x80).last and not zvt.PrintLine("", 0xFF).last
    assert zvt.parse_print_line(Apdu(6, 0xD1, b"\xff\x03")).text == ""
    masked = zvt.parse_print_line(zvt.decode_apdu(zvt.print_line("Card ############1234")))
    assert masked.text == "Card ************1234"
    full = zvt.parse_print_line(zvt.decode_apdu(zvt.print_line("PAN 5413 3300 8909 9130")))
    assert full.text == "PAN ************9130"
    zvt_masked = zvt.parse_print_line(zvt.decode_apdu(zvt.print_line("Nr 476173EEEEEE0119")))
    assert zvt_masked.text == "Nr ************0119"


@pytest.mark.parametrize("line,redacted", [
    ("476173EEEEEE0119", "************0119"),
    ("4761 73EE EEEE 0119 Visa", "************0119 Visa"),
    ("Karte 4761739001010119", "Karte ************0119"),
    ("XXXXXXXXXXXX0119", "************0119"),
    ("4761 7390 0101 0119", "************0119"),
    ("476173EEEEEEEEEE", "****************"),       # no last four digits: none kept
    ("EEEEEEEEEEEEEEEE", "EEEEEEEEEEEEEEEE"),       # no digit at all: no number
])
def test_redaction_keeps_at_most_the_last_four_digits(line, redacted):
    assert zvt.redact(line) == redacted


@pytest.mark.parametrize("line", ["VU 455600000599", "01.02.2026 10:11", "AMOUNT PHP 1500.00",
                                  "TID 52500038  TRACE 000123", "RECEIPT 0042"])
def test_redaction_leaves_ordinary_numbers(line):
    assert zvt.redact(line) == line


def test_completion_forms():
    reg = zvt.parse_completion(zvt.decode_apdu(H(
        "06 0F 11 19 00 29 52 00 12 33 49 09 78 06 05 27 03 14 01 FF")))   # ecrterm
    assert (reg.terminal_id, reg.currency, reg.status_byte) == ("52001233", 978, 0)
    enq = zvt.parse_completion(zvt.decode_apdu(H("06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00")),
                               after_status_enquiry=True)
    assert (enq.sw_version, enq.terminal_status) == ("2.14.15", 0)
    ours = zvt.completion(sw_version="SIM", terminal_status=0, terminal_id="52500038")
    back = zvt.parse_completion(zvt.decode_apdu(ours), after_status_enquiry=True)
    assert (back.sw_version, back.terminal_status, back.terminal_id) == ("SIM", 0, "52500038")
    assert zvt.parse_abort(zvt.decode_apdu(zvt.abort(0x6C))) == 0x6C
    assert zvt.parse_abort(Apdu(6, 0x1E)) == zvt.RESULT_SYSTEM_ERROR


# ---------------------------------------------------------------------------- link layer
def test_channel_acks_frames_and_repeats_on_nak_then_fails():
    a = Channel(repeats=2)
    a.send(zvt.authorisation(100))
    first = a.data_to_send()
    assert first == zvt.frame(zvt.authorisation(100)) and a.awaiting_ack
    with pytest.raises(ZvtError, match="waiting for its ACK"):
        a.send(zvt.positive())
    assert a.receive_data(bytes((NAK,))) == [] and a.data_to_send() == first
    assert a.ack_timeout() == [] and a.data_to_send() == first
    assert a.receive_data(bytes((NAK,))) == [zvt.SendFailed("NAK after 3 tries")]
    assert not a.awaiting_ack and a.retransmissions == 2


def test_channel_receives_while_waiting_for_its_ack():
    ecr, pt = Channel(), Channel()
    ecr.send(zvt.ecr_abort())
    pt.send(zvt.intermediate_status(0x0A))            # the two frames cross on the line
    ecr_frame, pt_frame = ecr.data_to_send(), pt.data_to_send()
    assert pt.receive_data(ecr_frame) == [zvt.Received(Apdu(6, 0xB0))]
    assert ecr.receive_data(pt_frame) == [zvt.Received(Apdu(4, 0xFF, b"\x0a"))]
    assert ecr.receive_data(pt.data_to_send()) == [zvt.Delivered()]
    assert pt.receive_data(ecr.data_to_send()) == [zvt.Delivered()]
    assert ecr.stray_controls == pt.stray_controls == 0


def test_channel_naks_a_bad_frame_and_acks_a_malformed_apdu():
    c = Channel()
    bad = zvt.frame(zvt.positive())[:-1] + b"\x00"
    assert c.receive_data(bad) == [] and c.data_to_send() == bytes((NAK,))
    events = c.receive_data(zvt.frame(b"\x06\x01\x09"))
    assert isinstance(events[0], zvt.Malformed) and c.data_to_send() == bytes((ACK,))
    assert c.receive_data(bytes((ACK,))) == [] and c.stray_controls == 1


# ---------------------------------------------------------------------------- fuzzing
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_decoder_never_raises_and_keeps_up(chunks):
    d = Decoder(max_apdu=512)
    for chunk in chunks:
        d.feed(chunk)
    assert d.feed(zvt.frame(zvt.positive()))[-1] == Frame(zvt.positive())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=300))
def test_frames_survive_surrounding_noise(before, after, data):
    apdu = zvt.encode_apdu(0x06, 0xD1, data)
    noise = bytes(b for b in before if b != zvt.DLE)  # a lone 10 may join the frame start
    got = Decoder().feed(noise + zvt.frame(apdu) + after)
    assert Frame(apdu) in got


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_apdu_and_message_parsers_raise_only_zvt_error(raw):
    for parse in (zvt.decode_apdu, zvt.parse_bmps):
        try:
            parse(raw)
        except ZvtError:
            pass
    apdu = Apdu(raw[0] if raw else 4, raw[1] if len(raw) > 1 else 0x0F, raw[2:])
    for parse in (zvt.parse_status_information, zvt.parse_command, zvt.parse_print_line,
                  zvt.parse_intermediate_status, zvt.parse_abort,
                  lambda a: zvt.parse_completion(a, True), zvt.parse_completion):
        try:
            parse(apdu)
        except ZvtError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_apdu_round_trip(data):
    assert zvt.decode_apdu(zvt.encode_apdu(0x04, 0x0F, data)) == Apdu(0x04, 0x0F, data)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 999_999_999_999), st.sampled_from([608, 156, 978]))
def test_authorisation_round_trip(amount, currency):
    cmd = zvt.parse_command(zvt.decode_apdu(zvt.authorisation(amount, currency)))
    assert (cmd.amount, cmd.currency) == (amount, currency)
