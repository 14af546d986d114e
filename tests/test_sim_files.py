"""SIM file codecs: every codec's own vectors decode and round-trip; ICCID checks; fuzzing."""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sim import apdu, files
from drivers.sim.files import AdminData, BadIccid, FileFormatError, Spn

VECTOR_CASES = [(name, i) for name, (_, _, vectors) in files.VECTORS.items()
                for i in range(len(vectors))]


@pytest.mark.parametrize(("name", "index"), VECTOR_CASES,
                         ids=[f"{n}-{i}" for n, i in VECTOR_CASES])
def test_vector_decodes_and_round_trips(name: str, index: int) -> None:
    decode, encode, vectors = files.VECTORS[name]
    raw, value = vectors[index]
    assert decode(raw) == value
    assert encode(value) == raw


def test_every_file_carries_vectors() -> None:
    assert set(files.VECTORS) == {"ICCID", "SPN", "IMSI", "AD", "MSISDN"}
    assert all(len(vectors) >= 2 for _, _, vectors in files.VECTORS.values())


# --- ICCID ------------------------------------------------------------------------------------

def test_protocols_iccid_vector_is_a_valid_iccid() -> None:
    digits = files.decode_iccid(bytes.fromhex("98 88 12 01 00 00 40 03 10 F0"))
    assert digits == "8988211000000430010"
    assert files.check_iccid(digits) == digits


@pytest.mark.parametrize("iccid", ["8988211000000430010",       # 19 digits
                                   "89630100000000000007",      # 20 digits
                                   "898963010000000001" + "0"])  # 19, demo SIM
def test_valid_iccids_pass_the_check(iccid: str) -> None:
    assert files.check_iccid(iccid) == iccid
    assert files.decode_iccid(files.encode_iccid(iccid)) == iccid


def test_twenty_digit_iccid_fills_all_ten_bytes() -> None:
    raw = files.encode_iccid("89630100000000000007")
    assert len(raw) == 10
    assert "f" not in raw.hex()
    assert files.encode_iccid("8988211000000430010")[-1] == 0xF0      # 19 digits: F pad


@pytest.mark.parametrize(("iccid", "why"), [
    ("8988211000000430011", "Luhn"),          # last digit changed
    ("8949000012345678901", "Luhn"),
    ("8888211000000430010", "89"),            # not a telecom ICCID
    ("89882110000004306", "17 digits"),
    ("898821100000043001000", "21 digits"),
    ("89882110000004300A0", "digits"),
    ("", "digits"),
])
def test_bad_iccids_raise_bad_iccid(iccid: str, why: str) -> None:
    with pytest.raises(BadIccid):
        files.check_iccid(iccid)
    assert issubclass(BadIccid, ValueError)


def test_iccid_with_hex_nibbles_or_wrong_size_is_a_format_error() -> None:
    with pytest.raises(FileFormatError):
        files.decode_iccid(bytes.fromhex("98 88 12 01 00 00 40 03 1A F0"))
    with pytest.raises(FileFormatError):
        files.decode_iccid(bytes.fromhex("98 88 12 01 00 00 40 03 10"))
    with pytest.raises(FileFormatError):
        files.decode_iccid(b"\xff" * 10)
    with pytest.raises(FileFormatError):                     # F in the middle
        files.decode_iccid(bytes.fromhex("98 F8 12 01 00 00 40 03 10 F0"))


# --- SPN and alpha fields -------------------------------------------------------------------

def test_spn_gsm_and_ucs2() -> None:
    assert files.decode_spn(b"\x00Globe" + b"\xff" * 11) == Spn("Globe")
    ucs2 = files.encode_spn(Spn("吕宋移动", 0x01))
    assert ucs2[:2] == b"\x01\x80" and len(ucs2) == 17
    assert files.decode_spn(ucs2) == Spn("吕宋移动", 0x01)


def test_gsm_alphabet_basics_and_unknown_codes() -> None:
    assert files.decode_gsm7(b"\x00\x02\x11 !?09Az\x40") == "@$_ !?09Az¡"
    assert files.decode_gsm7(b"\x24") == "¤"                    # 0x24 is not "$" in GSM
    assert files.decode_gsm7(b"A\x9aB") == "A?B"                 # bit 8 set: unknown
    assert files.decode_gsm7(b"\x1b\x65\x1b\x01\x1b") == "€??"   # bad and dangling escapes
    assert files.encode_gsm7("a€[") == b"a\x1b\x65\x1b\x3c"


