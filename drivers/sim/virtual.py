"""A virtual SIM card: a small file system answering APDUs like a real card, and its vpcd client.

`VirtualCard` is pure (bytes in, bytes out) and used directly by unit tests; `VpcdCard`
plugs it into vsmartcard's vpcd reader driver of a running pcscd, so the kiosk's real PC/SC
code reads it (the demo panel's SIM slot, the PC/SC tests).

    MF 3F00
    ├── EF.ICCID 2FE2          transparent, 10 bytes, always readable
    ├── DF.GSM 7F20
    │   ├── EF.SPN 6F46        transparent, 17 bytes (absent when the profile has no SPN)
    │   ├── EF.IMSI 6F07       transparent, 9 bytes, PIN1 when pin_enabled
    │   └── EF.AD 6FAD         transparent, 4 bytes (3 on the classic SIM, like phase 1 cards)
    └── DF.TELECOM 7F10
        └── EF.MSISDN 6F40     linear fixed, 1 record of 24 bytes, PIN1 when pin_enabled

T=0 behaviour: a UICC answers SELECT with 61xx and GET RESPONSE gives the FCP template; a
classic SIM answers 9Fxx and GET RESPONSE gives the TS 51.011 select response. A wrong Le
gets 6Cxx with the right one. VERIFY is never expected: it is answered 6D00 and recorded.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from functools import reduce

from kiosk.backend.simulated import DEMO_SIMS, UNKNOWN_SIM

from . import files
from .apdu import (
    CLA_SIM,
    CLA_UICC,
    INS_GET_RESPONSE,
    INS_READ_BINARY,
    INS_READ_RECORD,
    INS_SELECT,
    INS_VERIFY,
    Apdu,
    ApduError,
    parse_command,
    status,
)

log = logging.getLogger("kiosk.sim")


def _with_tck(atr: bytes) -> bytes:
    """Append TCK, the XOR of T0 .. last historical byte (needed when T=15 is indicated)."""
    return atr + bytes((reduce(lambda a, b: a ^ b, atr[1:], 0),))


# T=0 ATRs as real cards send them. UICC: TA1 96, T=0 then T=15 (TA3 C7: class A/B/C, clock
# stop), 15 historical bytes, TCK. Classic SIM: TA1 94, TB1 00, 15 historical bytes.
# Bank card (EMV, T=0): TB1 00, TC1 00, 14 historical bytes.
ATR_UICC = _with_tck(bytes.fromhex("3B 9F 96 80 1F C7"
                                   "80 31 A0 73 BE 21 13 67 43 20 07 18 00 00 01"))
ATR_SIM = bytes.fromhex("3B 3F 94 00 80 69 AF 03 07 01 59 00 00 0A 0E 83 3E 9F 16")
ATR_BANK = bytes.fromhex("3B 6E 00 00 80 31 80 66 B0 84 0C 01 6E 01 83 00 90 00")


@dataclass(frozen=True)
class CardProfile:
    kind: str                        # "uicc" | "sim" | "bank" | "mute"
    iccid: str = ""                  # encoded as given, even with a wrong Luhn digit
    spn: str | None = None
    pin_enabled: bool = False        # IMSI and MSISDN then answer "security status"
    imsi: str | None = None
    msisdn: str | None = None        # national digits, stored with TON/NPI 81
    atr: bytes = b""
    pull_after: int | None = None    # pulled out after answering that many C-APDUs
    label: str = ""                  # for the demo panel


_DEMO = list(DEMO_SIMS.items())

PROFILES: dict[str, CardProfile] = {
    "uicc": CardProfile("uicc", _DEMO[0][0], "Globe", imsi="515020000000001",
                        msisdn=_DEMO[0][1], atr=ATR_UICC, label="USIM, Globe"),
    "classic": CardProfile("sim", _DEMO[1][0], "Smart", imsi="515030000000002",
                           msisdn=_DEMO[1][1], atr=ATR_SIM, label="Old GSM SIM, Smart"),
    "uicc3": CardProfile("uicc", _DEMO[2][0], "吕宋移动", imsi="515020000000003",
                         msisdn=_DEMO[2][1], atr=ATR_UICC, label="USIM, UCS2 name"),
    "pin": CardProfile("uicc", _DEMO[0][0], "Globe", pin_enabled=True,
                       imsi="515020000000001", msisdn=_DEMO[0][1], atr=ATR_UICC,
                       label="USIM with PIN enabled"),
    "unknown": CardProfile("uicc", UNKNOWN_SIM, imsi="515990000000009", atr=ATR_UICC,
                           label="SIM the operator does not know"),
    "bank": CardProfile("bank", atr=ATR_BANK, label="Bank card"),
    "bad_luhn": CardProfile("uicc", "8949000012345678901", "Globe", atr=ATR_UICC,
                            label="ICCID with a wrong check digit"),
    "iccid20": CardProfile("uicc", "89630100000000000007", "Globe",
                           imsi="515020000000007", atr=ATR_UICC, label="20-digit ICCID"),
    "mute": CardProfile("mute", label="Mute card (upside down)"),
    "pulled": CardProfile("uicc", _DEMO[0][0], "Globe", imsi="515020000000001",
                          msisdn=_DEMO[0][1], atr=ATR_UICC, pull_after=2,
                          label="Pulled out mid-read"),
}

MSISDN_ALPHA_SIZE = 10


@dataclass
class _File:
    fid: int
    structure: str                               # "df" | "transparent" | "linear"
    content: bytes = b""                         # transparent EF
    records: tuple[bytes, ...] = ()              # linear fixed EF
    protected: bool = False                      # read needs PIN1
    children: dict[int, _File] = field(default_factory=dict)
    parent: _File | None = None

    def add(self, *children: _File) -> _File:
        for child in children:
            child.parent = self
            self.children[child.fid] = child
        return self

    @property
    def size(self) -> int:
        return len(self.content) if self.structure != "linear" else sum(map(len, self.records))


def _file_system(p: CardProfile) -> _File:
    gsm = _File(0x7F20, "df")
    if p.spn is not None:
        gsm.add(_File(0x6F46, "transparent", files.encode_spn(files.Spn(p.spn))))
    if p.imsi is not None:
        gsm.add(_File(0x6F07, "transparent", files.encode_imsi(p.imsi), protected=p.pin_enabled))
    ad = files.AdminData(0x00, 0x0000, 2 if p.kind == "uicc" else None)
    gsm.add(_File(0x6FAD, "transparent", files.encode_ad(ad)))
    record = files.encode_msisdn(p.msisdn, alpha_size=MSISDN_ALPHA_SIZE)
    telecom = _File(0x7F10, "df").add(
        _File(0x6F40, "linear", records=(record,), protected=p.pin_enabled))
    return _File(0x3F00, "df").add(_File(0x2FE2, "transparent", files.encode_iccid(p.iccid)),
                                   gsm, telecom)


def _fcp(f: _File) -> bytes:
    """UICC FCP template (TS 102 221 11.1.1.3): 62 L, 82 descriptor, 83 file id, 80 size."""
    if f.structure == "df":
        body = bytes.fromhex("82 02 78 21")
    elif f.structure == "transparent":
        body = bytes.fromhex("82 02 41 21") + bytes((0x80, 2)) + f.size.to_bytes(2, "big")
    else:
        length, count = len(f.records[0]), len(f.records)
        body = (bytes((0x82, 5, 0x42, 0x21, 0x00, length, count))
                + bytes((0x80, 2)) + f.size.to_bytes(2, "big"))
    body += bytes((0x83, 2)) + f.fid.to_bytes(2, "big") + bytes.fromhex("8A 01 05")
    return bytes((0x62, len(body))) + body


def _gsm_response(f: _File) -> bytes:
    """TS 51.011 9.2.1 select response. EF: byte 14 (index 13) structure, 15 record length."""
    fid = f.fid.to_bytes(2, "big")
    if f.structure == "df":
        dfs = sum(c.structure == "df" for c in f.children.values())
        gsm = bytes((0x93, dfs, len(f.children) - dfs, 0x04, 0x00, 0x83, 0x8A, 0x83, 0x8A))
        kind = 0x01 if f.parent is None else 0x02
        return b"\0\0\x10\x00" + fid + bytes((kind, 0, 0, 0, 0, 0, len(gsm))) + gsm
    access = bytes((0x14, 0xFF, 0x44)) if f.protected else bytes((0x0F, 0xFF, 0xFF))
    structure, length = (0x01, len(f.records[0])) if f.structure == "linear" else (0x00, 0x00)
    return (b"\0\0" + f.size.to_bytes(2, "big") + fid + bytes((0x04, 0x00)) + access
            + bytes((0x01, 0x02, structure, length)))


class VirtualCard:
    """A SIM, UICC, bank or mute card answering C-APDUs; never raises on any input."""

    def __init__(self, profile: CardProfile) -> None:
        self.profile = profile
        self.uicc = profile.kind == "uicc"
        self.cla = CLA_UICC if self.uicc else CLA_SIM
        self.mf = _file_system(profile) if profile.kind in ("uicc", "sim") else None
        self.apdus = 0                   # C-APDUs received
        self.received: list[bytes] = []  # and each of them, in order
        self.verify_seen = False         # the kiosk must never present a PIN
        self.df: _File | None = None     # the current DF and EF (set by reset)
        self.ef: _File | None = None
        self.pending = b""
        self.reset()

    def atr(self) -> bytes:
        return self.profile.atr

    def reset(self) -> None:
        """Power-on / reset: back to the MF, nothing pending."""
        self.df, self.ef, self.pending = self.mf, None, b""

    def _sw(self, uicc_sw: int, sim_sw: int, data: bytes = b"") -> bytes:
        return status(uicc_sw if self.uicc else sim_sw, data)

    def selected(self) -> list[int]:
        """The file ids of every SELECT received, in order (whatever the card answered)."""
        return [int.from_bytes(c[5:7], "big") for c in self.received
                if len(c) >= 7 and c[1] == INS_SELECT]

    def process(self, capdu: bytes) -> bytes:
        self.apdus += 1
        self.received.append(bytes(capdu))
        if self.profile.kind == "mute":
            return b""                                   # a mute card never answers
        try:
            cmd = parse_command(bytes(capdu))
        except ApduError:
            return status(0x6700)
        if cmd.ins == INS_VERIFY:
            self.verify_seen = True
            return status(0x6D00)
        if self.mf is None:                              # bank card: no SIM file system
            return status(0x6E00 if cmd.cla != CLA_UICC else
                          0x6A82 if cmd.ins == INS_SELECT else 0x6D00)
        if cmd.cla != self.cla:
            return status(0x6E00)
        pending, self.pending = self.pending, b""        # available to the next command only
        handler = {INS_SELECT: self._select, INS_GET_RESPONSE: self._get_response,
                   INS_READ_BINARY: self._read_binary, INS_READ_RECORD: self._read_record}
        if cmd.ins not in handler:
            return status(0x6D00)
        return handler[cmd.ins](cmd, pending)

    def _find(self, fid: int) -> _File | None:
        """Selectable from the current DF: the MF, the DF itself, its children, its parent,
        and the parent's child DFs (TS 51.011 6.5)."""
        df, mf = self.df, self.mf
        assert df is not None and mf is not None
        if fid == mf.fid:
            return mf
        if fid == df.fid:
            return df
        if fid in df.children:
            return df.children[fid]
        parent = df.parent
        if parent is not None:
            if fid == parent.fid:
                return parent
            sibling = parent.children.get(fid)
            if sibling is not None and sibling.structure == "df":
                return sibling
        return None

    def _select(self, cmd: Apdu, pending: bytes) -> bytes:
        if self.uicc and (cmd.p1 != 0x00 or cmd.p2 not in (0x04, 0x0C)):
            return status(0x6A86)
        if not self.uicc and (cmd.p1, cmd.p2) != (0x00, 0x00):
            return status(0x6B00)
        if len(cmd.data) != 2:
            return status(0x6700)
        f = self._find(int.from_bytes(cmd.data, "big"))
        if f is None:
            return self._sw(0x6A82, 0x9404)
        if f.structure == "df":
            self.df, self.ef = f, None
        else:
            self.ef = f
        if self.uicc and cmd.p2 == 0x0C:
            return status(0x9000)
        self.pending = _fcp(f) if self.uicc else _gsm_response(f)
        return status((0x6100 if self.uicc else 0x9F00) | len(self.pending))

    def _get_response(self, cmd: Apdu, pending: bytes) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return self._sw(0x6A86, 0x6B00)
        if not pending:
            return status(0x6985)
        wanted = cmd.le or 256
        if wanted > len(pending):
            self.pending = pending                       # still there for the right Le
            return status(0x6C00 | len(pending))
        self.pending = pending[wanted:]
        if self.pending:
            return status((0x6100 if self.uicc else 0x9F00) | len(self.pending), pending[:wanted])
        return status(0x9000, pending)

    def _current_ef(self, structure: str) -> bytes | _File:
        """The current EF if it has that structure, else the status to answer."""
        if self.ef is None:
            return self._sw(0x6986, 0x9400)
        if self.ef.structure != structure:
            return self._sw(0x6981, 0x9408)
        if self.ef.protected:
            return self._sw(0x6982, 0x9804)
        return self.ef

    def _read_binary(self, cmd: Apdu, pending: bytes) -> bytes:
        if cmd.data:
            return status(0x6700)
        f = self._current_ef("transparent")
        if isinstance(f, bytes):
            return f
        if cmd.p1 & 0x80:                                 # short file id: not supported here
            return self._sw(0x6A86, 0x6B00)
        offset = (cmd.p1 << 8) | cmd.p2
        if offset >= len(f.content):
            return status(0x6B00)
        left = len(f.content) - offset
        wanted = cmd.le or 256
        if wanted > left:
            return status(0x6C00 | (left & 0xFF))
        return status(0x9000, f.content[offset:offset + wanted])

    def _read_record(self, cmd: Apdu, pending: bytes) -> bytes:
        if cmd.data:
            return status(0x6700)
        if cmd.p2 != 0x04:
            return self._sw(0x6A86, 0x6B00)
        f = self._current_ef("linear")
        if isinstance(f, bytes):
            return f
        if not 1 <= cmd.p1 <= len(f.records):
            return self._sw(0x6A83, 0x9402)
        record = f.records[cmd.p1 - 1]
        if (cmd.le or 256) != len(record):
            return status(0x6C00 | len(record))
        return status(0x9000, record)


