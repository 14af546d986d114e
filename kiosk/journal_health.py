"""Out of service, cleanly, when the journal cannot be written (or soon could not be).

The money rule makes a failed journal write safe by itself: an effect is journaled before
it is performed, so nothing irreversible follows a write that failed; a device's fact that
cannot be entered is not answered, so the device repeats it (a note in escrow is not stacked
and goes back to the customer when the acceptor's escrow time runs out). What this module
adds is what the customer and the technician see:

- below `min_free_mb` free on the journal's disk, or after a failed write, the kiosk stops
  selling: the "journal" pseudo-device goes down, no payment method is offered, the acceptor
  is disabled, and an ALERT line is logged once;
- once a probe write succeeds again with enough room, selling resumes.

The disk is looked at every couple of seconds and when a customer chooses how to pay.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from . import disk
from . import events as ev

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("kiosk.journal_health")

DEVICE = "journal"
CHECK_S = 2.0
WRITE_ERRORS = (sqlite3.Error, OSError)


def min_free(rt: Runtime) -> int:
    return rt.settings.min_free_mb * disk.MB


def is_write_failure(exc: BaseException) -> bool:
    from .identity import JournalRefused
    from .journal import JournalError
    return isinstance(exc, (*WRITE_ERRORS, JournalError, JournalRefused))


def down(rt: Runtime, reason: str) -> None:
    """Stop selling now (loop thread)."""
    first = rt.journal_down is None
    rt.journal_down = reason
    if first:
        log.error("ALERT out of service: %s", reason)
    try:
        rt.devices["cash"].disable()            # no note is taken that cannot be journaled
    except Exception:
        log.exception("disabling the acceptor")
    if rt.state.device_ok(DEVICE) or DEVICE not in dict(rt.state.devices):
        rt.post(ev.DeviceStatus(DEVICE, False, reason))


def write_failed(rt: Runtime, exc: BaseException) -> None:
    if disk.is_full(exc):
        free_mb = disk.free_bytes(rt.settings.data_dir) // disk.MB
        reason = f"journal write failed, disk full ({free_mb} MB free)"
    else:
        reason = f"journal write failed: {exc}"
    log.error("journal write failed", exc_info=exc)
    down(rt, reason)


def _probe(rt: Runtime) -> bool:
    """A real write in the journal's database (rolled back only after it took room)."""
    try:
        db = rt.journal.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (repr(time.time()),))
        finally:
            db.execute("COMMIT")
        return True
    except WRITE_ERRORS:
        try:
            rt.journal.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return False


def check(rt: Runtime) -> None:
    """The periodic look (loop thread): down when short of room, up again when it is back
    and a write succeeds."""
    try:
        free = disk.free_bytes(rt.settings.data_dir)
    except OSError as exc:
        down(rt, f"the journal's disk cannot be read: {exc}")
        return
    if free < min_free(rt):
        down(rt, f"disk low: {free // disk.MB} MB free, at least {min_free(rt) // disk.MB} MB"
                 " needed")
        return
    if rt.journal_down is None:
        if DEVICE not in dict(rt.state.devices):
            rt.post(ev.DeviceStatus(DEVICE, True))
        return
    if _probe(rt):
        log.warning("journal writable again (%d MB free): selling resumes", free // disk.MB)
        rt.journal_down = None
        rt.post(ev.DeviceStatus(DEVICE, True))
