"""A ZVT card terminal on a serial port (pyserial), the kiosk being the ECR; its own thread.

The protocol is `drivers/card_terminal/zvt.py` (pure); this module owns the port. One
daemon thread (the loop of `drivers/serialworker.py`) opens it (9600 8N2), registers (06 00)
and then runs one command at a time from a queue: authorisation, reversal, repeat receipt,
status enquiry. Coroutines queue a job with a concurrent Future and await it through
`asyncio.wrap_future`, so the event loop never waits on the line. Between commands the
thread keeps reading: a vanished port is noticed at once (DeviceStatus("card", False)
once, then reopened with back-off and registered again, DeviceStatus("card", True)), and a
result the terminal delivers late is confirmed and remembered.

Timers: `t1_s` for the ACK of each frame (3 repeats), `t3_s` for the terminal's first
answer (80 00 00) to a command, `t4_s` for the whole command, `completion_s` for the end
(06 0F / 06 1E) once the terminal has sent its status information (04 0F), counted from
its last message. A payment the terminal has not finished at T4 is aborted (06 B0) unless
it was already approved; if it does not end within T3 more it is "unknown".

Results (`results.ZvtResult`, a kiosk CardResult; the table is in results.py): approved;
"declined" (the card or the bank said no, any result code but 6C); "aborted" (6C: the
customer, a timeout on the terminal or the kiosk's abort); "offline" (nothing was delivered
to the terminal, or it refused to start); "not_completed" (the terminal approved, then its
completion never came: the approval's receipt number is in the result); "unknown" (the
terminal took the payment but no final answer and no approval came: T4, or the port was
lost). An unknown or not completed payment is resolved with `last_result` (repeat receipt,
06 20), and reversed with `reverse` when the caller cannot use it.

No card number is ever parsed into anything kept: zvt.py keeps only the last four digits of
the PAN (BMP 22, `card_last4`), skips the other card-data BMPs and masks PAN-like runs in
every terminal text (pan.py); this module logs amounts, codes and receipt numbers only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kiosk import events as ev
from kiosk.money import CURRENCIES

from ..base import CardResult, CardTerminal, Sink
from ..serialworker import NotAnswering, PortGone, SerialWorker
from . import zvt
from .results import NOT_COMPLETED, Run, ZvtResult, payment_result, reversal_result
from .zvt import Apdu, Code

log = logging.getLogger("kiosk.card")


@dataclass
class _Job:
    kind: str                                    # authorise | reverse | last_result | status
    args: tuple[Any, ...]
    future: concurrent.futures.Future[Any]


@dataclass(frozen=True)
class _Unknown:
    amount: int
    baseline: str | None                         # last receipt number known before it


class ZvtTerminal(SerialWorker, CardTerminal):
    BUSY_RETRIES = 20                # a busy terminal (84 9C) is asked again ...
    BUSY_WAIT_S = 0.5                # ... this often
    thread_name = "zvt"
    what = "card terminal"
    logger = log

    def __init__(self, port: str = "", password: str = "000000", currency: str = "PHP",
                 t1_s: float = 0.5, t3_s: float = 5.0, t4_s: float = 180.0,
                 print_on_ecr: bool = True, completion_s: float = 30.0) -> None:
        zvt.password_bytes(password)             # a bad password is a configuration error
        if currency not in CURRENCIES:
            raise ValueError(f"unknown currency {currency!r}")
        super().__init__(port)
        self.password, self.currency = password, currency
        self.currency_code = CURRENCIES[currency][0]
        self.t1_s, self.t3_s, self.t4_s = t1_s, t3_s, t4_s
        self.completion_s = completion_s
        self.print_on_ecr = print_on_ecr
        self.config = (zvt.Config.INTERMEDIATE_STATUS | zvt.Config.ECR_CONTROLS_PAYMENT
                       | zvt.Config.ECR_CONTROLS_ADMIN | zvt.Config.PRINT_LINES)
        if print_on_ecr:
            self.config |= (zvt.Config.ECR_PRINTS_PAYMENT_RECEIPTS
                            | zvt.Config.ECR_PRINTS_ADMIN_RECEIPTS)
        self.sink: Sink = lambda e: None
        # Set by the kiosk: called from this driver's thread with (ref, CardResult) when the
        # terminal reports an approval, BEFORE it is confirmed (80 00 00). True: journaled,
        # confirm it. False: not journaled, refuse it (84 9A) and the terminal reverses it.
        self.commit: Any = None
        self._paying: tuple[str, int] | None = None   # (ref, amount) being authorised
        self.registered = False
        self.terminal_id = ""
        self.ok: bool | None = None
        self.last_error = ""
        self.late_results = 0                    # results that came after we gave up
        self._last_receipt: str | None = None    # None: unknown; "": the terminal has none
        self._receipts: dict[str, str] = {}      # ref -> receipt number of its payment
        self._reversed: dict[str, CardResult] = {}
        self._unknown: dict[str, _Unknown] = {}
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._abort_wanted = threading.Event()
        self._payments = 0                       # authorisations queued or running
        self._payments_lock = threading.Lock()
        self._busy = False
        self._channel = zvt.Channel()
        self._inbox: list[Apdu] = []
        self._last_rx = 0.0

    # ------------------------------------------------------------------ interface
    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self._start_worker()

    async def stop(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._stop_worker)
        self._fail_queued()

    def available(self) -> bool:
        return self.registered and self._thread is not None

    def diagnostics(self) -> dict[str, object]:
        return {"driver": "zvt", "port": self.port, "registered": self.registered,
                "terminal_id": self.terminal_id, "last_error": self.last_error,
                "busy": self._busy, "last_receipt": self._last_receipt,
                "retransmissions": self._channel.retransmissions}

    async def authorise(self, ref: str, amount: int) -> CardResult:
        if not self.available():                 # not registered: nothing is sent
            return CardResult(False, amount, reason="offline",
                              text=self.last_error or "card terminal not ready")
        with self._payments_lock:
            self._payments += 1
        try:
            return await self._submit("authorise", ref, amount)
        finally:
            with self._payments_lock:
                self._payments -= 1
                if self._payments == 0:
                    self._abort_wanted.clear()

    async def abort(self) -> None:
        """Stop the payment: not sent yet, it is not sent ("aborted"); running, the terminal
        is asked to stop (06 B0) and ends with 06 1E 6C unless the bank already has it."""
        with self._payments_lock:
            if self._payments:
                self._abort_wanted.set()

    async def reverse(self, ref: str, amount: int, receipt_no: str = "") -> CardResult:
        return await self._submit("reverse", ref, amount, receipt_no)

    async def last_result(self, ref: str, amount: int) -> CardResult | None:
        """Resolve an "unknown" or "not_completed" payment with the terminal's last
        receipt (06 20): is the payment there, and does its approval stand?

        approved=True only when the repeated receipt is an approved payment of `amount`
        whose receipt number differs from the last one this driver had seen when it sent
        the payment (so it came after). approved=False ("aborted") when the terminal's last
        receipt is still that one (the payment never happened) or a reversal newer than it
        (the terminal reversed the payment it could not report); "declined" when it is a
        newer declined payment. None when the terminal is busy, does not answer, the newer
        receipt is for another amount, or this driver did not know the receipt number
        before the payment (a kiosk restart in between). Limits: a transaction made at the
        terminal itself in between (a technician) can be taken for this one when the amount
        is the same; receipt numbers wrap at 9999.
        """
        return await self._submit("last_result", ref, amount)

    async def status(self) -> dict[str, object]:
        """Status enquiry (05 01): software version and terminal status (00 = ready)."""
        return await self._submit("status")

    # ------------------------------------------------------------------ jobs
    def _submit(self, kind: str, *args: Any) -> asyncio.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if not self._running():
            fut.set_result(self._unreachable(kind, args, "the driver is not running"))
        else:
            self._jobs.put(_Job(kind, args, fut))
            self._wake.set()
        return asyncio.wrap_future(fut)

    def _unreachable(self, kind: str, args: tuple[Any, ...], why: str,
                     reason: str = "offline") -> Any:
        if kind in ("authorise", "reverse"):
            return CardResult(False, args[1], reason=reason, text=why)
        if kind == "status":
            return {"ok": False, "detail": why}
        return None

    def _fail_queued(self, why: str = "card terminal unreachable") -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job.future.set_running_or_notify_cancel():
                job.future.set_result(self._unreachable(job.kind, job.args, why))

    def _do(self, job: _Job) -> None:
        """Run one job. A job whose caller was cancelled before it started is dropped (a
        payment nobody waits for is not started); cancelling a running one does not stop
        the terminal: that is what abort() is for."""
        if not job.future.set_running_or_notify_cancel():
            return
        handlers: dict[str, Callable[..., tuple[Any, Exception | None]]] = {
            "authorise": self._authorise, "reverse": self._reverse,
            "last_result": self._last_result, "status": self._status}
        handler = handlers[job.kind]
        self._busy = job.kind == "authorise"
        try:
            result, lost = handler(*job.args)
        except (PortGone, NotAnswering) as exc:     # nothing reached the terminal
            job.future.set_result(self._unreachable(job.kind, job.args, str(exc)))
            raise
        except Exception:                          # a bug: it may have been sent
            job.future.set_result(self._unreachable(job.kind, job.args, "driver error",
                                                    reason="unknown"))
            raise
        finally:
            self._busy = False
        job.future.set_result(result)
        if lost is not None:
            raise lost

    # ------------------------------------------------------------------ the thread
    # SerialWorker's loop: _open, _connect (= register), _serve; _down, _backing_off.
    def _connect(self) -> None:
        self._register()

    def _backing_off(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._fail_queued()                  # nobody waits for a terminal that is away
            self._wake.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            self._wake.clear()

    def _stopped(self) -> None:
        self._fail_queued("the driver stopped")

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._inbox:                      # the terminal spoke first: answer it
                self._idle()
                continue
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                self._idle()
                continue
            self._do(job)

    def _idle(self) -> None:
        """Between commands: notice a vanished port, and confirm whatever the terminal
        still sends (a result that came after T4 is remembered for last_result)."""
        apdu = self._next(0.05)
        if apdu is None or apdu.positive or apdu.negative:
            return
        if apdu.code == Code.STATUS_INFORMATION:
            try:
                info = zvt.parse_status_information(apdu)
            except zvt.ZvtError as exc:
                log.warning("late status information unreadable: %s", exc)
                self._send(zvt.negative(0x9A))
                return
            self.late_results += 1
            log.warning("late result from the terminal: code %s, receipt %s",
                        info.result_code, info.receipt_no or "-")
            if info.receipt_no:
                self._last_receipt = info.receipt_no
        self._send(zvt.positive())

    def _down(self, detail: str) -> None:
        self.registered = False
        if self._stop.is_set():
            return                               # stopping is not a fault
        self.last_error = detail
        self._set_ok(False, detail)

    def _set_ok(self, ok: bool, detail: str) -> None:
        if ok != self.ok:
            self.ok = ok
            (log.info if ok else log.error)("card terminal %s: %s",
                                            "ready" if ok else "out of service", detail)
            self._post(ev.DeviceStatus("card", ok, detail))

    def _post(self, e: ev.Record) -> None:
        try:
            self.sink(e)
        except Exception:
            log.exception("posting %s", type(e).__name__)

    # ------------------------------------------------------------------ transport
    def _open(self) -> None:
        # 9600 8N2 (ecrterm's serial transport); a pty takes these settings as they are.
        self._open_port(baudrate=9600, bytesize=8, parity="N", stopbits=2, timeout=0.02,
                        write_timeout=2)
        self._channel = zvt.Channel()
        self._inbox.clear()

    def _pump(self, timeout: float) -> list[zvt.LinkEvent]:
        """Read for up to `timeout` (returning as soon as something arrived), answer
        ACK/NAK, queue APDUs; the link events about our own frame are returned."""
        deadline = time.monotonic() + timeout
        s = self._serial
        while True:
            if self._stop.is_set():
                raise PortGone("the driver is stopping")
            chunk = self._io(lambda: s.read(max(1, s.in_waiting)))
            now = time.monotonic()
            if chunk:
                self._last_rx = now
                mine: list[zvt.LinkEvent] = []
                for e in self._channel.receive_data(chunk):
                    if isinstance(e, zvt.Received):
                        self._inbox.append(e.apdu)
                    elif isinstance(e, zvt.Malformed):
                        log.warning("frame with a malformed APDU: %s", e.error)
                    else:
                        mine.append(e)
                self._write(self._channel.data_to_send())
                if mine or self._inbox:
                    return mine
            elif self._channel.decoder.in_frame and now - self._last_rx > self.t1_s:
                self._channel.decoder.reset()   # half a frame, then silence: drop it
            if now >= deadline:
                return []

    def _write(self, data: bytes) -> None:
        if data:
            s = self._serial
            self._io(lambda: s.write(data))

    def _send(self, apdu: bytes) -> None:
        """One frame, until ACKed; NotAnswering after NAKs or silence (3 repeats)."""
        self._channel.send(apdu)
        self._write(self._channel.data_to_send())
        deadline = time.monotonic() + self.t1_s
        while True:
            for e in self._pump(max(0.0, deadline - time.monotonic())):
                if isinstance(e, zvt.Delivered):
                    return
                if isinstance(e, zvt.SendFailed):
                    raise NotAnswering(f"the terminal does not take frames ({e.reason})")
            if time.monotonic() >= deadline:
                for e in self._channel.ack_timeout():
                    if isinstance(e, zvt.SendFailed):
                        raise NotAnswering(f"the terminal does not answer ({e.reason})")
                self._write(self._channel.data_to_send())
                deadline = time.monotonic() + self.t1_s

    def _next(self, timeout: float) -> Apdu | None:
        if not self._inbox:
            self._pump(timeout)
        return self._inbox.pop(0) if self._inbox else None

    # ------------------------------------------------------------------ one command
    def _command(self, apdu: bytes, abortable: bool = False, show_texts: bool = False,
                 after_enquiry: bool = False) -> Run:
        """Send a command and follow it to 06 0F / 06 1E: every message of the terminal is
        confirmed (80 00 00) after it is read, except a status information we cannot read
        (84 9A: a terminal then reverses the payment rather than leave it unreported).
        Raises if the command itself could not be delivered; a failure after that is
        returned in `lost`. Once the status information (04 0F) is in, only the end is
        missing: it is awaited `completion_s` after the terminal's last message (never past
        T4), and nothing is aborted any more."""
        run = Run()
        self._send(apdu)
        first = time.monotonic() + self.t3_s
        end = time.monotonic() + self.t4_s
        try:
            while not run.ended:
                now = time.monotonic()
                result_in = run.status is not None or run.uncommitted   # 04 0F taken
                if abortable and self._abort_wanted.is_set() and run.accepted and \
                        not run.abort_sent and not result_in:
                    self._send(zvt.ecr_abort())
                    run.abort_sent = True
                limit = first if run.accepted is None else end
                if result_in:
                    limit = min(end, run.last_message + self.completion_s)
                if now >= limit:
                    if not abortable or run.abort_sent or run.accepted is None or result_in:
                        return run
                    log.warning("payment still running at T4: aborting it")
                    self._send(zvt.ecr_abort())
                    run.abort_sent, end = True, now + self.t3_s
                    continue
                msg = self._next(min(0.05, max(0.0, limit - now)))
                if msg is not None:
                    self._take(run, msg, show_texts, after_enquiry)
                    if run.accepted is False:
                        return run
        except (PortGone, NotAnswering) as exc:
            run.lost = exc
        return run

    def _take(self, run: Run, msg: Apdu, show_texts: bool, after_enquiry: bool) -> None:
        run.last_message = time.monotonic()
        if msg.positive or msg.negative:
            if run.accepted is None:             # the answer to the command itself
                run.accepted = msg.positive
                run.refused = None if msg.positive else msg.ins
            return                               # else: the answer to our 06 B0
        run.accepted = True                      # a terminal may skip 80 00 00
        reply = zvt.positive()
        try:
            match msg.code:
                case Code.INTERMEDIATE_STATUS:
                    status = zvt.parse_intermediate_status(msg)
                    run.texts.append(status.text)
                    if show_texts:
                        self._post(ev.CardText(status.text))
                case Code.PRINT_LINE:
                    run.lines.append(zvt.parse_print_line(msg).text)
                case Code.STATUS_INFORMATION:
                    run.status = zvt.parse_status_information(msg)
                    if run.status.receipt_no:
                        self._last_receipt = run.status.receipt_no
                    if not self._committed(run):
                        reply = zvt.negative(0x9A)   # not recorded: let the terminal reverse
                case Code.COMPLETION:
                    run.completion = zvt.parse_completion(msg, after_enquiry)
                case Code.ABORT:
                    run.abort_code = zvt.parse_abort(msg)
                case _:
                    log.info("terminal sent %s: confirmed, not used", msg)
        except zvt.ZvtError as exc:
            log.warning("unreadable %s: %s", msg, exc)
            if msg.code == Code.STATUS_INFORMATION:
                reply = zvt.negative(0x9A)       # "protocol error": not taken
        self._send(reply)

    def _committed(self, run: Run) -> bool:
        """Journal-before-confirm for an approval of the payment running now."""
        s, paying = run.status, self._paying
        if self.commit is None or paying is None or s is None or not s.approved \
                or s.reversal:
            return True
        ref, amount = paying
        if s.amount not in (None, amount):
            # Booked as what it is (the kiosk reverses it), never confirmed unjournaled.
            log.error("terminal approved %s for %s, not %d: journaled, to be reversed", ref,
                      s.amount, amount)
        approved = amount if s.amount is None else s.amount
        result = ZvtResult(True, approved, auth_code=s.auth_code, trace=s.trace,
                           result_code=s.result_code, receipt_no=s.receipt_no,
                           terminal_id=s.terminal_id or self.terminal_id,
                           card_name=s.card_name, card_last4=s.card_last4)
        try:
            ok = bool(self.commit(ref, result))
        except Exception:
            log.exception("journaling the approval of %s failed", ref)
            ok = False
        if not ok:
            log.error("approval of %s could not be journaled: refused, the terminal "
                      "reverses it", ref)
            run.status = None
            run.uncommitted = True
        return ok

    # ------------------------------------------------------------------ registration
    def _register(self) -> None:
        cmd = zvt.registration(self.password, self.config, self.currency_code)
        run = self._command(cmd)
        for _ in range(self.BUSY_RETRIES):           # busy (84 9C): finishing something
            if not (run.accepted is False and run.refused == zvt.RESULT_PLEASE_WAIT):
                break
            time.sleep(self.BUSY_WAIT_S)
            run = self._command(cmd)
        if run.lost is not None:
            raise run.lost
        if run.accepted is False:
            raise NotAnswering(f"registration refused (84 {run.refused:02X})")
        if run.abort_code is not None:
            raise NotAnswering(f"registration aborted (result code {run.abort_code:02X})")
        if run.completion is None:
            raise NotAnswering("no answer to the registration")
        self.terminal_id = run.completion.terminal_id or self.terminal_id
        self.registered = True
        if self.print_on_ecr:
            self._learn_last_receipt()
        self.last_error = ""
        self._set_ok(True, f"ZVT terminal {self.terminal_id or '?'} on {self.port}")

    def _learn_last_receipt(self) -> None:
        """The baseline for last_result: the terminal's last receipt number now. Only when
        receipts come to the ECR (otherwise a repeat receipt prints on the terminal)."""
        run = self._command(zvt.repeat_receipt(self.password))
        if run.lost is not None:
            raise run.lost
        if run.status is not None:
            self._last_receipt = run.status.receipt_no
        elif run.abort_code is not None:
            self._last_receipt = ""              # nothing to repeat: no transaction yet

    # ------------------------------------------------------------------ payments
    def _authorise(self, ref: str, amount: int) -> tuple[CardResult, Exception | None]:
        if not self.registered:
            return CardResult(False, amount, reason="offline", text="not registered"), None
        if self._abort_wanted.is_set():
            return CardResult(False, amount, reason="aborted", text="aborted before start"), None
        baseline = self._last_receipt
        log.info("authorising %s: %d", ref, amount)
        self._paying = (ref, amount)
        try:
            run = self._command(zvt.authorisation(amount, self.currency_code), abortable=True,
                                show_texts=True)
        finally:
            self._paying = None
        if run.uncommitted:
            return CardResult(False, amount, reason="declined",
                              text="not recorded by the kiosk: reversed"), run.lost
        result = payment_result(run, amount, self.terminal_id)
        if result.approved or result.reason == NOT_COMPLETED:
            self._receipts[ref] = result.receipt_no
        if result.reason in ("unknown", NOT_COMPLETED):
            self._unknown[ref] = _Unknown(amount, baseline)
        if result.reason == NOT_COMPLETED:
            log.warning("payment %s approved (receipt %s), never completed: %s", ref,
                        result.receipt_no or "?", result.text)
        log.info("payment %s: %s%s", ref, "approved" if result.approved else result.reason,
                 f" (code {result.result_code:02X})" if result.result_code else "")
        if run.accepted is False and run.refused == zvt.RESULT_NOT_REGISTERED:
            self.registered = False
            return result, NotAnswering("the terminal forgot the registration")
        return result, run.lost

    def _reverse(self, ref: str, amount: int,
                 receipt_no: str = "") -> tuple[CardResult, Exception | None]:
        if ref in self._reversed:                # reversed exactly once
            return self._reversed[ref], None
        receipt = receipt_no or self._receipts.get(ref, "")
        if not receipt:
            return CardResult(False, amount, reason="declined",
                              text="no receipt number to reverse"), None
        if not self.registered:
            return CardResult(False, amount, reason="offline", text="not registered"), None
        log.info("reversing %s (receipt %s): %d", ref, receipt, amount)
        run = self._command(zvt.reversal(self.password, receipt))
        # 84 9C "please wait": the terminal is busy (e.g. still waiting to auto-reverse a
        # result nobody confirmed). A refusal only when it is not busy any more.
        for _ in range(self.BUSY_RETRIES):
            if not (run.accepted is False and run.refused == zvt.RESULT_PLEASE_WAIT):
                break
            time.sleep(self.BUSY_WAIT_S)
            run = self._command(zvt.reversal(self.password, receipt))
        result = reversal_result(run, amount, self.terminal_id)
        if result.approved:
            self._reversed[ref] = result             # reversed exactly once
        log.info("reversal %s: %s", ref, result.text if result.approved and result.text
                 else "done" if result.approved else result.reason)
        return result, run.lost

    def _last_result(self, ref: str, amount: int) -> tuple[CardResult | None, Exception | None]:
        if not self.registered:
            return None, None
        pending = self._unknown.get(ref)
        run = self._command(zvt.repeat_receipt(self.password))
        s = run.status
        if run.lost is not None or not run.ended or run.accepted is False:
            return None, run.lost                # busy (84 9C), gone, or silent
        if pending is None or pending.baseline is None:
            return None, None
        base = ZvtResult(False, amount, lines=tuple(run.lines), terminal_id=self.terminal_id)
        if s is None:                            # nothing to repeat
            if pending.baseline != "":
                return None, None
            verdict = replace(base, reason="aborted", text="the terminal has no payment")
        elif s.receipt_no == pending.baseline:
            verdict = replace(base, reason="aborted", result_code=s.result_code,
                              text="the terminal has no newer payment")
        elif s.reversal:
            verdict = replace(base, reason="aborted", result_code=s.result_code,
                              text="the terminal reversed the payment")
        elif not s.approved:
            verdict = replace(base, reason="declined", result_code=s.result_code,
                              trace=s.trace, receipt_no=s.receipt_no)
        elif s.amount == amount:
            self._receipts[ref] = s.receipt_no
            verdict = replace(base, approved=True, auth_code=s.auth_code, trace=s.trace,
                              receipt_no=s.receipt_no, result_code=s.result_code,
                              card_name=s.card_name, card_last4=s.card_last4)
        else:
            return None, None                    # a newer payment, not of this amount
        del self._unknown[ref]
        log.info("unknown payment %s resolved: %s", ref,
                 "approved" if verdict.approved else verdict.reason)
        return verdict, None

    def _status(self) -> tuple[dict[str, object], Exception | None]:
        run = self._command(zvt.status_enquiry(self.password), after_enquiry=True)
        c = run.completion
        ok = c is not None and c.terminal_status in (None, 0)
        return {"ok": ok, "sw_version": c.sw_version if c else "",
                "terminal_status": c.terminal_status if c else None,
                "terminal_id": self.terminal_id,
                "detail": "" if c else f"no completion (code {run.abort_code or run.refused})",
                }, run.lost
