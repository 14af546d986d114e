"""Codecs of the SIM elementary files the kiosk reads (TS 51.011, TS 31.102), no I/O.

Every file has `decode_*` (bytes as read from the card -> value) and `encode_*` (value ->
bytes, for the virtual card and round-trip tests), and carries its test vectors in
`VECTORS`. Decoders raise only `FileFormatError` (a ValueError) on bytes they cannot read.

BCD on SIM cards is nibble-swapped: the digit pair "89" is stored as the byte 0x98, low
nibble first; a trailing F nibble pads an odd number of digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk import luhn


class FileFormatError(ValueError):
    """The bytes of a file do not follow its specification."""


class BadIccid(ValueError):
    """An ICCID that is not a valid SIM card number (length, 89 prefix, Luhn)."""


# --- nibble-swapped BCD -------------------------------------------------------------------

_BCD_DIGITS = "0123456789*#"           # A and B are * and # in dialling numbers


def _nibbles(raw: bytes) -> list[int]:
    out: list[int] = []
    for b in raw:
        out += (b & 0x0F, b >> 4)
    return out


def _decode_bcd(raw: bytes, alphabet: str = "0123456789") -> str:
    """Swapped BCD digits, trailing F nibbles dropped; any other nibble is an error."""
    nibbles = _nibbles(raw)
    while nibbles and nibbles[-1] == 0xF:
        nibbles.pop()
    if any(n >= len(alphabet) for n in nibbles):
        raise FileFormatError(f"not a BCD digit string: {bytes(raw).hex()}")
    return "".join(alphabet[n] for n in nibbles)


def _encode_bcd(digits: str, size: int, alphabet: str = "0123456789") -> bytes:
    if any(c not in alphabet for c in digits):
        raise ValueError(f"not a digit string: {digits!r}")
    if len(digits) > 2 * size:
        raise ValueError(f"{len(digits)} digits do not fit in {size} bytes")
    nibbles = [alphabet.index(c) for c in digits] + [0xF] * (2 * size - len(digits))
    return bytes(lo | (hi << 4) for lo, hi in zip(nibbles[::2], nibbles[1::2], strict=True))


# --- EF.ICCID (2FE2): 10 bytes of swapped BCD -----------------------------------------------

ICCID_SIZE = 10


def decode_iccid(raw: bytes) -> str:
    """`98 88 12 01 00 00 40 03 10 F0` -> "8988211000000430010". Does not check Luhn."""
    if len(raw) != ICCID_SIZE:
        raise FileFormatError(f"EF.ICCID is {ICCID_SIZE} bytes, got {len(raw)}")
    digits = _decode_bcd(raw)
    if not digits:
        raise FileFormatError("EF.ICCID is empty")
    return digits


def encode_iccid(digits: str) -> bytes:
    return _encode_bcd(digits, ICCID_SIZE)


def check_iccid(digits: str) -> str:
    """Return `digits` if they are a SIM card's ICCID, else raise BadIccid."""
    if not (digits.isascii() and digits.isdigit()):
        raise BadIccid("ICCID is not all digits")
    if not 18 <= len(digits) <= 20:
        raise BadIccid(f"ICCID has {len(digits)} digits, 18 to 20 expected")
    if not digits.startswith("89"):
        raise BadIccid("ICCID does not start with 89 (telecom industry)")
    if not luhn.valid(digits):
        raise BadIccid("ICCID check digit (Luhn) is wrong")
    return digits


