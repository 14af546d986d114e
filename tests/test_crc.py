"""drivers/crc.py: the one CRC of the serial protocols (CRC-16/KERMIT), on its check vectors."""

from __future__ import annotations

import random

import pytest

from drivers import crc
from drivers.bill import id003
from drivers.card_terminal import zvt


@pytest.mark.parametrize("data,check", list(crc.CHECK.items()), ids=repr)
def test_check_vectors(data: bytes, check: int) -> None:
    assert crc.crc16_kermit(data) == check
    assert crc.crc16_kermit(bytearray(data)) == crc.crc16_kermit(memoryview(data)) == check


def _bitwise(data: bytes) -> int:
    """The catalogue's definition, bit by bit: poly 0x1021 reflected, init 0, no xorout."""
    value = 0
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0x8408 if value & 1 else value >> 1
    return value


def test_the_table_agrees_with_the_definition_and_continues() -> None:
    rng = random.Random(5)
    for n in (1, 2, 3, 7, 64, 255, 1000):
        data = rng.randbytes(n)
        assert crc.crc16_kermit(data) == _bitwise(data)
        cut = n // 2
        assert crc.crc16_kermit(data[cut:], crc.crc16_kermit(data[:cut])) == _bitwise(data)


def test_id003_and_zvt_frame_with_the_one_crc() -> None:
    assert id003.crc16_kermit is crc.crc16_kermit and zvt.crc16 is crc.crc16_kermit
    wire = id003.encode(0x11)                                   # STATUS REQUEST
    assert int.from_bytes(wire[-2:], "little") == crc.crc16_kermit(wire[:-2])
    apdu = bytes.fromhex("060000")
    framed = zvt.frame(apdu)
    assert int.from_bytes(framed[-2:], "little") == crc.crc16_kermit(apdu + b"\x03")


@pytest.mark.parametrize("data,check", list(crc.CHECK_CCITT_FALSE.items()), ids=repr)
def test_ccitt_false_check_vectors(data: bytes, check: int) -> None:
    """The EMVCo QR payload's CRC (CRC-16/IBM-3740), from the same module."""
    assert crc.crc16_ccitt_false(data) == check