def test_alpha_too_long_is_refused() -> None:
    with pytest.raises(ValueError):
        files.encode_spn(Spn("Seventeen letters"))
    with pytest.raises(ValueError):
        files.encode_spn(Spn("吕宋移动吕宋移动"))                   # 1 + 16 bytes > 16


GSM_TEXT = st.text(alphabet=st.sampled_from(sorted(
    set(files._GSM_BASIC) - {"\x1b"} | set(files._GSM_EXTENSION.values()))), max_size=8)
BMP_TEXT = st.text(alphabet=st.characters(max_codepoint=0xFFFD, exclude_categories=("Cs",)),
                   max_size=7)


@given(GSM_TEXT)
def test_gsm_text_round_trips(text: str) -> None:
    assert files.decode_alpha(files.encode_alpha(text, 16)) == text


@given(BMP_TEXT)
def test_any_text_that_fits_round_trips(text: str) -> None:
    raw = files.encode_alpha(text, 16)
    assert len(raw) == 16
    assert files.decode_alpha(raw) == text


# --- IMSI -------------------------------------------------------------------------------------

def test_imsi_odd_and_even() -> None:
    odd = files.encode_imsi("515020000000001")
    assert odd == bytes.fromhex("08 59 51 20 00 00 00 00 10")
    assert files.decode_imsi(odd) == "515020000000001"
    even = files.encode_imsi("51502000000011")
    assert even[1] & 0x0F == 0x1 and even[8] >> 4 == 0xF
    assert files.decode_imsi(even) == "51502000000011"


@pytest.mark.parametrize("raw", [
    "08 5A 51 20 00 00 00 00 10",     # parity nibble A
    "FF FF FF FF FF FF FF FF FF",     # erased file
    "09 59 51 20 00 00 00 00 10",     # length over 8
    "08 51 51 20 00 00 00 10 11",     # even without F filler
])
def test_bad_imsi_is_a_format_error(raw: str) -> None:
    with pytest.raises(FileFormatError):
        files.decode_imsi(bytes.fromhex(raw))


# --- EF.AD ---------------------------------------------------------------------------------------

def test_ad_mnc_length() -> None:
    assert files.decode_ad(bytes.fromhex("00 00 00 02")).mnc_length == 2
    assert files.decode_ad(bytes.fromhex("00 00 00 03 FF")).mnc_length == 3
    assert files.decode_ad(bytes.fromhex("00 00 00 FF")).mnc_length is None
    assert files.decode_ad(bytes.fromhex("81 00 00")) == AdminData(0x81, 0, None)
    with pytest.raises(FileFormatError):
        files.decode_ad(b"\x00\x00")


# --- MSISDN -----------------------------------------------------------------------------------

def test_msisdn_national_international_and_empty() -> None:
    national = files.encode_msisdn("09171234567")
    assert national[:2] == bytes((7, files.TON_NPI_UNKNOWN))
    assert files.decode_msisdn(national) == "09171234567"
    assert files.decode_msisdn(files.encode_msisdn("+639171234567")) == "+639171234567"
    assert files.decode_msisdn(b"\xff" * 14) is None


def test_msisdn_record_with_alpha_identifier() -> None:
    record = files.encode_msisdn("09181234321", alpha="My number", alpha_size=10)
    assert len(record) == 24 and record[:9] == b"My number"
    assert files.decode_msisdn(record) == "09181234321"
    alpha_only = files.encode_alpha("Me", 10) + b"\xff" * 14
    assert files.decode_msisdn(alpha_only) is None
    assert files.decode_msisdn(files.encode_msisdn(None, alpha_size=10)) is None


def test_bad_msisdn_is_a_format_error() -> None:
    with pytest.raises(FileFormatError):
        files.decode_msisdn(bytes.fromhex("0C 81") + b"\x00" * 12)   # length 12 > 11
    with pytest.raises(FileFormatError):
        files.decode_msisdn(b"\xff" * 13)


# --- fuzzing: decoders fail only with ValueError ------------------------------------------------

DECODERS = [files.decode_iccid, files.decode_spn, files.decode_imsi, files.decode_ad,
            files.decode_msisdn, files.decode_alpha, files.decode_gsm7, apdu.parse_response,
            apdu.parse_command]


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__name__)
@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=40), st.binary(min_size=9, max_size=17),
                     st.binary(min_size=14, max_size=14)))
def test_decoders_raise_only_value_errors(decode: Callable[[bytes], object], raw: bytes) -> None:
    try:
        decode(raw)
    except ValueError:
        pass


@given(st.text(max_size=25))
def test_check_iccid_raises_only_bad_iccid(text: str) -> None:
    try:
        assert files.check_iccid(text) == text
    except BadIccid:
        pass
