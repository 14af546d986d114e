"""The kiosk's CRCs, in one place: two members of the CRC-16/CCITT family.

CRC-16/KERMIT: ID-003 (`drivers/bill/id003.py`) and ZVT (`drivers/card_terminal/zvt.py`)
both use it: the CCITT polynomial 0x1021 bit-reflected (0x8408), init 0, input and output
reflected, no final XOR; each sends it low byte first.

CRC-16/IBM-3740 (a.k.a. CCITT-FALSE): the EMVCo QR payload's (`kiosk/payments/emvco.py`):
polynomial 0x1021 not reflected, init 0xFFFF, no final XOR.

The catalogue's check values ("123456789") are in `CHECK` and `CHECK_CCITT_FALSE`, tested in
tests/test_crc.py.
"""

from __future__ import annotations

POLY_REFLECTED = 0x8408          # 0x1021 with its bits in reverse order

CHECK: dict[bytes, int] = {b"123456789": 0x2189, b"": 0x0000}
CHECK_CCITT_FALSE: dict[bytes, int] = {b"123456789": 0x29B1, b"": 0xFFFF}


def _table() -> tuple[int, ...]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY_REFLECTED if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


_TABLE = _table()


def crc16_kermit(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16/KERMIT of `data`; pass a previous result as `crc` to continue over more."""
    table = _TABLE
    for byte in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/IBM-3740 (CCITT-FALSE) of `data`: the EMVCo QR payload's."""
    crc = 0xFFFF
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc
