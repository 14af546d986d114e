"""An ESC/POS receipt printer on a serial port, on its own thread.

python-escpos builds the bytes (`escpos.printer.Dummy`: its text encoding with code-page
switching, styles, native QR and cut), and this module owns the port with pyserial, like
the other serial drivers. Not `escpos.printer.Serial`, because on it:
- `query_status()` reads with `read(16)`: a status answer is one byte, so every status
  request waits the whole timeout;
- a lost port surfaces as DeviceNotFoundError at open but as a bare SerialException or
  OSError later, with no write timeout, and `close()` drains the output (tcdrain), which
  can block on a stalled line;
- it opens with DSR/DTR flow control by default, which a pty does not have.
Here a status request is DLE EOT n written, then one byte read with a deadline, with
stale input dropped first and any byte that lacks the fixed status bits ignored.

A receipt: ESC @; the first line bold, centred, double height; the other lines wrapped at
`width` characters on word boundaries (control characters in them become spaces, so a line
from elsewhere, like the card terminal's receipt, cannot smuggle in a command); the QR code
native (GS ( k, model 2, error correction M, `qr_size` dots per module), centred; feed and
full cut. Native, not python-escpos's default image rendering (GS v 0): about 40 bytes
instead of about 3 KB per code (1.5 s at 19200 baud), the printer draws it at its own
resolution, and what was printed can be checked (the simulator reads the data back).

Status: before a receipt (DLE EOT 1, 2, 4) - cover open or paper out raise PrinterError
and nothing is sent; paper near end prints and tells the technician once
(DeviceStatus("printer", True, "paper near end")). After it, again: the answer waits
behind the receipt's bytes on the line (the deadline allows their transmission time), and
a paper end met mid-receipt raises PrinterError("paper out"). A real printer may still be
printing from its buffer when it answers (real-time status is not in sequence), so a paper
end in the last lines may only show at the next poll. While idle, the status is polled
every `poll_s`. The thread runs `drivers/serialworker.py`'s loop: a vanished port raises
DeviceGone (to the receipt being printed, and to a receipt that comes while the port cannot
be opened) and is opened again after a back-off, or at once when a receipt comes.
DeviceStatus is posted once per change of (ok, detail).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import textwrap
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kiosk import events as ev

from ..base import DeviceGone, DeviceTimeout, PrinterError, ReceiptPrinter, Sink
from ..serialworker import PortGone, SerialWorker
from . import escpos_parser as proto
from .escpos_parser import PrinterStatus

log = logging.getLogger("kiosk.printer")

WRITE_TIMEOUT_S = 5.0
T = TypeVar("T")


class PrinterTimeout(PrinterError, DeviceTimeout):
    """The printer did not answer a status request: switched off, hung or not a printer."""


def layout(lines: list[str], width: int) -> list[str]:
    """The lines as printed: control characters made spaces, lines longer than `width`
    wrapped on word boundaries (a word longer than a line is broken)."""
    out: list[str] = []
    for line in lines:
        clean = "".join(" " if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in line)
        if len(clean) <= width:
            out.append(clean)
        else:
            out += textwrap.wrap(clean, width, break_on_hyphens=False) or [""]
    return out


def load_escpos() -> None:
    """Import python-escpos without litter: at import it makes a temporary folder
    (`mkdtemp()`, even when ESCPOS_CAPABILITIES_PICKLE_DIR is set), one per process; it is
    made inside a scratch folder of ours that goes away at once. Its capabilities cache
    goes to the user's cache folder."""
    import os
    import sys
    import tempfile
    if "escpos.capabilities" in sys.modules:
        return
    before = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="kiosk-escpos-") as scratch:
        if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
            cache = os.path.join(os.path.expanduser("~"), ".cache", "topup-kiosk", "escpos")
            try:
                os.makedirs(cache, exist_ok=True)
            except OSError:             # a read-only home (a hardened service): no cache
                cache = scratch
            os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = cache
        tempfile.tempdir = scratch
        try:
            import escpos.printer  # noqa: F401 - the import is the point
        finally:
            tempfile.tempdir = before


