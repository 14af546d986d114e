"""JCM ID-003 banknote acceptor over a serial port (pyserial), on its own thread.

The protocol is `drivers/bill/id003.py` (pure); this module owns the port and the device
loop: one command at a time, a status request every `poll_ms`, replies within
`reply_timeout_ms` with `retries`, and reconnection with back-off when the port vanishes
(a USB-serial adapter unplugged), resuming a note that was in flight.

The escrow decision belongs to the engine: NoteEscrowed is posted, and `stack()` or
`return_note()` come back from the engine's effects. The credit point is VEND VALID:
NoteCredited is handed to `commit`, which returns only once the kiosk has journaled it,
and only then is the ACK sent; VEND VALID repeats until ACKed, and a repeat is never
credited twice. A note found in the stacker or the acceptor at power-up is journaled
(NoteAtPowerUp) for reconciliation, or credited when it is the note that was in flight.
Faults (jam, stacker full/open, cheat, failure, a transient state that does not end
within `transient_timeout_s`) inhibit the acceptor and post CashFault.
"""

from __future__ import annotations

import logging
import os
import queue
import termios
import threading
import time
from typing import Any, Callable

from kiosk import events as ev

from ..base import BillAcceptor, Sink
from . import id003
from .id003 import Command, Status

log = logging.getLogger("kiosk.cash")

FAULTS = {
    Status.STACKER_FULL: "stacker_full", Status.STACKER_OPEN: "stacker_open",
    Status.ACCEPTOR_JAM: "acceptor_jam", Status.STACKER_JAM: "stacker_jam",
    Status.CHEATED: "cheated", Status.FAILURE: "failure",
}
TRANSIENT = {Status.ACCEPTING, Status.STACKING, Status.VEND_VALID, Status.STACKED,
             Status.REJECTING, Status.RETURNING, Status.INITIALIZE, Status.PAUSE}


class _PortGone(Exception):
    pass


class _NoAnswer(Exception):
    pass


