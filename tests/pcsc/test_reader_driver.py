"""The PC/SC SIM reader driver through a real pcscd with the vpcd virtual reader.

Each test pushes virtual cards (VpcdCard) into the rig's reader and checks the events the
driver posts to the kiosk, exactly as the engine would receive them.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.sim.pcsc import PcscSimReader
from drivers.sim.virtual import PROFILES, VpcdCard
from kiosk import events as ev
from tests.events import EventQueue

from .rig import PcscdRig

EMPTY = 0x0010                                 # SCARD_STATE_EMPTY


class Driver(EventQueue):
    """A started PcscSimReader whose events land in the queue."""

    def __init__(self, reader: PcscSimReader) -> None:
        super().__init__()
        self.reader = reader

    async def start(self) -> Driver:
        await self.reader.start(self.put)
        return self

    async def quiet(self, seconds: float) -> list[ev.Record]:
        """Everything posted in the next `seconds` (to check nothing more happens)."""
        await asyncio.sleep(seconds)
        return self.drain()


@pytest.fixture
async def driver(pcscd_rig: PcscdRig):
    d = Driver(PcscSimReader(reader=pcscd_rig.reader_name + "$", poll_ms=300))
    await d.start()
    await d.expect(ev.DeviceStatus, device="sim_reader", ok=True)
    yield d
    await d.reader.stop()


@pytest.fixture
def card_in(pcscd_rig: PcscdRig):
    cards: list[VpcdCard] = []

    def push(name: str, port: int | None = None) -> VpcdCard:
        c = VpcdCard(PROFILES[name], port=port or pcscd_rig.port)
        c.insert()
        cards.append(c)
        return c
    yield push
    for c in cards:
        c.remove()
    # pcscd notices a pulled card at its next poll: let it, so the next test starts empty.
    for slot in (pcscd_rig.reader_name, pcscd_rig.reader_name.replace("00 00", "00 01")):
        pcscd_rig.wait_for_state(lambda s: bool(s & EMPTY), reader=slot)


async def test_uicc_and_classic_sim_are_identified_and_removal_is_seen(driver, card_in):
    card = card_in("uicc")
    e = await driver.expect(ev.SimIdentified)
    assert e.iccid == PROFILES["uicc"].iccid
    assert driver.reader.last_info.kind.value == "uicc"
    assert driver.reader.last_read.ms < 1000
    assert not card.card.verify_seen
    card.remove()
    await driver.expect(ev.SimRemoved)
    card = card_in("classic")
    e = await driver.expect(ev.SimIdentified)
    assert e.iccid == PROFILES["classic"].iccid
    assert driver.reader.last_info.kind.value == "sim"
    card.remove()
    await driver.expect(ev.SimRemoved)


@pytest.mark.parametrize("profile,reason", [
    ("bank", "not_sim"), ("mute", "mute"), ("bad_luhn", "bad_iccid"), ("pulled", "removed"),
])
async def test_cards_that_give_no_iccid_are_explained(driver, card_in, profile, reason):
    card = card_in(profile)
    e = await driver.expect(ev.SimUnreadable)
    assert e.reason == reason
    assert not any(isinstance(x, ev.SimIdentified) for x in driver.seen)
    card.remove()
    await driver.expect(ev.SimRemoved)
    # The reader is fine afterwards: a good card reads.
    good = card_in("uicc")
    assert (await driver.expect(ev.SimIdentified)).iccid == PROFILES["uicc"].iccid
    good.remove()


async def test_pin_locked_sim_is_identified_by_iccid_only(driver, card_in):
    card = card_in("pin")
    e = await driver.expect(ev.SimIdentified)
    assert e.iccid == PROFILES["pin"].iccid
    info = driver.reader.last_info
    assert info.readable == ("ICCID",) and info.unreadable == {}   # nothing behind the PIN tried
    assert not card.card.verify_seen
    card.remove()


@pytest.mark.parametrize("profile,selects,apdus", [
    ("uicc", [0x3F00, 0x2FE2], 3),
    ("classic", [0x3F00, 0x3F00, 0x2FE2], 4),     # CLA 00 refused, then the classic form
])
async def test_the_kiosk_reads_the_iccid_and_nothing_else(driver, card_in, profile, selects,
                                                          apdus):
    """What the virtual SIM received through pcscd for one read by the kiosk's reader: the
    MF, EF.ICCID and its READ BINARY. The IMSI (6F07), the MSISDN (7F10/6F40) and the rest
    of the card stay unread."""
    card = card_in(profile)
    e = await driver.expect(ev.SimIdentified)
    assert e.iccid == PROFILES[profile].iccid
    got = card.card
    assert got.selected() == selects
    assert [c[1] for c in got.received] == [0xA4] * len(selects) + [0xB0]   # SELECTs, READ
    assert got.received[-1][2:] == bytes.fromhex("00 00 0A")                 # 10 bytes
    assert 0x6F07 not in got.selected()
    assert got.apdus == len(got.received) == apdus == driver.reader.last_info.apdus
    assert driver.reader.last_info.readable == ("ICCID",)
    card.remove()
    await driver.expect(ev.SimRemoved)
    assert got.apdus == apdus                   # and nothing more once it was identified


async def test_twenty_digit_iccid(driver, card_in):
    card_in("iccid20")
    e = await driver.expect(ev.SimIdentified)
    assert e.iccid == PROFILES["iccid20"].iccid and len(e.iccid) == 20


async def test_card_swapped_faster_than_pcscd_polls_is_read_again(driver, card_in):
    card = card_in("uicc")
    await driver.expect(ev.SimIdentified, iccid=PROFILES["uicc"].iccid)
    t0 = time.monotonic()
    card.swap(PROFILES["classic"])              # pulled and another pushed in, at once
    swapped_in = time.monotonic() - t0
    assert swapped_in < 0.4
    e = await driver.expect(ev.SimIdentified, iccid=PROFILES["classic"].iccid)
    kinds = [type(x).__name__ for x in driver.seen]
    assert kinds[-2:] == ["SimRemoved", "SimIdentified"], kinds
    assert e.iccid == PROFILES["classic"].iccid


async def test_only_the_configured_reader_is_watched(pcscd_rig, card_in):
    slot1 = pcscd_rig.reader_name.replace("00 00", "00 01")
    d = await Driver(PcscSimReader(reader=slot1 + "$", poll_ms=300)).start()
    try:
        await d.expect(ev.DeviceStatus, ok=True)
        assert d.reader.reader_name == slot1
        card_in("uicc")                          # into slot 0: not ours
        assert not [e for e in await d.quiet(1.0) if isinstance(e, ev.SimIdentified)]
        card_in("classic", port=pcscd_rig.port + 1)
        e = await d.expect(ev.SimIdentified)
        assert e.iccid == PROFILES["classic"].iccid
    finally:
        await d.reader.stop()


async def test_missing_reader_is_reported_and_the_kiosk_goes_on(pcscd_rig):
    d = await Driver(PcscSimReader(reader="^No Such Reader$", poll_ms=200)).start()
    try:
        e = await d.expect(ev.DeviceStatus, device="sim_reader", ok=False)
        assert "no reader matches" in e.detail
        assert d.reader.reader_ok is False
    finally:
        t0 = time.monotonic()
        await d.reader.stop()
        assert time.monotonic() - t0 < 2           # stop does not wait out a poll


async def test_pcscd_stopped_and_restarted_the_driver_reconnects_by_itself(pcscd_rig, card_in):
    d = await Driver(PcscSimReader(reader=pcscd_rig.reader_name + "$", poll_ms=300)).start()
    try:
        await d.expect(ev.DeviceStatus, ok=True)
        pcscd_rig.stop()
        lost = await d.expect(ev.DeviceStatus, ok=False)
        assert "service" in lost.detail or "no reader" in lost.detail
        pcscd_rig.start()
        await d.expect(ev.DeviceStatus, ok=True, timeout=15)
        card_in("uicc")
        assert (await d.expect(ev.SimIdentified)).iccid == PROFILES["uicc"].iccid
    finally:
        await d.reader.stop()
        if not pcscd_rig.running:
            pcscd_rig.start()