def render(lines: list[str], qr: str | None, width: int, qr_size: int = 6) -> bytes:
    """The bytes of one receipt (pure: python-escpos's Dummy collects them)."""
    load_escpos()
    from escpos.constants import QR_ECLEVEL_M
    from escpos.printer import Dummy
    p = Dummy()
    p.hw("INIT")
    printed = layout(lines, width)
    head = layout(lines[:1], width)
    if head:
        p.set(align="center", bold=True, double_height=True)
        for line in head:
            p.textln(line)
        p.set_with_default()
    for line in printed[len(head):]:
        p.textln(line)
    if qr:
        p.ln()
        p.set(align="center")
        p.qr(qr, ec=QR_ECLEVEL_M, size=qr_size, native=True)
        p.set(align="left")
    p.cut()
    return p.output


_Job = tuple[concurrent.futures.Future[None], list[str], str | None]


class EscposPrinter(SerialWorker, ReceiptPrinter):
    thread_name = "escpos"
    what = "printer"
    logger = log

    def __init__(self, port: str = "", baudrate: int = 19200, width: int = 42,
                 status_timeout_s: float = 0.5, poll_s: float = 5.0, qr_size: int = 6) -> None:
        super().__init__(port)
        self.baudrate = baudrate
        self.width = width
        self.status_timeout_s = status_timeout_s
        self.poll_s = poll_s
        self.qr_size = qr_size
        self._jobs: queue.Queue[_Job | None] = queue.Queue()    # None: stop
        self._paper = "ok"
        self.status: PrinterStatus | None = None
        self.ok: bool | None = None
        self.detail = ""
        self._reported: tuple[bool, str] | None = None
        self.printed = 0
        self.failures = 0
        self.timeouts = 0

    # ------------------------------------------------------------------ interface
    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self._start_worker()

    async def stop(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._stop_worker)    # receipts queued before it print
        self._fail_queued(DeviceGone("printer driver stopped"))   # behind it: never

    async def print_receipt(self, lines: list[str], qr: str | None = None) -> None:
        if not self._running():
            raise DeviceGone("printer driver not started")
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._jobs.put((done, list(lines), qr))
        self._wake.set()                              # a port being waited for: try it now
        await asyncio.wrap_future(done)

    def paper(self) -> str:
        """The last paper sensor reading ('ok' until the printer has answered once)."""
        return self._paper

    def diagnostics(self) -> dict[str, object]:
        st = self.status
        return {"driver": "escpos", "port": self.port, "baudrate": self.baudrate,
                "width": self.width, "ok": self.ok, "detail": self.detail,
                "paper": self._paper, "cover_open": st.cover_open if st else None,
                "offline": st.offline if st else None, "printed": self.printed,
                "failures": self.failures, "timeouts": self.timeouts,
                "connected": self._serial is not None}

    # ------------------------------------------------------------------ reporting
    def _report(self, ok: bool, detail: str) -> None:
        self.ok, self.detail = ok, detail
        if (ok, detail) == self._reported:
            return
        self._reported = (ok, detail)
        (log.info if ok else log.error)("printer %s: %s", "ready" if ok else "unusable", detail)
        try:
            self.sink(ev.DeviceStatus("printer", ok, detail))
        except Exception:   # never let a closing loop kill the printer thread
            log.exception("posting DeviceStatus")

    def _report_status(self, st: PrinterStatus) -> None:
        self.status, self._paper = st, st.paper
        if st.problem:
            self._report(False, st.problem)
        elif st.paper == "near_end":
            self._report(True, "paper near end")
        else:
            self._report(True, "ready")

    # ------------------------------------------------------------------ the thread
    # SerialWorker's loop: _open, then _serve (receipts, and a status poll when idle) until
    # the port is lost; _port_gone, _backing_off (a receipt cuts it short), and again.
    def _run(self) -> None:
        try:
            load_escpos()          # loaded here (~0.3 s), not during a receipt
        except ImportError:
            log.exception("python-escpos is missing: receipts cannot be rendered")
        super()._run()

    def _interrupt(self) -> None:
        self._jobs.put(None)                          # behind the receipts already queued
        self._wake.set()

    def _serve(self) -> None:
        next_poll = 0.0                               # the status at once on a fresh port
        while self._serial is not None:
            try:
                job = self._jobs.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                self._guarded(self._check)
                next_poll = time.monotonic() + self.poll_s
                continue
            if job is None:
                return
            done, lines, qr = job
            if done.set_running_or_notify_cancel():
                try:
                    self._print(lines, qr)
                except BaseException as exc:   # noqa: BLE001 - handed to the awaiting caller
                    self.failures += 1
                    done.set_exception(exc)
                else:
                    done.set_result(None)
            next_poll = time.monotonic() + self.poll_s
        raise PortGone("lost")                        # _gone closed it and reported it

    def _port_gone(self, exc: PortGone) -> None:
        self._report(False, f"port {self.port} unavailable")
        self._fail_queued(DeviceGone(f"printer port {self.port} unavailable ({exc})"))

    def _down(self, detail: str) -> None:
        self._report(False, detail)
        self._fail_queued(PrinterError(detail))

    def _backing_off(self, seconds: float) -> None:
        """Wait before opening the port again; a receipt tries it at once."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and self._jobs.empty():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(left)
            self._wake.clear()

    def _fail_queued(self, exc: Exception) -> None:
        """Receipts waiting now fail with `exc` (a stop waiting among them is dropped: the
        stop event is set already)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and job[0].set_running_or_notify_cancel():
                job[0].set_exception(exc)

    def _guarded(self, step: Any) -> None:
        try:
            step()
        except (DeviceGone, PrinterError):
            pass                                  # reported by the step itself
        except Exception:   # a bug must not end printing for good
            log.exception("printer status poll failed")

    def _print(self, lines: list[str], qr: str | None) -> None:
        st = self._check()
        if st.problem:
            raise PrinterError(st.problem)
        try:
            data = render(lines, qr, self.width, self.qr_size)
        except Exception as exc:   # the kiosk handles device errors only
            log.exception("receipt could not be rendered")
            raise PrinterError(f"receipt could not be rendered ({type(exc).__name__})") from exc
        started = time.monotonic()
        try:
            self._io(lambda: self._serial.write(data))
        except PortGone as exc:
            raise self._gone(exc) from None
        except PrinterTimeout:
            self.timeouts += 1
            self._report(False, "printer not taking data")
            raise
        # The answer comes after the receipt's bytes have gone down the line.
        after = self._check(extra_s=len(data) * 10 / self.baudrate)
        if after.problem:
            log.error("printer: %s after sending a receipt of %d lines", after.problem,
                      len(lines))
            raise PrinterError(after.problem)
        self.printed += 1
        log.info("receipt printed: %d lines, %s, %d bytes, %.2f s", len(lines),
                 "QR" if qr else "no QR", len(data), time.monotonic() - started)

    def _check(self, extra_s: float = 0.0) -> PrinterStatus:
        """Read DLE EOT 1, 2 and 4 on the open port; reports what it finds."""
        try:
            b1 = self._query(1, self.status_timeout_s + extra_s)
            b2 = self._query(2, self.status_timeout_s)
            b4 = self._query(4, self.status_timeout_s)
        except PortGone as exc:
            raise self._gone(exc) from None
        except PrinterTimeout:
            self.timeouts += 1
            self._report(False, "printer not answering")
            raise
        st = PrinterStatus.decode(b1, b2, b4)
        self._report_status(st)
        return st

    def _gone(self, exc: PortGone) -> DeviceGone:
        """The port vanished: close it (the loop opens it again), say so."""
        self._close()
        self._report(False, f"port {self.port} unavailable")
        return DeviceGone(f"printer port {self.port} unavailable ({exc})")

    # ------------------------------------------------------------------ transport
    def _open(self) -> None:
        self._open_port(baudrate=self.baudrate, bytesize=8, parity="N", stopbits=1,
                        timeout=0.05, write_timeout=WRITE_TIMEOUT_S)
        log.info("printer port %s open (%s)", self.port, os.path.realpath(self.port))

    def _io(self, op: Callable[[], T]) -> T:
        """One pyserial call: a write timeout is PrinterTimeout, a failing port PortGone."""
        import serial

        def timed() -> T:
            try:
                return op()
            except serial.SerialTimeoutException:
                raise PrinterTimeout("the printer does not take data (write timeout)") from None
        return super()._io(timed)

    def _query(self, n: int, timeout_s: float) -> int:
        """DLE EOT n; the first byte that carries the status fixed bits is the answer."""
        s = self._serial
        self._io(s.reset_input_buffer)
        self._io(lambda: s.write(proto.status_request(n)))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            chunk = self._io(lambda: s.read(1))
            if chunk and proto.is_status_byte(chunk[0]):
                return chunk[0]
        raise PrinterTimeout(f"no answer from the printer within {timeout_s:.1f} s "
                             "(switched off or offline?)")