# --- the card side of vsmartcard's vpcd protocol ------------------------------------------------

VPCD_POWER_OFF, VPCD_POWER_ON, VPCD_RESET, VPCD_ATR = 0x00, 0x01, 0x02, 0x04

# How a mute card (no ATR: upside down, dead) looks to pcscd 1.9.9 + vpcd 3.3, found by trying:
# - vpcd asks for the ATR (04) at every presence poll (every ~400 ms); an EMPTY reply
#   wedges vpcd: pcscd's event thread for that reader hangs (no more polls, the reader
#   keeps reporting EMPTY) until the connection is closed. Never send an empty ATR.
# - What works: answer every presence probe (04) with some bytes, and
#   when vpcd powers the card on (01), drop the connection and connect again at once.
#   vpcd then fails IFDHPowerICC ("Virtual ICC removed"), pcscd logs "Error powering up
#   card" and sets SCARD_SWALLOWED: readers show SCARD_STATE_PRESENT | SCARD_STATE_MUTE
#   (0x222 with CHANGED) and an empty ATR. pcscd does not power a card it already
#   considers present, so the state stays MUTE; SCardConnect tries again and fails with
#   SCARD_W_UNPOWERED_CARD (0x80100067), and the card is still MUTE afterwards.
MUTE_PROBE_ATR = b"\x3b\x00"    # only seen by vpcd's presence probe, never by applications


