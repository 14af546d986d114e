"""JCM ID-003 banknote acceptor over a serial port (pyserial), on its own thread.

A thin adapter: the protocol is `id003.py` (pure), the escrow cycle is `escrow.py` (a pure
state machine), the thread and the reconnection with back-off are `SerialWorker`'s, and
`line.py` matches answers to commands. This module owns the port: one command at a time, a
status request every `poll_ms`, an answer that fits the command within `reply_timeout_ms`
(`retries` tries; an answer that comes after a try was given up is taken off the line before
the next command, never read as its answer), and it executes what the state machine
returns: frames to send, events to hand over.

`reply_timeout_ms` (1000 by default) is well above the 100-400 ms some acceptors and
USB-serial adapters take to answer, and covers a device that still had the host's ACK (which
it does not answer) to get to before the poll after it.

Note outcomes (NoteCredited, NoteReturned, NoteInDoubt, each with value and key) go to
`commit`, which makes them durable without waiting for the UI loop; only when it returns
True does the machine learn of it (`on_committed`) and VEND VALID get its ACK. With no
`commit` (driver tests, tools) they are posted through the sink and taken as durable. Every
other event (NoteEscrowed, NoteRejected, CashFault, NoteAtPowerUp) goes through the sink.

A line fault (no answer, a corrupt one, the port gone) never RESETs the acceptor: the port
is opened again and the cycle continues from the status the device reports. RESET is sent
at the first start and after the device itself reports a power-up, once no note is in
transit; at the first start `pending_note()` names the note a previous process (killed
between STACK and the ACK) left in flight, and the machine settles it from what the
acceptor says (see escrow.py). A STACK or RETURN decided for a note is sent only for that
note, in escrow with no gap in the line since (decisions.py): one decided before a line
fault, or for a note the acceptor no longer shows, is dropped, never sent after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from kiosk import events as ev

from ..base import BillAcceptor, Sink
from ..serialworker import NotAnswering, PortGone, SerialWorker
from . import decisions, escrow, id003
from .id003 import Command, Status
from .line import Line

log = logging.getLogger("kiosk.cash")


class Id003Acceptor(SerialWorker, BillAcceptor):
    thread_name = "id003"
    what = "note acceptor"
    logger = log
    init_timeout_s = 10.0                     # RESET -> out of INITIALIZE / POWER_UP

    def __init__(self, port: str = "", poll_ms: int = 150, reply_timeout_ms: int = 1000,
                 retries: int = 3, transient_timeout_s: float = 10.0,
                 escrow_timeout_s: float = 10.0, denominations: tuple[int, ...] = (),
                 currency: str = "PHP") -> None:
        SerialWorker.__init__(self, port)
        self.poll_s = poll_ms / 1000
        self.transient_timeout_s = transient_timeout_s
        self.escrow_timeout_s = escrow_timeout_s
        self.denominations = tuple(denominations)
        self.currency = currency
        self.commit: Callable[[ev.Record], bool] | None = None
        self.pending_note: Callable[[], Any] | None = None    # -> kiosk.gate.PendingNote | None
        self._requests: queue.Queue[tuple[str, int, str]] = queue.Queue()
        self.line = Line(self._io, reply_timeout_ms / 1000, retries, self._stop.is_set)
        self.fsm = escrow.EscrowState(escrow_timeout_s=escrow_timeout_s,
                                      transient_timeout_s=transient_timeout_s)
        self.values: dict[int, int] = {}          # escrow code -> minor units
        self.enabled = False
        self.ok: bool | None = None
        self.version = ""
        self.status: Status | None = None
        self.polls = 0
        self.poll_cpu_s = 0.0
        self.timings: list[tuple[str, float]] = []   # benchmark hooks: (what, seconds)
        self._escrow_seen = 0.0
        self._failures = 0                        # line failures in a row

    # ------------------------------------------------------------------ interface
    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self._start_worker()

    async def stop(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._stop_worker)

    def _request(self, what: str, value: int = 0, key: str = "") -> None:
        self._requests.put((what, value, key))
        self._wake.set()

    def enable(self) -> None:
        self.enabled = True
        self._request("enable", 1)

    def disable(self) -> None:
        self.enabled = False
        self._request("enable", 0)

    def stack(self, value: int, key: str = "") -> None:
        self._request("stack", value, key)

    def return_note(self, value: int, key: str = "") -> None:
        self._request("return", value, key)

    @property
    def fault(self) -> str | None:
        return self.fsm.fault

    @property
    def note(self) -> int | None:
        """The value of the note in transit (escrow to its outcome), None if none."""
        return self.fsm.note.value if self.fsm.note is not None else None

    def diagnostics(self) -> dict[str, object]:
        f = self.fsm
        return {"driver": "id003", "port": self.port, "ok": self.ok, "fault": f.fault,
                "version": self.version, "status": self.status.name if self.status else None,
                "stage": f.stage.value, "note": f.note.key if f.note else None,
                "owed": len(f.owed), "enabled": self.enabled, "polls": self.polls}

    # ------------------------------------------------------------------ reporting
    def _post(self, e: ev.Record) -> None:
        try:
            self.sink(e)
        except Exception:   # never let a closing loop kill the device thread
            log.exception("posting %s", type(e).__name__)

    def _set_ok(self, ok: bool, detail: str) -> None:
        if ok != self.ok:
            self.ok = ok
            (log.info if ok else log.error)("note acceptor %s: %s", "ready" if ok else
                                            "out of service", detail)
            self._post(ev.DeviceStatus("cash", ok, detail))

    def _apply(self, step: escrow.Step) -> None:
        """Take the machine's new state, hand its events over, send its frames."""
        self.fsm, sends, events = step
        for e in events:
            self._report(e)
        for s in sends:
            self._send(s)

    def _report(self, e: ev.Record) -> None:
        match e:
            case ev.NoteCredited() | ev.NoteReturned() | ev.NoteInDoubt():
                t0 = time.monotonic()
                if not self._commit(e):
                    log.warning("%s of note %s not durable: no answer to the acceptor yet",
                                type(e).__name__, e.key)
                    return
                if isinstance(e, ev.NoteCredited):
                    self.timings.append(("credit_journaled", time.monotonic() - t0))
                self._apply(escrow.on_committed(self.fsm, e.key))
            case ev.DeviceStatus(ok=ok, detail=detail):
                self._set_ok(ok, detail)
            case ev.NoteEscrowed():
                self._escrow_seen = time.monotonic()
                self._post(e)
            case _:
                if isinstance(e, (ev.CashFault, ev.NoteAtPowerUp)):
                    log.warning("note acceptor: %s", e)
                self._post(e)

    def _commit(self, e: ev.Record) -> bool:
        if self.commit is None:
            self._post(e)
            return True
        try:
            return bool(self.commit(e))
        except Exception:   # not durable: the device is not answered
            log.exception("committing %s", type(e).__name__)
            return False

    def _send(self, s: escrow.Send) -> None:
        if s.command == Command.ACK:
            self._write(id003.encode(Command.ACK))    # the device does not answer it
        elif s.command == Command.RESET:
            self._reset()
        else:
            if s.command == Command.STACK_1 and self._escrow_seen:
                self.timings.append(("stack_sent", time.monotonic() - self._escrow_seen))
                self._escrow_seen = 0.0
            self._exchange(s.command, s.data)

    # ------------------------------------------------------------------ transport
    def _open(self) -> None:
        # 9600 8E1. A pseudo-terminal (the simulator) carries no parity bit, and Linux
        # refuses (EINVAL) to set PARENB again on a pty that had it: parity N there.
        parity = "N" if os.path.realpath(self.port).startswith("/dev/pts/") else "E"
        self._open_port(baudrate=9600, bytesize=8, parity=parity, stopbits=1, timeout=0.02)
        self.line.opened(self._serial)

    def _write(self, frame: bytes) -> None:
        self.line.write(frame)

    def _exchange(self, cmd: int, data: bytes = b"") -> id003.Frame:
        """Send one frame and return its own answer (see line.py); NotAnswering."""
        return self.line.exchange(cmd, data)

    def _status(self) -> id003.StatusReport:
        return id003.parse_status(self._exchange(Command.STATUS_REQUEST))

    # ------------------------------------------------------------------ the loop
    # SerialWorker's loop: _open, _connect, _serve until the line fails; _down; back off.
    def _connect(self) -> None:
        report = self._status()
        now = time.monotonic()
        if not self.fsm.started:
            self._identify()                   # the currency table names escrow codes
            pending = self.pending_note() if self.pending_note is not None else None
            if pending is not None:
                log.warning("note %s (%d) was in flight at start", pending.key, pending.value)
            self.status = report.status
            self._apply(escrow.on_start(self.fsm, pending, report, now))
        else:
            self._on_status(report)            # the cycle goes on where it was
        self._failures = 0
        if self.fsm.configured and self.fsm.fault is None:
            self._set_ok(True, f"ID-003 {self.version} on {self.port}")

    def _serve(self) -> None:
        while not self._stop.is_set():
            started, cpu0 = time.monotonic(), time.thread_time()
            self._take_requests()
            self._on_status(self._status())
            self.polls += 1
            self.poll_cpu_s += time.thread_time() - cpu0
            self._wake.wait(max(0.0, self.poll_s - (time.monotonic() - started)))
            self._wake.clear()

    def _down(self, detail: str) -> None:
        if self._stop.is_set():
            return                             # stopping is not a fault
        self._apply(escrow.on_link_lost(self.fsm, time.monotonic()))
        self._failures += 1
        # One lost exchange is reopened at once; out of service when that fails too.
        if self._failures > 1 or self.ok is None or not self.fsm.configured:
            self._set_ok(False, detail)

    def _on_status(self, report: id003.StatusReport) -> None:
        self.status = report.status
        self._apply(decisions.on_status(self.fsm, report, time.monotonic()))

    def _take_requests(self) -> None:
        while True:
            try:
                what, value, key = self._requests.get_nowait()
            except queue.Empty:
                return
            if what == "enable":
                self._apply(escrow.on_enable(self.fsm, bool(value)))
                continue
            n = self.fsm.note
            if not key and n is not None and n.value == value:
                key = n.key                    # a caller that does not name the note
            if n is None or n.key != key or self.fsm.stage is not escrow.Stage.ESCROW:
                log.info("%s of note %s dropped: not the note in escrow now", what, key)
            before = self.fsm
            try:
                self._apply(escrow.on_decision(self.fsm, what, key, time.monotonic()))
            except PortGone:
                if not self.line.frame_out:    # it never left: the note is undecided
                    log.warning("%s of note %s dropped: the port went first", what, key)
                    self.fsm = before
                raise

    # ------------------------------------------------------------------ start-up
    def _identify(self) -> None:
        """Version and currency table; every configured note must be in the table."""
        version = self._exchange(Command.GET_VERSION)
        self.version = version.data.decode("ascii", "replace").strip()
        table = id003.parse_currency_table(self._exchange(Command.GET_CURRENCY).data)
        self.values = {code: d.minor(self.currency) for code, d in table.items()}
        missing = sorted(set(self.denominations) - set(self.values.values()))
        if missing:
            self._exchange(Command.INHIBIT, id003.INHIBIT_ON)
            self._set_ok(False, f"currency table lacks {missing} "
                                f"(has {sorted(self.values.values())})")
            raise NotAnswering("currency table mismatch")
        self.fsm = replace(self.fsm, values=MappingProxyType(dict(self.values)))

    def _reset(self) -> None:
        """RESET (the machine asks only with no note in transit), wait for the device,
        configure it, and start a new epoch of note keys."""
        self._exchange(Command.RESET)
        deadline = time.monotonic() + self.init_timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if self._status().status not in (Status.INITIALIZE, Status.POWER_UP):
                break
            self._stop.wait(self.poll_s)
        self._identify()
        wanted = [c for c, v in self.values.items() if v in self.denominations]
        self._exchange(Command.ENABLE_DENOMINATIONS, id003.denomination_mask(wanted))
        self._exchange(Command.INHIBIT, id003.INHIBIT_OFF if self.enabled
                       else id003.INHIBIT_ON)
        self._apply(escrow.on_reset(self.fsm, secrets.token_hex(4), time.monotonic()))
        self._set_ok(True, f"ID-003 {self.version} on {self.port}")
