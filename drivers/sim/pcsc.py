"""The SIM reader over PC/SC (pcsc-lite through pyscard's low-level `smartcard.scard`).

One worker thread owns its own PC/SC context and loops `SCardGetStatusChange` with a
short timeout on the configured reader (matched by a regular expression, never by index)
and on the `\\\\?PnP?\\Notification` pseudo-reader, so readers coming and going are seen.
The upper 16 bits of a reader's event state count card events: a card pulled and pushed
back between two polls still changes the counter, and is read again.

pyscard's CardMonitor thread dies silently when pcscd restarts, so it is not used: on
"no service" errors this loop drops its context, reports the service lost, and builds a
new context with back-off until pcscd is back.

What it posts to the kiosk (thread-safely, through the sink):
    SimIdentified(iccid)          a SIM/UICC was read
    SimUnreadable(reason)         not a SIM, mute card, bad ICCID, pulled mid-read, ...
    SimRemoved()                  the card left the reader
    DeviceStatus("sim_reader", ok, detail)   reader or service lost / back
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk import events as ev

from ..base import SimReader, Sink
from .card import NotASim, SimInfo, SimReadError, read_sim

log = logging.getLogger("kiosk.sim")

PNP = "\\\\?PnP?\\Notification"

# PC/SC constants (winscard.h); pyscard exposes them too, but these keep the pure parts of
# this module importable and testable without the C extension.
STATE_UNAWARE = 0x0000
STATE_CHANGED = 0x0002
STATE_UNKNOWN = 0x0004
STATE_UNAVAILABLE = 0x0008
STATE_EMPTY = 0x0010
STATE_PRESENT = 0x0020
STATE_MUTE = 0x0200

S_OK = 0
E_CANCELLED = 0x80100002
E_INVALID_HANDLE = 0x80100003
E_UNKNOWN_READER = 0x80100009
E_TIMEOUT = 0x8010000A
E_NO_SMARTCARD = 0x8010000C
F_COMM_ERROR = 0x80100013
E_READER_UNAVAILABLE = 0x80100017
E_NO_SERVICE = 0x8010001D
E_SERVICE_STOPPED = 0x8010001E
E_NO_READERS_AVAILABLE = 0x8010002E
W_UNRESPONSIVE_CARD = 0x80100066
W_UNPOWERED_CARD = 0x80100067
W_RESET_CARD = 0x80100068
W_REMOVED_CARD = 0x80100069

SERVICE_LOST = {E_NO_SERVICE, E_SERVICE_STOPPED, F_COMM_ERROR, E_INVALID_HANDLE}
CARD_GONE = {W_REMOVED_CARD, E_NO_SMARTCARD, W_RESET_CARD, W_UNPOWERED_CARD}


def u32(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def counter(event_state: int) -> int:
    """The card event counter pcsc-lite keeps in the upper 16 bits of the event state."""
    return (event_state >> 16) & 0xFFFF


class _ServiceLost(Exception):
    pass


class _CardIO(Exception):
    """A transmit failed at the transport level (card pulled, reader gone)."""

    def __init__(self, hresult: int) -> None:
        super().__init__(f"0x{hresult:08X}")
        self.hresult = hresult


@dataclass
class ReadTiming:
    present_at: float          # monotonic time the loop saw PRESENT
    decoded_at: float          # monotonic time the ICCID was decoded
    apdus: int

    @property
    def ms(self) -> float:
        return (self.decoded_at - self.present_at) * 1000


class PcscSimReader(SimReader):
    def __init__(self, reader: str = ".*", poll_ms: int = 500, demo_vpcd_port: int = 0,
                 scard: Any = None) -> None:
        self.pattern = re.compile(reader)
        self.poll_ms = poll_ms
        self.scard = scard
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: Any = None
        self.reader_name: str | None = None
        self.reader_ok: bool | None = None
        self.card_reported = False
        self.last_read: ReadTiming | None = None
        self.last_info: SimInfo | None = None
        self.on_read: Callable[[ReadTiming, SimInfo | None], None] | None = None
        # The demo panel's SIM slot: a virtual card for the vpcd reader on this port.
        self.virtual = None
        if demo_vpcd_port:
            from .slot import VpcdSlot
            self.virtual = VpcdSlot(port=demo_vpcd_port)

    # ------------------------------------------------------------------ life cycle
    async def start(self, sink: Sink) -> None:
        self.sink = sink
        if self.scard is None:
            from smartcard import scard  # imported here: only kiosks with PC/SC need it
            self.scard = scard
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pcsc-sim", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        ctx = self._ctx
        if ctx is not None:
            self.scard.SCardCancel(ctx)        # wakes SCardGetStatusChange at once
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.virtual is not None:
            self.virtual.remove()

    def diagnostics(self) -> dict[str, object]:
        return {"driver": "pcsc", "reader": self.reader_name, "reader_ok": self.reader_ok,
                "card": self.card_reported,
                "last_read_ms": round(self.last_read.ms, 2) if self.last_read else None}

    # ------------------------------------------------------------------ reporting
    def _post(self, e: ev.Record) -> None:
        try:
            self.sink(e)
        except Exception:   # the loop must survive a closed event loop at exit
            log.exception("posting %s", type(e).__name__)

    def _reader_status(self, ok: bool, detail: str) -> None:
        if ok != self.reader_ok:
            self.reader_ok = ok
            (log.info if ok else log.error)("SIM reader %s: %s", "back" if ok else "lost",
                                            detail)
            self._post(ev.DeviceStatus("sim_reader", ok, detail))

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        backoff = 0.25
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.25
            except _ServiceLost as exc:
                self._reader_status(False, f"PC/SC service unavailable ({exc})")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 4.0)
            except Exception:   # a bug here must not end card reading for good
                log.exception("SIM reader loop failed; restarting it")
                self._stop.wait(1.0)

    def _check(self, hresult: int, what: str) -> int:
        hr = u32(hresult)
        if hr in SERVICE_LOST:
            raise _ServiceLost(f"{what}: 0x{hr:08X}")
        return hr

    def _session(self) -> None:
        sc = self.scard
        hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        if u32(hr) != S_OK:
            raise _ServiceLost(f"SCardEstablishContext: 0x{u32(hr):08X}")
        self._ctx = ctx
        try:
            self._watch(ctx)
        finally:
            self._ctx = None
            sc.SCardReleaseContext(ctx)

    def _find_reader(self, ctx: Any) -> str | None:
        hr, readers = self.scard.SCardListReaders(ctx, [])
        hr = self._check(hr, "SCardListReaders")
        if hr == E_NO_READERS_AVAILABLE or hr != S_OK:
            return None
        matches = [r for r in readers if self.pattern.search(r)]
        return matches[0] if matches else None

    def _watch(self, ctx: Any) -> None:
        sc = self.scard
        pnp_state = STATE_UNAWARE
        reader: str | None = None
        state = STATE_UNAWARE
        while not self._stop.is_set():
            found = self._find_reader(ctx)
            if found is None:
                if reader is not None or self.reader_ok is not False:
                    self._card_gone()
                    self._reader_status(False, f"no reader matches {self.pattern.pattern!r}")
                reader = None
                hr, new = sc.SCardGetStatusChange(ctx, self.poll_ms, [(PNP, pnp_state)])
                hr = self._check(hr, "SCardGetStatusChange")
                if hr == E_CANCELLED:
                    return
                if hr == S_OK:
                    pnp_state = new[0][1] & ~STATE_CHANGED
                continue
            if found != reader:
                reader, state = found, STATE_UNAWARE
                self.reader_name = reader
                self._reader_status(True, reader)
            hr, new = sc.SCardGetStatusChange(ctx, self.poll_ms,
                                              [(reader, state), (PNP, pnp_state)])
            hr = self._check(hr, "SCardGetStatusChange")
            if hr == E_TIMEOUT:
                continue
            if hr == E_CANCELLED:
                return
            if hr in (E_UNKNOWN_READER, E_READER_UNAVAILABLE):
                reader = None
                continue
            if hr != S_OK:
                log.warning("SCardGetStatusChange: 0x%08X", hr)
                self._stop.wait(0.2)
                continue
            for name, event, _atr in new:
                if name == PNP:
                    pnp_state = event & ~STATE_CHANGED
                elif name == reader:
                    if event & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                        self._card_gone()
                        reader = None
                        break
                    self._on_reader_event(ctx, reader, state, event)
                    state = event & ~STATE_CHANGED

    # ------------------------------------------------------------------ card events
    def _card_gone(self) -> None:
        if self.card_reported:
            self.card_reported = False
            self._post(ev.SimRemoved())

    def _on_reader_event(self, ctx: Any, reader: str, before: int, now: int) -> None:
        present = bool(now & STATE_PRESENT)
        was_present = bool(before & STATE_PRESENT)
        reinserted = was_present and present and counter(now) != counter(before)
        if not present:
            self._card_gone()
            return
        if was_present and not reinserted:
            return                                   # same card, some other flag changed
        if reinserted:
            log.info("card pulled and pushed back between two polls")
            self._card_gone()
        seen = time.monotonic()
        self.card_reported = True
        if now & STATE_MUTE:
            self._post(ev.SimUnreadable("mute"))
            return
        self._read(ctx, reader, seen)

    def _read(self, ctx: Any, reader: str, seen: float) -> None:
        info: SimInfo | None = None
        try:
            info = connect_and_read(self.scard, ctx, reader, spn=False)   # the ICCID only
        except CardUnreadable as exc:
            log.warning("SIM not read: %s (%s)", exc.reason, exc)
            self._post(ev.SimUnreadable(exc.reason))
            return
        self.last_read = ReadTiming(seen, time.monotonic(), info.apdus)
        self.last_info = info
        if self.on_read is not None:
            self.on_read(self.last_read, info)
        log.info("SIM read: %s, ICCID ...%s, %d APDUs in %.1f ms", info.kind.value,
                 info.iccid[-4:], info.apdus, self.last_read.ms)
        self._post(ev.SimIdentified(info.iccid))


class CardUnreadable(Exception):
    """No ICCID from this card; `reason` is the SimUnreadable reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def connect_and_read(sc: Any, ctx: Any, reader: str, spn: bool = False) -> SimInfo:
    """Connect (shared), read the SIM, disconnect leaving the card powered (a card pulled
    and re-inserted within ~400 ms after an unpower/reset can stay invisible to pcscd).

    The kiosk reads the ICCID only (`spn=False`); the technician's `kiosk diag sim` (this
    default) the operator name too. Nothing else is ever read (card.py)."""
    hr, card, proto = sc.SCardConnect(ctx, reader, sc.SCARD_SHARE_SHARED,
                                      sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
    hr = u32(hr)
    if hr in SERVICE_LOST:
        raise _ServiceLost(f"SCardConnect: 0x{hr:08X}")
    if hr != S_OK:
        # A card that does not answer reset is "unresponsive" or, once pcscd gave up
        # powering it, "unpowered": both mean a mute card (upside down, dead).
        reason = "mute" if hr in (W_UNRESPONSIVE_CARD, W_UNPOWERED_CARD) else (
            "removed" if hr in CARD_GONE else "unreadable")
        raise CardUnreadable(reason, f"SCardConnect: 0x{hr:08X}")

    def transmit(capdu: bytes) -> bytes:
        thr, resp = sc.SCardTransmit(card, proto, list(capdu))
        thr = u32(thr)
        if thr != S_OK:
            raise _CardIO(thr)
        if len(resp) < 2:
            # vpcd reports a card pulled mid-exchange as success with no status word
            raise _CardIO(W_REMOVED_CARD)
        return bytes(resp)

    try:
        return read_sim(transmit, spn=spn)
    except NotASim as exc:
        raise CardUnreadable("not_sim", str(exc)) from None
    except SimReadError as exc:
        raise CardUnreadable(exc.reason, str(exc)) from None
    except _CardIO as exc:
        gone = exc.hresult in CARD_GONE or _left_reader(sc, ctx, reader)
        raise CardUnreadable("removed" if gone else "unreadable",
                             f"card I/O failed: {exc}") from None
    finally:
        sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)


def _left_reader(sc: Any, ctx: Any, reader: str, wait_ms: int = 600) -> bool:
    """After a failed exchange: was the card pulled out? Some readers (vpcd among them)
    report a pull mid-exchange as a failed transaction, and notice the empty slot only at
    their next presence poll (pcscd polls every 400 ms), so wait that long for it."""
    hr, new = sc.SCardGetStatusChange(ctx, wait_ms, [(reader, STATE_PRESENT)])
    if u32(hr) == S_OK:
        return not new[0][1] & STATE_PRESENT
    return False
