"""VpcdCard: the vpcd wire protocol against a fake vpcd, then real reads through pcscd + vpcd."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.sim.card import CardKind, read_sim
from drivers.sim.virtual import MUTE_PROBE_ATR, PROFILES, VpcdCard

from .rig import PcscdRig, free_port_pair

# --- a fake vpcd: the server side of the protocol, driven by the test ------------------------


class FakeVpcd:
    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.settimeout(2.0)

    def accept(self) -> socket.socket:
        conn, _ = self.server.accept()
        conn.settimeout(2.0)
        return conn

    @staticmethod
    def ask(conn: socket.socket, payload: bytes) -> None:
        conn.sendall(len(payload).to_bytes(2, "big") + payload)

    @staticmethod
    def answer(conn: socket.socket) -> bytes | None:
        """The next frame from the card; None when the card hung up."""
        header = conn.recv(2, socket.MSG_WAITALL)
        if len(header) < 2:
            return None
        size = int.from_bytes(header, "big")
        return conn.recv(size, socket.MSG_WAITALL) if size else b""

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake() -> Iterator[FakeVpcd]:
    vpcd = FakeVpcd()
    yield vpcd
    vpcd.close()


def test_frames_control_bytes_and_apdus(fake: FakeVpcd) -> None:
    card = VpcdCard(PROFILES["uicc"], port=fake.port)
    card.insert()
    conn = fake.accept()
    assert card.inserted
    fake.ask(conn, b"\x04")
    assert fake.answer(conn) == PROFILES["uicc"].atr
    for control in (b"\x01", b"\x02", b"\x00", b"\x01"):          # no reply to these...
        fake.ask(conn, control)
    fake.ask(conn, bytes.fromhex("00 A4 00 04 02 3F 00"))
    assert fake.answer(conn)[0] == 0x61                           # ...so this comes next
    card.remove()
    assert fake.answer(conn) is None and not card.inserted
    card.remove()                                                 # idempotent
    assert card.card.apdus == 1
    conn.close()


def test_card_is_pulled_after_answering_n_apdus(fake: FakeVpcd) -> None:
    card = VpcdCard(PROFILES["pulled"], port=fake.port)
    card.insert()
    conn = fake.accept()
    for _ in range(PROFILES["pulled"].pull_after or 0):
        fake.ask(conn, bytes.fromhex("00 A4 00 04 02 3F 00"))
        assert fake.answer(conn) is not None
    assert fake.answer(conn) is None                              # hung up
    deadline = time.monotonic() + 2
    while card.inserted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not card.inserted
    conn.close()


def test_mute_card_answers_the_probe_and_replugs_at_power_on(fake: FakeVpcd) -> None:
    card = VpcdCard(PROFILES["mute"], port=fake.port)
    card.insert()
    conn = fake.accept()
    fake.ask(conn, b"\x04")
    assert fake.answer(conn) == MUTE_PROBE_ATR != b""            # never an empty ATR
    fake.ask(conn, b"\x01")
    assert fake.answer(conn) is None                              # dropped at power on...
    again = fake.accept()                                         # ...and back at once
    assert card.inserted
    fake.ask(again, b"\x04")
    assert fake.answer(again) == MUTE_PROBE_ATR
    card.remove()
    assert fake.answer(again) is None and not card.inserted
    conn.close()
    again.close()


def test_swap_puts_another_card_in(fake: FakeVpcd) -> None:
    card = VpcdCard(PROFILES["uicc"], port=fake.port)
    card.insert()
    first = fake.accept()
    card.swap(PROFILES["classic"])
    assert fake.answer(first) is None
    second = fake.accept()
    fake.ask(second, b"\x04")
    assert fake.answer(second) == PROFILES["classic"].atr
    card.remove()
    first.close()
    second.close()


def test_no_reader_listening_is_a_connection_error() -> None:
    port = free_port_pair()
    card = VpcdCard(PROFILES["uicc"], port=port)
    with pytest.raises(ConnectionError, match=f"no vpcd reader on 127.0.0.1:{port}"):
        card.insert()
    assert not card.inserted


# --- through a real pcscd with the vpcd driver ---------------------------------------------

SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_REMOVED_CARD = 0x80100069
STATE_EMPTY, STATE_PRESENT, STATE_MUTE = 0x0010, 0x0020, 0x0200


class TransmitError(Exception):
    def __init__(self, hresult: int) -> None:
        super().__init__(f"SCardTransmit: {hresult:#010x}")
        self.hresult = hresult


class Reader:
    """One PC/SC context on the rig's reader, with the few calls the tests need."""

    def __init__(self, rig: PcscdRig) -> None:
        from smartcard import scard as sc
        self.sc, self.name, self.rig = sc, rig.reader_name, rig
        hr, self.ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        assert hr == sc.SCARD_S_SUCCESS
        self.cards: list[VpcdCard] = []

    def insert(self, name: str) -> VpcdCard:
        card = VpcdCard(PROFILES[name], port=self.rig.port)
        card.insert()
        self.cards.append(card)
        return card

    def state(self) -> tuple[int, bytes]:
        hr, states = self.sc.SCardGetStatusChange(self.ctx, 0, [(self.name, 0)])
        assert hr == 0
        return states[0][1], bytes(states[0][2])

    def wait(self, want: Callable[[int], bool], timeout: float = 3.0) -> tuple[int, bytes]:
        return self.rig.wait_for_state(want, timeout)

    def connect(self) -> tuple[int, Any, int]:
        sc = self.sc
        hr, handle, proto = sc.SCardConnect(self.ctx, self.name, sc.SCARD_SHARE_SHARED,
                                            sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
        return hr & 0xFFFFFFFF, handle, proto

    def transmit_for(self, handle: Any, proto: int) -> Callable[[bytes], bytes]:
        def transmit(capdu: bytes) -> bytes:
            hr, response = self.sc.SCardTransmit(handle, proto, list(capdu))
            if hr != 0:
                raise TransmitError(hr & 0xFFFFFFFF)
            return bytes(response)
        return transmit

    def close(self) -> None:
        for card in self.cards:
            card.remove()
        self.wait(lambda s: bool(s & STATE_EMPTY))     # the next test starts with no card
        self.sc.SCardReleaseContext(self.ctx)


@pytest.fixture
def reader(pcscd_rig: PcscdRig) -> Iterator[Reader]:
    r = Reader(pcscd_rig)
    r.wait(lambda s: bool(s & STATE_EMPTY))
    yield r
    r.close()


def test_rig_lists_both_vpcd_slots(pcscd_rig: PcscdRig, reader: Reader) -> None:
    hr, readers = reader.sc.SCardListReaders(reader.ctx, [])
    assert hr == 0
    assert pcscd_rig.reader_name == "Kiosk Test PCD 00 00"
    assert set(readers) == {"Kiosk Test PCD 00 00", "Kiosk Test PCD 00 01"}


@pytest.mark.parametrize(("name", "kind"), [("uicc", CardKind.UICC), ("classic", CardKind.SIM),
                                            ("pin", CardKind.UICC)])
def test_reads_the_sim_through_pcscd(reader: Reader, name: str, kind: CardKind) -> None:
    card = reader.insert(name)
    state, atr = reader.wait(lambda s: bool(s & STATE_PRESENT))
    assert atr == PROFILES[name].atr and not state & STATE_MUTE
    hr, handle, proto = reader.connect()
    assert hr == 0 and proto == reader.sc.SCARD_PROTOCOL_T0
    started = time.monotonic()
    try:
        info = read_sim(reader.transmit_for(handle, proto))
    finally:
        assert reader.sc.SCardDisconnect(handle, reader.sc.SCARD_LEAVE_CARD) == 0
    took = time.monotonic() - started
    assert info.kind is kind and info.iccid == PROFILES[name].iccid
    assert info.apdus == card.card.apdus <= 20
    assert not card.card.verify_seen
    assert took < 0.5            # ~1 ms for 3 APDUs; a Nagle/delayed-ACK stall costs ~44 ms each


def test_mute_card_is_reported_mute(reader: Reader) -> None:
    card = reader.insert("mute")
    state, atr = reader.wait(lambda s: bool(s & STATE_MUTE))
    assert state & STATE_PRESENT and atr == b""
    hr, _, _ = reader.connect()
    assert hr == SCARD_W_UNPOWERED_CARD                   # pcscd powered it again: no ATR
    time.sleep(0.5)                                       # a poll later: still in, still mute
    state, _ = reader.state()
    assert state & STATE_MUTE and state & STATE_PRESENT and card.inserted


def test_card_pulled_mid_read(reader: Reader) -> None:
    card = reader.insert("pulled")
    state, _ = reader.wait(lambda s: bool(s & STATE_PRESENT))
    hr, handle, proto = reader.connect()
    assert hr == 0
    with pytest.raises(TransmitError) as exc:
        read_sim(reader.transmit_for(handle, proto))
    assert exc.value.hresult in (SCARD_E_NOT_TRANSACTED, SCARD_W_REMOVED_CARD)
    assert card.card.apdus == 2 and not card.inserted
    after, _ = reader.wait(lambda s: bool(s & STATE_EMPTY))
    assert (after >> 16) > (state >> 16)                  # the event counter moved on
    reader.sc.SCardDisconnect(handle, reader.sc.SCARD_LEAVE_CARD)
