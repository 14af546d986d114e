"""The CRC of the serial device protocols: one algorithm, CRC-16/KERMIT.

ID-003 (`drivers/bill/id003.py`) and ZVT (`drivers/card_terminal/zvt.py`) both use it: the
CCITT polynomial 0x1021 bit-reflected (0x8408), init 0, input and output reflected, no final
XOR; each sends it low byte first. The catalogue's check value ("123456789") is in `CHECK`
and is tested in tests/test_crc.py.

(The EMVCo QR payload's CRC in kiosk/payments/emvco.py is another member of the family,
CRC-16/IBM-3740 a.k.a. CCITT-FALSE: not reflected, init 0xFFFF.)
"""

from __future__ import annotations

POLY_REFLECTED = 0x8408          # 0x1021 with its bits in reverse order

CHECK: dict[bytes, int] = {b"123456789": 0x2189, b"": 0x0000}


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