# --- GSM 03.38 default alphabet, unpacked (one 7-bit character per byte) ----------------------

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[",
                  0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€"}
_ESC = 0x1B
_GSM_CODE = {ch: i for i, ch in enumerate(_GSM_BASIC) if i != _ESC}
_GSM_EXT_CODE = {ch: code for code, ch in _GSM_EXTENSION.items()}
assert len(_GSM_BASIC) == 128


def decode_gsm7(raw: bytes) -> str:
    """Unpacked GSM default alphabet; unknown codes (bit 8 set, bad escapes) become "?"."""
    out, escaped = [], False
    for b in raw:
        if escaped:
            out.append(_GSM_EXTENSION.get(b, "?"))
            escaped = False
        elif b == _ESC:
            escaped = True
        else:
            out.append(_GSM_BASIC[b] if b < 0x80 else "?")
    if escaped:
        out.append("?")
    return "".join(out)


def encode_gsm7(text: str) -> bytes:
    """Raise ValueError for a character outside the default alphabet and its extension."""
    out = bytearray()
    for ch in text:
        if ch in _GSM_CODE:
            out.append(_GSM_CODE[ch])
        elif ch in _GSM_EXT_CODE:
            out += bytes((_ESC, _GSM_EXT_CODE[ch]))
        else:
            raise ValueError(f"{ch!r} is not in the GSM default alphabet")
    return bytes(out)


def gsm7_encodable(text: str) -> bool:
    return all(ch in _GSM_CODE or ch in _GSM_EXT_CODE for ch in text)


# --- alpha fields (SPN name, MSISDN alpha identifier): GSM 7-bit or UCS2 (0x80) -------------

_UCS2 = 0x80


def decode_alpha(raw: bytes) -> str:
    """GSM unpacked text padded with FF, or 80 + big-endian UTF-16 code units padded FF."""
    if raw[:1] == bytes((_UCS2,)):
        body = bytes(raw[1:])
        units = [body[i:i + 2] for i in range(0, len(body) - 1, 2)]
        end = next((i for i, u in enumerate(units) if u == b"\xff\xff"), len(units))
        return b"".join(units[:end]).decode("utf-16-be", errors="replace")
    end = raw.find(0xFF)
    return decode_gsm7(raw if end < 0 else raw[:end])


def encode_alpha(text: str, size: int) -> bytes:
    """GSM when every character has a code, else UCS2; FF padded to `size` bytes."""
    body = (encode_gsm7(text) if gsm7_encodable(text)
            else bytes((_UCS2,)) + text.encode("utf-16-be"))
    if len(body) > size:
        raise ValueError(f"{text!r} needs {len(body)} bytes, the field has {size}")
    return body + b"\xff" * (size - len(body))


# --- EF.SPN (6F46): display condition, then a 16-byte alpha name ---------------------------

SPN_SIZE = 17


@dataclass(frozen=True)
class Spn:
    name: str
    display_condition: int = 0x00   # b1: show the PLMN name too when registered at home


def decode_spn(raw: bytes) -> Spn:
    if len(raw) != SPN_SIZE:
        raise FileFormatError(f"EF.SPN is {SPN_SIZE} bytes, got {len(raw)}")
    return Spn(decode_alpha(raw[1:]), raw[0])


def encode_spn(spn: Spn) -> bytes:
    return bytes((spn.display_condition,)) + encode_alpha(spn.name, SPN_SIZE - 1)


# --- EF.IMSI (6F07): length, then parity nibble + swapped digits --------------------------------

IMSI_SIZE = 9
_IMSI_ODD, _IMSI_EVEN = 0x9, 0x1    # identity type 001 (IMSI), bit 4 = odd number of digits


def decode_imsi(raw: bytes) -> str:
    """`08 59 51 20 00 00 00 00 10` -> "515020000000001"."""
    if len(raw) != IMSI_SIZE:
        raise FileFormatError(f"EF.IMSI is {IMSI_SIZE} bytes, got {len(raw)}")
    length = raw[0]
    if not 1 <= length <= IMSI_SIZE - 1:
        raise FileFormatError(f"EF.IMSI length byte {length:#04x}")
    parity, *digits = _nibbles(raw[1:1 + length])
    if parity == _IMSI_EVEN:
        if digits[-1] != 0xF:
            raise FileFormatError("EF.IMSI even length without an F filler")
        digits.pop()
    elif parity != _IMSI_ODD:
        raise FileFormatError(f"EF.IMSI parity nibble {parity:#x}")
    if not digits or any(d > 9 for d in digits):
        raise FileFormatError("EF.IMSI holds no digit string")
    return "".join(map(str, digits))


def encode_imsi(imsi: str) -> bytes:
    if not (imsi.isascii() and imsi.isdigit() and 1 <= len(imsi) <= 15):
        raise ValueError(f"an IMSI is 1 to 15 digits, got {imsi!r}")
    nibbles = [_IMSI_ODD if len(imsi) % 2 else _IMSI_EVEN] + [int(c) for c in imsi]
    if len(nibbles) % 2:
        nibbles.append(0xF)
    body = bytes(lo | (hi << 4) for lo, hi in zip(nibbles[::2], nibbles[1::2], strict=True))
    return (bytes((len(body),)) + body).ljust(IMSI_SIZE, b"\xff")


# --- EF.AD (6FAD): administrative data ------------------------------------------------------------


@dataclass(frozen=True)
class AdminData:
    ue_mode: int                   # 00 normal operation, 80 type approval, ...
    additional: int                # bytes 2-3, operator specific
    mnc_length: int | None = None  # digits of MNC in the IMSI: 2 or 3 (None: not stated)


def decode_ad(raw: bytes) -> AdminData:
    if len(raw) < 3:
        raise FileFormatError(f"EF.AD is at least 3 bytes, got {len(raw)}")
    mnc = raw[3] & 0x0F if len(raw) > 3 else None
    return AdminData(raw[0], int.from_bytes(raw[1:3], "big"), mnc if mnc in (2, 3) else None)


def encode_ad(ad: AdminData) -> bytes:
    raw = bytes((ad.ue_mode,)) + ad.additional.to_bytes(2, "big")
    return raw + (bytes((ad.mnc_length,)) if ad.mnc_length is not None else b"")


# --- EF.MSISDN (6F40) record: alpha X bytes, then 14 bytes of dialling number ------------------
#   X bytes alpha id | BCD length (incl. TON/NPI) | TON/NPI | 10 bytes BCD | CCP id | ext id

MSISDN_TAIL = 14
TON_NPI_UNKNOWN = 0x81         # TON unknown (national), NPI ISDN/E.164
TON_NPI_INTERNATIONAL = 0x91   # TON international: the number is written with +


def decode_msisdn(record: bytes) -> str | None:
    """The number ("+63917..." when international), None for an empty record."""
    if len(record) < MSISDN_TAIL:
        raise FileFormatError(f"EF.MSISDN record is at least {MSISDN_TAIL} bytes")
    tail = record[len(record) - MSISDN_TAIL:]
    length, ton_npi = tail[0], tail[1]
    if length == 0xFF or length <= 1:
        return None
    if length > 11:
        raise FileFormatError(f"EF.MSISDN number length {length} over 11")
    digits = _decode_bcd(tail[2:1 + length], _BCD_DIGITS)
    if not digits:
        return None
    return ("+" if (ton_npi >> 4) & 0x7 == 1 else "") + digits


def encode_msisdn(number: str | None, alpha: str = "", alpha_size: int = 0) -> bytes:
    """A national number gets TON/NPI 81, "+..." gets 91; None gives an empty record."""
    if number is None:
        return b"\xff" * (alpha_size + MSISDN_TAIL)
    ton_npi = TON_NPI_INTERNATIONAL if number.startswith("+") else TON_NPI_UNKNOWN
    digits = number.removeprefix("+")
    if not 1 <= len(digits) <= 20:
        raise ValueError(f"a dialling number is 1 to 20 digits, got {len(digits)}")
    bcd = _encode_bcd(digits, 10, _BCD_DIGITS)
    length = 1 + (len(digits) + 1) // 2
    return (encode_alpha(alpha, alpha_size) + bytes((length, ton_npi)) + bcd + b"\xff\xff")


# --- test vectors: (file bytes, decoded value), each decoded and round-tripped by the tests ---

VECTORS: dict[str, tuple[Callable[[bytes], Any], Callable[..., bytes], list[tuple[bytes, Any]]]] = {
    "ICCID": (decode_iccid, encode_iccid, [
        (bytes.fromhex("98 88 12 01 00 00 40 03 10 F0"), "8988211000000430010"),
        (bytes.fromhex("98 98 36 10 00 00 00 00 10 F0"), "8989630100000000010"),
        (bytes.fromhex("98 36 10 00 00 00 00 00 00 70"), "89630100000000000007"),
    ]),
    "SPN": (decode_spn, encode_spn, [
        (bytes.fromhex("01") + b"Globe" + b"\xff" * 11, Spn("Globe", 0x01)),
        (bytes.fromhex("00") + b"Smart" + b"\xff" * 11, Spn("Smart")),
        (bytes.fromhex("00 1B 65 2D 54 65 6C 11 31 FF FF FF FF FF FF FF FF"), Spn("€-Tel_1")),
        (bytes.fromhex("00 80 54 15 5B 8B 79 FB 52 A8 FF FF FF FF FF FF FF"), Spn("吕宋移动")),
    ]),
    "IMSI": (decode_imsi, encode_imsi, [
        (bytes.fromhex("08 59 51 20 00 00 00 00 10"), "515020000000001"),
        (bytes.fromhex("08 51 51 20 00 00 00 10 F1"), "51502000000011"),
    ]),
    "AD": (decode_ad, encode_ad, [
        (bytes.fromhex("00000002"), AdminData(0x00, 0x0000, 2)),
        (bytes.fromhex("80000103"), AdminData(0x80, 0x0001, 3)),
        (bytes.fromhex("000000"), AdminData(0x00, 0x0000, None)),
    ]),
    "MSISDN": (decode_msisdn, encode_msisdn, [
        (bytes.fromhex("07 81 90 71 21 43 65 F7 FF FF FF FF FF FF"), "09171234567"),
        (bytes.fromhex("07 91 36 19 17 32 54 76 FF FF FF FF FF FF"), "+639171234567"),
        (b"\xff" * 14, None),
    ]),
}
