"""Technician self-test of a ZVT card terminal: `kiosk diag card`.

Opens the port, registers, asks the terminal's status, pays `amount` (minor units) with a
real card, printing the terminal's texts as they come, then its receipt lines and the
result, and reverses the test payment unless `keep`. Human lines, or one JSON document.

An approval whose completion (06 0F) never comes is reversed, `keep` or not: the line says
"approved (receipt N), completion missing, reversed with receipt M" (or "already reversed
by the terminal", when it had reversed it itself): the card is not charged, and the exit
code (5) tells that the terminal did not finish a payment it approved.

Exit codes:
    0  paid (and reversed, unless keep)
    2  declined, or aborted at the terminal
    3  paid, but the reversal failed: the test amount stays on the card (the receipt
       number is printed; reverse it from the terminal's menu)
    4  terminal unreachable, port problem, or no final answer (result unknown)
    5  approved but never completed by the terminal; reversed, the card is not charged
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
from dataclasses import asdict
from typing import Any

from kiosk import events as ev
from kiosk.money import fmt

from ..base import CardResult
from . import zvt
from .results import NOT_COMPLETED
from .terminal import ZvtTerminal

OK, DECLINED, REVERSAL_FAILED, UNREACHABLE, INCOMPLETE = 0, 2, 3, 4, 5
READY_TIMEOUT_S = 15.0


def diag_card(port: str, amount: int, keep: bool, as_json: bool, currency: str = "PHP",
              password: str = "000000", **timers: Any) -> int:
    """`timers`: the driver's t1_s, t3_s, t4_s, completion_s (its defaults otherwise)."""
    if amount <= 0:
        raise ValueError("the test amount must be positive (minor units)")
    return asyncio.run(_Diag(port, amount, keep, as_json, currency, password, timers).run())


class _Diag:
    def __init__(self, port: str, amount: int, keep: bool, as_json: bool, currency: str,
                 password: str, timers: dict[str, Any]) -> None:
        self.amount, self.keep, self.as_json, self.currency = amount, keep, as_json, currency
        self.term = ZvtTerminal(port=port, password=password, currency=currency, **timers)
        self.events: queue.Queue[ev.Record] = queue.Queue()
        self.report: dict[str, Any] = {"port": port, "amount": amount, "currency": currency,
                                       "texts": [], "payment": None, "reversal": None}

    def line(self, kind: str, text: str) -> None:
        if not self.as_json:
            print(f"{time.strftime('%H:%M:%S')} {kind:<10} {text}", flush=True)

    async def run(self) -> int:
        await self.term.start(self.events.put)
        try:
            code = await self._test()
        finally:
            await self.term.stop()
        self.report["exit"] = code
        if self.as_json:
            print(json.dumps(self.report, indent=2, ensure_ascii=False), flush=True)
        else:
            print(f"exit {code}", flush=True)
        return code

    async def _test(self) -> int:
        ready = await self._first_status()
        if ready is None or not ready.ok:
            detail = ready.detail if ready else f"no answer within {READY_TIMEOUT_S:.0f} s"
            self.report["error"] = detail
            self.line("not_ready", detail)
            return UNREACHABLE
        status = await self.term.status()
        self.report.update(terminal_id=self.term.terminal_id, status=status)
        ts = status.get("terminal_status")
        self.line("ready", f"{ready.detail} (software {status.get('sw_version') or '?'}, "
                           f"terminal status {ts:02X})" if isinstance(ts, int) else
                  f"{ready.detail} (status enquiry: {status.get('detail') or 'no answer'})")
        ref = time.strftime("DIAG-%Y%m%d-%H%M%S")
        self.line("paying", f"{fmt(self.amount, self.currency)} (reference {ref})")
        paying = asyncio.create_task(self.term.authorise(ref, self.amount))
        while not paying.done():
            await self._show_texts(0.1)
        await self._show_texts(0)
        result = paying.result()
        if result.reason == "unknown":
            self.line("unknown", "no final answer: asking the terminal for its last receipt")
            result = await self.term.last_result(ref, self.amount) or result
        self._show_result("result", result)
        self.report["payment"] = _public(result)
        if result.reason == NOT_COMPLETED:
            return await self._not_completed(ref, result)
        if not result.approved:
            return UNREACHABLE if result.reason in ("offline", "unknown") else DECLINED
        if self.keep:
            self.line("kept", f"the test payment stays (receipt {result.receipt_no})")
            return OK
        reversal = await self.term.reverse(ref, self.amount, result.receipt_no)
        self._show_result("reversal", reversal)
        self.report["reversal"] = _public(reversal)
        if not reversal.approved:
            self.line("attention", f"reverse receipt {result.receipt_no} at the terminal")
            return REVERSAL_FAILED
        return OK

    async def _not_completed(self, ref: str, paid: CardResult) -> int:
        """Approved, then no completion: the test payment is reversed (never kept)."""
        receipt = paid.receipt_no or "?"
        self.line("attention", f"approved with receipt {receipt}, but the terminal never "
                               f"completed it: reversing it{' (not kept)' if self.keep else ''}")
        reversal = await self.term.reverse(ref, paid.amount, paid.receipt_no)
        self._show_result("reversal", reversal)
        self.report["reversal"] = _public(reversal)
        if not reversal.approved:
            self.line("attention", f"reverse receipt {receipt} at the terminal")
            return REVERSAL_FAILED
        how = ("already reversed by the terminal"
               if reversal.result_code == zvt.RESULT_ALREADY_REVERSED
               else f"reversed with receipt {reversal.receipt_no or '?'}")
        self.report["outcome"] = f"approved (receipt {receipt}), completion missing, {how}"
        self.line("incomplete", self.report["outcome"] + ": the card is not charged")
        return INCOMPLETE

    async def _first_status(self) -> ev.DeviceStatus | None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                e = await asyncio.to_thread(self.events.get, True, 0.2)
            except queue.Empty:
                continue
            if isinstance(e, ev.DeviceStatus):
                return e
        return None

    async def _show_texts(self, wait: float) -> None:
        try:
            e = await asyncio.to_thread(self.events.get, True, wait) if wait else \
                self.events.get_nowait()
        except queue.Empty:
            return
        if isinstance(e, ev.CardText):
            self.report["texts"].append(e.text)
            self.line("terminal", e.text)
        elif isinstance(e, ev.DeviceStatus):
            self.line("device", f"{'ok' if e.ok else 'out of service'}: {e.detail}")

    def _show_result(self, kind: str, r: CardResult) -> None:
        for text in r.lines:
            self.line("receipt", text)
        if r.approved:
            last4 = getattr(r, "card_last4", "")
            facts = [f"auth {r.auth_code}" if r.auth_code else "", f"trace {r.trace}",
                     f"receipt {r.receipt_no}", r.card_name,
                     f"card ****{last4}" if last4 else ""]
            self.line(kind, "approved: " + ", ".join(f for f in facts if f))
        else:
            code = f" (result code {r.result_code:02X})" if r.result_code is not None else ""
            self.line(kind, f"{r.reason}{code} {r.text}".rstrip())


def _public(r: CardResult) -> dict[str, Any]:
    d = asdict(r)
    d["lines"] = list(r.lines)
    return d
