"""Card numbers (PAN) in what a ZVT terminal sends: nothing beyond the last four digits is
ever kept, logged or shown.

Two places carry a card number:

- BMP 22 of a status information (04 0F): LLVAR, packed BCD, one digit per nibble. A
  terminal masks the digits it does not want the ECR to see with the nibble `E`, and pads a
  number with an odd count of digits with a trailing `F` (the ZVT BMP table, as quoted by
  bezahl-online/zvt `bmp.go`: "'E' used to indicate a masked numeric digit; if the
  card-number contains an odd number of digits, it is padded with an 'F'"). So
  `47 61 73 EE EE EE 01 19` is `476173EEEEEE0119`. Girocard terminals put the EF_ID there
  instead (track-like data with a `D` separator): that is not a card number and gives
  nothing. `last4` reads the last four digits and nothing else.
- Terminal texts (receipt lines 06 D1, card name, additional text): `redact` turns every
  PAN-like run into asterisks but for its last four digits.
"""

from __future__ import annotations

import re

BMP_PAN = 0x22
MASK_NIBBLE = 0xE
PAD_NIBBLE = 0xF
PAN_DIGITS = range(8, 20)                # ISO/IEC 7812: 8 to 19 digits


def last4(value: bytes) -> str:
    """The last four digits of the card number in a BMP 22 value (without its LL header),
    or "" when it is not a card number (EF_ID, too short or long, a masked tail). Masked
    (`E`) and clear digits are both accepted; only the last four are returned."""
    nibbles = [n for b in value for n in (b >> 4, b & 0x0F)]
    if nibbles and nibbles[-1] == PAD_NIBBLE:
        nibbles.pop()
    if len(nibbles) not in PAN_DIGITS or any(n > 9 and n != MASK_NIBBLE for n in nibbles):
        return ""
    tail = nibbles[-4:]
    return "".join(map(str, tail)) if all(n <= 9 for n in tail) else ""


def pan_bmp(pan: str) -> bytes:
    """BMP 22 for `pan` ("476173EEEEEE0119", digits and `E` masks): tag, LL header, BCD
    with an `F` pad for an odd count. The terminal's side (the simulator)."""
    if not re.fullmatch(r"[0-9E]{8,19}", pan):
        raise ValueError("a card number is 8 to 19 digits or E masks")
    packed = bytes.fromhex(pan + ("F" if len(pan) % 2 else ""))
    return bytes((BMP_PAN, 0xF0 | len(packed) // 10, 0xF0 | len(packed) % 10)) + packed


# 13 or more digits or mask characters in a row (spaces and dashes between them allowed):
# a card number, masked or not. Mask characters are `* # X x` as receipts print them and
# `E`, the ZVT mask nibble, as an ECR shows a BMP 22 written out. 13 keeps a 12-digit VU
# (merchant) number, TIDs, traces, dates and amounts intact.
_PAN_LIKE = re.compile(
    r"(?<![0-9A-Za-z])[0-9*#XxE](?:[ -]?[0-9*#XxE]){12,}(?![0-9A-Za-z])")


def redact(line: str) -> str:
    """Any PAN-like run in a terminal text becomes asterisks, but for its last four digits
    (kept only when they are all digits): `476173EEEEEE0119` -> `************0119`,
    `5413 3300 8909 9130` -> `************9130`. A run needs at least one digit."""
    def mask(m: re.Match[str]) -> str:
        chars = [c for c in m.group(0) if c not in " -"]
        if not any(c.isdigit() for c in chars):
            return m.group(0)                     # "EEEEEEEEEEEEE", "XXXXXXXXXXXXX": no number
        tail = "".join(chars[-4:])
        if tail.isdigit():
            return "*" * (len(chars) - 4) + tail
        return "*" * len(chars)
    return _PAN_LIKE.sub(mask, line)
