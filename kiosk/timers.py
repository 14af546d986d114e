"""Timers of the shell: the inactivity clock, the QR code's expiry, and the periodic checks
(backend reachable, cash box in). Each posts an event; none decides anything about money."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from . import events as ev
from . import journal_health
from .engine import Phase

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("kiosk.timers")

TICK_S = 0.25
PERIODIC_S = 30.0


def idle_limits(rt: Runtime) -> tuple[int, int]:
    """(seconds without a touch before "Need more time?", seconds to answer it)."""
    ui = rt.settings.ui
    s = rt.state
    if s.phase is Phase.RESULT and s.txn.voucher_code:
        # A voucher's full code and QR on screen: a customer who walked away must not
        # leave it to the next person. It is on the receipt (and goes by SMS); the screen
        # asks after half the answer time and goes back to the start after all of it.
        half = max(2, ui.answer_timeout_s // 2)
        return half, half
    idle = ui.result_timeout_s if s.phase in (Phase.RESULT, Phase.RECEIPT) \
        else ui.idle_timeout_s
    return idle, ui.answer_timeout_s


def check_idle(rt: Runtime, now: float | None = None) -> None:
    now = time.monotonic() if now is None else now
    if not rt.state.timeout_allowed:
        rt.last_activity = now
        if rt.warning_until is not None:
            rt.warning_until = None
            rt.notify(rt.main)
        return
    idle, answer = idle_limits(rt)
    if rt.warning_until is None:
        if now - rt.last_activity >= idle:
            rt.warning_until = now + answer
            rt.notify(rt.main)
    elif now >= rt.warning_until:
        rt.warning_until = None
        rt.last_activity = now
        rt.post(ev.Timeout())


async def tick(rt: Runtime) -> None:
    last_periodic = last_disk = 0.0
    seen_version = -1
    while True:
        check_idle(rt)
        s = rt.state
        if s.phase is Phase.PAY_QR and s.qr_expires_at and time.time() > s.qr_expires_at:
            rt.post(ev.QrExpired(s.txn.ref or ""))
        now = time.monotonic()
        if now - last_periodic > PERIODIC_S:
            last_periodic = now
            rt.spawn(ping_backend(rt))
        if now - last_disk > journal_health.CHECK_S:
            last_disk = now
            journal_health.check(rt)
        # Another process (`kiosk cashbox remove`) wrote the journal: look at the box now.
        version = journal_version(rt)
        if version != seen_version:
            seen_version = version
            check_cash_box(rt)
        await asyncio.sleep(TICK_S)


def journal_version(rt: Runtime) -> int:
    """SQLite's data_version: changes when another connection commits (cheap, no I/O)."""
    try:
        return int(rt.journal.db.execute("PRAGMA data_version").fetchone()[0])
    except Exception:   # noqa: BLE001 - a journal in trouble is journal_health's business
        return -1


def check_cash_box(rt: Runtime) -> None:
    """No cash box in the kiosk (a technician journaled its removal and no insertion
    since): cash stays out of service, whatever the acceptor says."""
    try:
        removed = rt.journal.cash_box_removed()
    except Exception:
        log.exception("reading the cash box's state")
        return
    was, rt.box_was_removed = rt.box_was_removed, removed
    if removed and rt.state.device_ok("cash"):
        log.warning("cash box removed: cash payment off until a box is inserted")
        rt.post(ev.DeviceStatus("cash", False, "cash box removed"))
    elif not removed and was:
        rt.post(ev.DeviceStatus("cash", True, "cash box inserted"))


async def ping_backend(rt: Runtime) -> None:
    try:
        ok = await asyncio.wait_for(rt.backend.reachable(), 5)
    except Exception:   # noqa: BLE001 - any failure to answer means unreachable
        ok = False
    if ok != rt.state.device_ok("backend"):
        rt.post(ev.DeviceStatus("backend", ok))