class VpcdCard:
    """A VirtualCard in a vpcd reader: connecting is inserting it, closing is pulling it.

    vpcd (pcscd's driver) starts every exchange; frames are a 2-byte big-endian length and
    a payload. One-byte payloads are control: 00 power off, 01 power on, 02 reset (no
    reply), 04 get ATR (reply: the ATR). Anything else is a C-APDU, answered with the R-APDU.

    TCP_QUICKACK matters, TCP_NODELAY alone does not: without it every C-APDU waits ~47 ms
    for a delayed ACK (a 15-APDU read took 704 ms through pcscd; with it, 2 ms).
    """

    def __init__(self, profile: CardProfile, host: str = "127.0.0.1", port: int = 35963) -> None:
        self.host, self.port = host, port
        self.profile = profile
        self.card = VirtualCard(profile)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self) -> None:
        """Connect to vpcd and answer it on a daemon thread; ConnectionError if none listens."""
        with self._lock:
            if self._sock is not None:
                return
            sock = self._connect()
            self._sock = sock
            self.card.reset()
            threading.Thread(target=self._serve, args=(sock,), daemon=True,
                             name=f"vpcd-card-{self.port}").start()

    def remove(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            _close(sock)

    def swap(self, profile: CardProfile) -> None:
        """Pull this card and push in another one."""
        self.remove()
        self.profile = profile
        self.card = VirtualCard(profile)
        self.insert()

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2.0)
        except OSError as exc:
            raise ConnectionError(
                f"no vpcd reader on {self.host}:{self.port} (is pcscd running with the vpcd "
                f"driver and CHANNELID {self.port:#06x}?): {exc}") from exc
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _quickack(sock)
        return sock

    def _serve(self, sock: socket.socket) -> None:
        current: socket.socket | None = sock
        try:
            while current is not None and self._answer(current) == "mute":
                current = self._replug(current)
        except Exception:
            log.exception("virtual card stopped")
        finally:
            if current is not None:
                with self._lock:
                    if self._sock is current:
                        self._sock = None
                _close(current)

    def _answer(self, sock: socket.socket) -> str:
        """Answer vpcd until it hangs up ("closed"), the card is pulled ("pulled"), or a mute
        card is powered on ("mute")."""
        card, answered = self.card, 0
        try:
            while (frame := _recv_frame(sock)) is not None:
                reply = None
                if len(frame) != 1:
                    reply, answered = card.process(frame), answered + 1
                elif frame[0] == VPCD_ATR:
                    reply = card.atr() or MUTE_PROBE_ATR
                elif frame[0] in (VPCD_POWER_ON, VPCD_RESET):
                    if self.profile.kind == "mute":
                        return "mute"
                    card.reset()
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
                _quickack(sock)
                if self.profile.pull_after is not None and answered >= self.profile.pull_after:
                    log.info("virtual card pulled after %d C-APDUs", answered)
                    return "pulled"
        except OSError as exc:
            log.debug("virtual card connection ended: %s", exc)
        return "closed"

    def _replug(self, old: socket.socket) -> socket.socket | None:
        """Drop the connection and make a new one at once: pcscd sees the card stay in."""
        _close(old)
        try:
            new = self._connect()
        except ConnectionError as exc:
            log.warning("mute virtual card lost its reader: %s", exc)
            with self._lock:
                if self._sock is old:
                    self._sock = None
            return None
        with self._lock:
            if self._sock is old:                # not removed meanwhile
                self._sock = new
                return new
        _close(new)
        return None


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_frame(sock: socket.socket) -> bytes | None:
    header = _recv_exact(sock, 2)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    return _recv_exact(sock, size) if size else b""


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):         # Linux: it resets itself, so set it often
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass                                 # the socket is already closed


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass                                     # not connected any more
    sock.close()
