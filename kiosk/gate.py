"""The money gate: where a money fact from a device thread enters the journal, once.

A device that reports money (the note acceptor's credit, a card terminal's approval) calls
the gate from its own thread *before* it answers the device (ACK, 80 00 00). The gate
writes the fact on its own SQLite connection, under a lock, with no wait on the UI loop:

    device thread ── commit(fact) ──▶ Journal.enter under UNIQUE (source, key) ──▶ True
                                           │ new fact only
                                           ▼
                                  loop.call_soon_threadsafe(deliver, fact)  (the screens)

`commit` returns True when the fact is durable, entered now or before (a device repeating
itself, a second process delivering it late: the unique key makes the repeat a no-op).
False means it is *not* on disk (the disk failed, the database stayed locked past the busy
timeout): the device is not answered and will repeat, under the same key. Nothing here
can be abandoned half-way: a write either committed or rolled back, and a late delivery to
the loop finds the fact already journaled (the session steps it without writing again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import events as ev
from .journal import Entry, Journal

log = logging.getLogger("kiosk.gate")

Deliver = Callable[[ev.Record], None]


@dataclass(frozen=True)
class PendingNote:
    """A note the journal says was told to STACK and has no outcome yet."""
    key: str
    value: int
    ref: str | None                 # its transaction, while still open


class Gate:
    # A device waits at most this long for the database (a Z report or another process
    # holding the write lock): then the fact is refused and the device asks again.
    BUSY_TIMEOUT_S = 2.0

    def __init__(self, path: str | Path, kiosk_id: str, currency: str,
                 deliver: Deliver | None = None) -> None:
        self.path, self.kiosk_id, self.currency = Path(path), kiosk_id, currency
        self.deliver = deliver
        self.after_write: Callable[[], None] | None = None    # the crash harness's hook
        self.failed: Callable[[BaseException], None] | None = None   # a write failed
        self._lock = threading.Lock()
        self._journal: Journal | None = None

    def open(self) -> None:
        """Open the gate's connection now (the kiosk does it before its devices start), so
        the first note is not the one that waits for the schema check."""
        with self._lock:
            self._j()

    def _j(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.path, self.kiosk_id, self.currency, any_thread=True,
                                    busy_timeout_s=self.BUSY_TIMEOUT_S)
            self._journal.after_write = self._written
        return self._journal

    def _written(self) -> None:
        if self.after_write is not None:
            self.after_write()

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    # ------------------------------------------------------------------ entering facts
    def enter(self, rec: ev.Record, ref: str | None = None) -> Entry | None:
        """Enter one fact durably; None if it could not be written (logged)."""
        try:
            with self._lock:
                return self._j().enter(ref, rec)
        except Exception as exc:
            log.exception("%s not journaled", rec.kind())
            if self.failed is not None:
                self.failed(exc)            # the kiosk goes out of service (journal_health)
            return None

    def commit(self, rec: ev.Record) -> bool:
        """From a device thread: enter `rec` (a note's outcome), then hand a new fact to the
        loop. True: durable (the device may be answered)."""
        entry = self.enter(rec)
        if entry is None:
            return False
        if entry.new:
            self._hand_over(entry.record)
        else:
            log.info("%s repeated (key %s): already entered", rec.kind(),
                     (ev.fact_key(rec) or ("", ""))[1])
        return True

    def _hand_over(self, rec: ev.Record) -> None:
        if self.deliver is None:
            return
        try:
            self.deliver(rec)
        except Exception:
            log.exception("handing %s to the loop", rec.kind())   # replays it at start

    def commit_card(self, ref: str, r: Any) -> ev.CardApproved | None:
        """From the card driver's thread, before it confirms an approval to the terminal:
        CardApproved for the amount the terminal approved (another amount than asked is
        booked as what it is; the engine reverses it). Returns the record when durable."""
        last4 = str(getattr(r, "card_last4", "") or "")
        rec = ev.CardApproved(ref, r.amount, r.auth_code, r.trace, r.receipt_no, r.card_name,
                              r.terminal_id, last4[-4:] if last4[-4:].isdigit() else "")
        entry = self.enter(rec, ref)
        return None if entry is None else rec

    def pending_note(self) -> PendingNote | None:
        try:
            with self._lock:
                found = self._j().pending_note()
        except Exception:
            log.exception("reading the pending note")
            return None
        return PendingNote(*found) if found else None
