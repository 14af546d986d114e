"""EMVCo merchant-presented QR: CRC-16/CCITT-FALSE, TLV decoding, payload building."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.crc import crc16_ccitt_false
from kiosk.payments.emvco import QrPayloadError, decode, merchant_payload, parse_tlv, tlv, with_crc

PROMPTPAY = "00020101021129370016A000000677010111011300668999999995802TH53037646304FE29"


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_promptpay_example_decodes_with_nested_template() -> None:
    fields = decode(PROMPTPAY)
    by_tag = {f.tag: f for f in fields}
    assert [f.tag for f in fields] == ["00", "01", "29", "58", "53", "63"]
    assert by_tag["00"].value == "01"
    assert by_tag["01"].value == "11"               # static
    assert by_tag["58"].value == "TH"
    assert by_tag["53"].value == "764"
    assert by_tag["63"].value == "FE29"
    account = by_tag["29"]
    assert len(account.value) == 37
    assert [(c.tag, c.value) for c in account.children] == [
        ("00", "A000000677010111"), ("01", "0066899999999")]
    assert by_tag["58"].children == ()


def test_promptpay_crc_lowercase_accepted() -> None:
    assert decode(PROMPTPAY[:-4] + PROMPTPAY[-4:].lower())[0].tag == "00"


def _tags(fields):  # type: ignore[no-untyped-def]
    return {f.tag: f for f in fields}


def test_merchant_payload_round_trip() -> None:
    payload = merchant_payload(
        scheme_tag=28, scheme_id="ph.ppmi.p2m", merchant_id="KIOSKDEMO0001", mcc="4814",
        currency_numeric=608, amount_text="150.00", country="PH", name="TOPUP KIOSK",
        city="MANILA", reference="K0001-000042", terminal="K0001")
    fields = _tags(decode(payload))
    assert fields["00"].value == "01"
    assert fields["01"].value == "12"               # dynamic: it has an amount
    assert [(c.tag, c.value) for c in fields["28"].children] == [
        ("00", "ph.ppmi.p2m"), ("01", "KIOSKDEMO0001")]
    assert fields["52"].value == "4814"
    assert fields["53"].value == "608"
    assert fields["54"].value == "150.00"
    assert fields["58"].value == "PH"
    assert fields["59"].value == "TOPUP KIOSK"
    assert fields["60"].value == "MANILA"
    assert [(c.tag, c.value) for c in fields["62"].children] == [
        ("05", "K0001-000042"), ("07", "K0001")]
    assert payload[-8:-4] == "6304"
    assert int(payload[-4:], 16) == crc16_ccitt_false(payload[:-4].encode())


def test_static_payload_without_amount_truncates_names() -> None:
    payload = merchant_payload(
        scheme_tag=26, scheme_id="x", merchant_id="m", mcc="4814", currency_numeric=608,
        amount_text=None, country="PH", name="N" * 40, city="C" * 30)
    fields = _tags(decode(payload))
    assert fields["01"].value == "11"
    assert "54" not in fields and "62" not in fields
    assert fields["59"].value == "N" * 25
    assert fields["60"].value == "C" * 15


def test_tlv_encoding() -> None:
    assert tlv(0, "01") == "000201"
    assert tlv("54", "150.00") == "5406150.00"
    with pytest.raises(QrPayloadError):
        tlv(62, "x" * 100)


def test_decode_rejects_bad_crc() -> None:
    bad = PROMPTPAY[:-4] + "FE28"
    with pytest.raises(QrPayloadError, match="CRC"):
        decode(bad)
    # A changed character in the body is caught by the CRC too.
    tampered = PROMPTPAY.replace("5802TH", "5802PH")
    with pytest.raises(QrPayloadError, match="CRC"):
        decode(tampered)


@pytest.mark.parametrize("payload", ["", "6304", "000201", PROMPTPAY[:-1], PROMPTPAY[:-10]])
def test_decode_rejects_truncated(payload: str) -> None:
    with pytest.raises(QrPayloadError):
        decode(payload)


def test_decode_rejects_length_running_past_the_end() -> None:
    # Correct CRC, but tag 59 claims 20 characters and the payload ends before that.
    body = "000201" + "010211" + "5920ABC"
    with pytest.raises(QrPayloadError, match="runs past the end|truncated|bad tag"):
        decode(with_crc(body))


def test_decode_rejects_bad_length_digits() -> None:
    with pytest.raises(QrPayloadError, match="bad tag or length"):
        decode(with_crc("0002015AXXhello"))


def test_decode_rejects_bad_nested_template() -> None:
    # Template 29 holds text that is not TLV.
    with pytest.raises(QrPayloadError, match="inside tag 29"):
        decode(with_crc("000201" + tlv(29, "hello world")))


def test_decode_requires_payload_format_indicator_first() -> None:
    with pytest.raises(QrPayloadError, match="tag 00"):
        decode(with_crc("010211000201"))


def test_parse_tlv_plain() -> None:
    fields = parse_tlv("0002015802PH")
    assert [(f.tag, f.value) for f in fields] == [("00", "01"), ("58", "PH")]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_decode_arbitrary_text_raises_only_qr_payload_error(text: str) -> None:
    try:
        decode(text)
    except QrPayloadError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789ABCDEF", max_size=60))
def test_decode_arbitrary_body_with_valid_crc(body: str) -> None:
    # Valid CRCs reach the TLV parser: it must reject with QrPayloadError or decode cleanly.
    try:
        fields = decode(with_crc(body))
    except QrPayloadError:
        return
    assert fields[0].tag == "00"
    assert fields[-1].tag == "63"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii", min_codepoint=32, max_codepoint=126),
               min_size=1, max_size=25),
       st.integers(min_value=1, max_value=10**8))
def test_payload_round_trip_property(name: str, amount: int) -> None:
    amount_text = f"{amount // 100}.{amount % 100:02d}"
    payload = merchant_payload(
        scheme_tag=28, scheme_id="ph.ppmi.p2m", merchant_id="M1", mcc="4814",
        currency_numeric=608, amount_text=amount_text, country="PH", name=name, city="MANILA")
    fields = _tags(decode(payload))
    assert fields["54"].value == amount_text
    assert fields["59"].value == name


@pytest.mark.parametrize("payload", ["³0³2630406A5", "0002٠١6304ABCD", "00²2016304FFFF"])
def test_non_ascii_digits_are_the_modules_own_error(payload: str) -> None:
    """str.isdigit() takes superscripts and Arabic-Indic digits; int() then refuses them
    with a bare ValueError. A payload with them is a QrPayloadError like any bad one."""
    with pytest.raises(QrPayloadError):
        decode(payload)
    if not payload[:4].isascii():               # in a tag or a length, not in a value
        with pytest.raises(QrPayloadError, match="bad tag or length"):
            parse_tlv(payload)