class Id003Acceptor(BillAcceptor):
    def __init__(self, port: str = "", poll_ms: int = 150, reply_timeout_ms: int = 300,
                 retries: int = 3, transient_timeout_s: float = 10.0,
                 escrow_timeout_s: float = 5.0, denominations: tuple[int, ...] = (),
                 currency: str = "PHP", simulator: bool = False) -> None:
        self.port = port
        self.poll_s = poll_ms / 1000
        self.reply_timeout_s = reply_timeout_ms / 1000
        self.retries = retries
        self.transient_timeout_s = transient_timeout_s
        self.escrow_timeout_s = escrow_timeout_s
        self.denominations = tuple(denominations)
        self.currency = currency
        self.commit: Callable[[ev.Record], bool] | None = None
        self.simulator: Any = None
        if simulator:
            # The demo and the tests: a byte-exact ID-003 device behind a real pty.
            from .simulator import Id003Simulator, default_codes
            self.simulator = Id003Simulator(default_codes(self.denominations))
            self.simulator.start()
            self.port = self.simulator.link
        self._commands: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Event()           # a command is queued: do not wait the poll
        self._thread: threading.Thread | None = None
        self._serial: Any = None
        self._decoder = id003.Decoder()
        self.values: dict[int, int] = {}          # escrow code -> minor units
        self.enabled = False
        self.ok: bool | None = None
        self.fault: str | None = None
        self.version = ""
        # The note in flight: escrow code seen, then stacking, until STACKED or returned.
        self.note: int | None = None
        self.note_stage = ""                      # "escrow" | "stacking" | "returning"
        self.credited_note = False
        self.escrow_since = 0.0
        self.status: Status | None = None
        self.status_since = 0.0
        self.polls = 0
        self.poll_cpu_s = 0.0
        self.timings: list[tuple[str, float]] = []   # benchmark hooks: (what, seconds)

    # ------------------------------------------------------------------ interface
    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="id003", daemon=True)
        self._thread.start()

    def _queue(self, cmd: int, data: bytes = b"") -> None:
        self._commands.put((cmd, data))
        self._wake.set()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self.simulator is not None:
            self.simulator.stop()

    def enable(self) -> None:
        self.enabled = True
        self._queue(Command.INHIBIT, b"\x00")

    def disable(self) -> None:
        self.enabled = False
        self._queue(Command.INHIBIT, b"\x01")

    def stack(self, value: int) -> None:
        self._queue(Command.STACK_1)

    def return_note(self, value: int) -> None:
        self._queue(Command.RETURN)

    def diagnostics(self) -> dict[str, object]:
        return {"driver": "id003", "port": self.port, "ok": self.ok, "fault": self.fault,
                "version": self.version, "status": self.status.name if self.status else None,
                "enabled": self.enabled, "polls": self.polls}

    # ------------------------------------------------------------------ reporting
    def _post(self, e: ev.Record) -> None:
        try:
            self.sink(e)
        except Exception:   # noqa: BLE001 - never let a closing loop kill the device thread
            log.exception("posting %s", type(e).__name__)

    def _set_ok(self, ok: bool, detail: str) -> None:
        if ok != self.ok:
            self.ok = ok
            (log.info if ok else log.error)("note acceptor %s: %s", "ready" if ok else
                                            "out of service", detail)
            self._post(ev.DeviceStatus("cash", ok, detail))

    # ------------------------------------------------------------------ transport
    def _open(self) -> None:
        import serial   # imported here: only kiosks with a serial acceptor need it
        # 9600 8E1. A pseudo-terminal (the simulator) carries no parity bit, and Linux
        # refuses (EINVAL) to set PARENB again on a pty that had it: parity N there.
        parity = "N" if os.path.realpath(self.port).startswith("/dev/pts/") else "E"
        try:
            self._serial = serial.Serial(self.port, 9600, bytesize=8, parity=parity,
                                         stopbits=1, timeout=0.02)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise _PortGone(str(exc)) from None
        self._decoder = id003.Decoder()

    def _close(self) -> None:
        s, self._serial = self._serial, None
        if s is not None:
            try:
                s.close()
            except Exception:   # noqa: BLE001 - closing a vanished port may fail: it is gone
                pass

    def _send_only(self, cmd: int, data: bytes = b"") -> None:
        """A frame the device does not answer (the host's ACK to VEND VALID)."""
        import serial
        try:
            self._serial.write(id003.encode(cmd, data))
        except (serial.SerialException, OSError, termios.error) as exc:
            raise _PortGone(str(exc)) from None

    def _exchange(self, cmd: int, data: bytes = b"") -> id003.Frame:
        """Send one frame, return the device's answer; retries, then _NoAnswer."""
        import serial
        frame = id003.encode(cmd, data)
        for _attempt in range(self.retries):
            try:
                self._serial.reset_input_buffer()
                self._serial.write(frame)
                deadline = time.monotonic() + self.reply_timeout_s
                while time.monotonic() < deadline:
                    # read(n) waits for n bytes or the timeout: ask for what is there
                    chunk = self._serial.read(max(1, self._serial.in_waiting))
                    if chunk:
                        frames = self._decoder.feed(chunk)
                        if frames:
                            return frames[-1]
            except (serial.SerialException, OSError, termios.error) as exc:
                raise _PortGone(str(exc)) from None
        raise _NoAnswer(f"no answer to 0x{cmd:02X} after {self.retries} tries")

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._open()
                self._startup()
                backoff = 0.2
                self._poll_loop()
            except _PortGone as exc:
                self._set_ok(False, f"port {self.port} unavailable ({exc})")
            except _NoAnswer as exc:
                self._set_ok(False, str(exc))
            except Exception:   # noqa: BLE001 - a bug must not end cash handling for good
                log.exception("note acceptor loop failed; restarting it")
                self._set_ok(False, "driver error")
            finally:
                self._close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _startup(self) -> None:
        """Power-up handling, reset, version and currency check, denominations, inhibit."""
        report = id003.parse_status(self._exchange(Command.STATUS_REQUEST))
        if report.status in (Status.POWER_UP_BILL_IN_STACKER, Status.POWER_UP_BILL_IN_ACCEPTOR):
            self._bill_at_power_up(report.status)
        elif report.status in (Status.ESCROW, Status.STACKING, Status.VEND_VALID) \
                and self.note is None:
            # The kiosk restarted (not the acceptor) in the middle of a note: this process
            # never saw its escrow. Journal it for recovery and reconciliation; a note in
            # escrow goes back to the customer, one past it is finished into the box.
            value = self.values.get(report.denomination or 0, 0)
            where = "escrow" if report.status is Status.ESCROW else "stacker"
            log.warning("note found %s at start (%s)", where, report.status.name)
            self._post(ev.NoteAtPowerUp(where, value))
            if report.status is Status.ESCROW:
                self._exchange(Command.RETURN)
            elif report.status is Status.VEND_VALID:
                self._send_only(Command.ACK)
        self._exchange(Command.RESET)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            report = id003.parse_status(self._exchange(Command.STATUS_REQUEST))
            if report.status not in (Status.INITIALIZE, Status.POWER_UP):
                break
            self._stop.wait(self.poll_s)
        version = self._exchange(Command.GET_VERSION)
        self.version = version.data.decode("ascii", "replace").strip()
        table = id003.parse_currency_table(self._exchange(Command.GET_CURRENCY).data)
        self.values = {code: d.minor(self.currency) for code, d in table.items()}
        missing = sorted(set(self.denominations) - set(self.values.values()))
        if missing:
            self._exchange(Command.INHIBIT, b"\x01")
            self._set_ok(False, f"currency table lacks {missing} (has {sorted(self.values.values())})")
            raise _NoAnswer("currency table mismatch")
        wanted = [c for c, v in self.values.items() if v in self.denominations]
        self._exchange(Command.ENABLE_DENOMINATIONS, id003.denomination_mask(wanted))
        self._exchange(Command.INHIBIT, b"\x00" if self.enabled else b"\x01")
        self.fault = None
        self._set_ok(True, f"ID-003 {self.version} on {self.port}")

    def _bill_at_power_up(self, status: Status) -> None:
        where = "stacker" if status is Status.POWER_UP_BILL_IN_STACKER else "acceptor"
        if self.note is not None and where == "stacker" and not self.credited_note:
            # The note we were stacking when the port went away made it into the cash box.
            log.warning("note of %d in flight at power loss found in the stacker", self.note)
            self._credit(self.note)
        else:
            self._post(ev.NoteAtPowerUp(where, self.note or 0))
            if where == "acceptor" and self.note is not None:
                self._post(ev.NoteReturned(self.note))   # a reset returns it to the customer
        self._clear_note()

    def _clear_note(self) -> None:
        self.note, self.note_stage, self.credited_note = None, "", False

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            cpu0 = time.thread_time()
            while not self._commands.empty():
                cmd, data = self._commands.get_nowait()
                if cmd == Command.STACK_1 and self.note is not None:
                    self.note_stage = "stacking"
                    self.timings.append(("stack_sent", time.monotonic() - self.escrow_since))
                elif cmd == Command.RETURN and self.note is not None:
                    self.note_stage = "returning"
                self._exchange(cmd, data)
            report = id003.parse_status(self._exchange(Command.STATUS_REQUEST))
            self._on_status(report)
            self.polls += 1
            self.poll_cpu_s += time.thread_time() - cpu0
            self._wake.wait(max(0.0, self.poll_s - (time.monotonic() - started)))
            self._wake.clear()

    # ------------------------------------------------------------------ statuses
    def _on_status(self, r: id003.StatusReport) -> None:
        now = time.monotonic()
        entered = r.status != self.status
        if entered:
            self.status, self.status_since = r.status, now
        elif r.status in TRANSIENT and now - self.status_since > self.transient_timeout_s:
            self._fault(f"stuck_{r.status.name.lower()}")
            self.status_since = now
            return
        match r.status:
            case Status.ESCROW:
                value = self.values.get(r.denomination or 0)
                if self.note is None and value:
                    self.note, self.note_stage, self.escrow_since = value, "escrow", now
                    self._post(ev.NoteEscrowed(value))
                elif value is None:
                    self._exchange(Command.RETURN)            # a code we do not know
                elif self.note_stage == "escrow" and now - self.escrow_since > self.escrow_timeout_s:
                    log.warning("no decision on a note in escrow: returning it")
                    self.return_note(self.note or 0)
            case Status.VEND_VALID:
                if self.note is not None and not self.credited_note:
                    if not self._credit(self.note):
                        return                               # not journaled: no ACK yet
                self._send_only(Command.ACK)                 # VEND VALID repeats until then
            case Status.STACKED:
                self._clear_note()
            case Status.REJECTING if entered:
                self._post(ev.NoteRejected(r.reason or "rejected"))
            case Status.RETURNING:
                pass
            case Status.IDLING | Status.DISABLED:
                if self.note is not None and self.credited_note:
                    self._clear_note()               # its STACKED answer was lost: done
                elif self.note is not None and self.note_stage in ("returning", "escrow"):
                    self._post(ev.NoteReturned(self.note))
                    self._clear_note()
                if self.fault is not None:
                    self.fault = None
                    # The fault inhibited the acceptor: put back what the kiosk asked for.
                    self._exchange(Command.INHIBIT, b"\x00" if self.enabled else b"\x01")
                    self._set_ok(True, "fault cleared")
            case s if s in FAULTS:
                self._fault(FAULTS[s])
            case Status.POWER_UP | Status.POWER_UP_BILL_IN_ACCEPTOR | \
                    Status.POWER_UP_BILL_IN_STACKER:
                raise _PortGone("the acceptor restarted")    # run the start-up again

    def _credit(self, value: int) -> bool:
        t0 = time.monotonic()
        e = ev.NoteCredited(value)
        ok = self.commit(e) if self.commit is not None else (self._post(e) or True)
        if ok:
            self.credited_note = True
            self.timings.append(("credit_journaled", time.monotonic() - t0))
        return ok

    def _fault(self, reason: str) -> None:
        if self.fault == reason:
            return
        self.fault = reason
        in_doubt = self.note if self.note_stage == "stacking" and not self.credited_note else 0
        log.error("note acceptor fault: %s%s", reason,
                  f" (a note of {in_doubt} may be in the cash box)" if in_doubt else "")
        try:
            self._exchange(Command.INHIBIT, b"\x01")
        except _NoAnswer:
            pass
        self._post(ev.CashFault(reason, in_doubt))
        self._set_ok(False, reason)
