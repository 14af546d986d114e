"""The money gate: a money fact from a device thread is entered once, durably, before the
device is answered, and never waits for the UI loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from kiosk import events as ev
from kiosk.engine import Txn
from kiosk.gate import Gate, PendingNote
from kiosk.journal import Journal

MSISDN = "09171234567"


def opened(path: Path) -> tuple[Journal, str]:
    j = Journal(path, "K0001", "PHP")
    ref = j.open_transaction(Txn(msisdn=MSISDN, operator="globe", product_id="globe-load-any",
                                 amount=10000, method="cash"))
    return j, ref


def test_a_note_is_booked_to_the_transaction_that_stacked_it_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j, ref = opened(path)
    handed: list[ev.Record] = []
    gate = Gate(path, "K0001", "PHP", handed.append)
    j.append(ref, ev.NoteEscrowed(5000, "e1:1"))
    j.append(ref, ev.StackNote(5000, "e1:1"))
    assert gate.pending_note() == PendingNote("e1:1", 5000, ref)
    for _ in range(3):                           # VEND VALID repeated: one credit
        assert gate.commit(ev.NoteCredited(5000, "e1:1"))
    assert handed == [ev.NoteCredited(5000, "e1:1", ref)]
    row = j.transaction(ref)
    assert row is not None and row.paid == 5000
    assert [e.kind for e in j.events(ref)].count("NoteCredited") == 1
    # Its one outcome slot is taken: a contradicting report adds nothing either.
    assert gate.commit(ev.NoteReturned(5000, "e1:1"))
    assert gate.commit(ev.NoteInDoubt(5000, "e1:1", "jam"))
    assert len(handed) == 1 and j.transaction(ref).paid == 5000  # type: ignore[union-attr]
    assert gate.pending_note() is None
    gate.close()
    j.close()


def test_a_note_in_doubt_first_makes_the_later_credit_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j, ref = opened(path)
    handed: list[ev.Record] = []
    gate = Gate(path, "K0001", "PHP", handed.append)
    j.append(ref, ev.StackNote(2000, "e2:7"))
    assert gate.commit(ev.NoteInDoubt(2000, "e2:7", "acceptor_jam"))
    assert gate.commit(ev.NoteCredited(2000, "e2:7"))       # the jam cleared into the box
    assert handed == [ev.NoteInDoubt(2000, "e2:7", "acceptor_jam", ref)]
    assert j.transaction(ref).paid == 2000  # type: ignore[union-attr]
    gate.close()
    j.close()


def test_a_note_whose_transaction_is_closed_is_an_orphan(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j, ref = opened(path)
    handed: list[ev.Record] = []
    gate = Gate(path, "K0001", "PHP", handed.append)
    j.append(ref, ev.StackNote(5000, "e3:1"))
    j.append(ref, ev.CloseTransaction(ref, "cancelled", 0, 0, 0, 0))
    assert gate.commit(ev.NoteCredited(5000, "e3:1"))
    assert handed == [ev.NoteCredited(5000, "e3:1", None)]
    [credit] = [e for e in j.events() if e.kind == "NoteCredited"]
    assert credit.ref is None and j.transaction(ref).paid == 0  # type: ignore[union-attr]
    assert gate.pending_note() is None                       # it has its outcome
    gate.close()
    j.close()


def test_a_write_that_cannot_be_made_is_refused_and_retried(tmp_path: Path) -> None:
    """Another process holds the write lock past the gate's busy timeout (a long report):
    the fact is refused (the device is not answered), nothing is half-written, and the
    device's repeat enters it once the lock is gone."""
    path = tmp_path / "journal.sqlite3"
    j, ref = opened(path)
    j.append(ref, ev.StackNote(5000, "e4:1"))
    handed: list[ev.Record] = []
    gate = Gate(path, "K0001", "PHP", handed.append)
    gate.BUSY_TIMEOUT_S = 0.2
    j.db.execute("BEGIN IMMEDIATE")                # the lock, held
    assert gate.commit(ev.NoteCredited(5000, "e4:1")) is False
    j.db.execute("ROLLBACK")
    assert handed == [] and j.transaction(ref).paid == 0  # type: ignore[union-attr]
    assert gate.commit(ev.NoteCredited(5000, "e4:1"))
    assert j.transaction(ref).paid == 5000  # type: ignore[union-attr]
    gate.close()
    j.close()


async def test_a_device_thread_is_answered_while_the_loop_is_stalled(tmp_path: Path) -> None:
    """The UI loop frozen (a long frame, a slow listener): the device thread's fact is
    durable and answered meanwhile; the screens learn of it once the loop runs again."""
    path = tmp_path / "journal.sqlite3"
    j, ref = opened(path)
    j.append(ref, ev.StackNote(5000, "e5:1"))
    loop = asyncio.get_running_loop()
    delivered: list[ev.Record] = []
    gate = Gate(path, "K0001", "PHP", lambda e: loop.call_soon_threadsafe(delivered.append, e))
    answered = threading.Event()
    result: dict[str, Any] = {}

    def device() -> None:
        result["ok"] = gate.commit(ev.NoteCredited(5000, "e5:1"))
        answered.set()
    threading.Thread(target=device).start()
    # Stall the loop (a blocking wait on the loop thread) until the device is answered.
    assert answered.wait(10), "the device thread waited for the stalled loop"
    assert result["ok"] is True and delivered == []        # the loop has not run yet
    await asyncio.sleep(0.05)
    assert delivered == [ev.NoteCredited(5000, "e5:1", ref)]
    gate.close()
    j.close()


def test_an_approval_of_another_amount_is_journaled_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal(path, "K0001", "PHP")
    ref = j.open_transaction(Txn(msisdn=MSISDN, operator="globe", product_id="globe-load",
                                 amount=5000, method="card"))
    gate = Gate(path, "K0001", "PHP")

    class Result:
        amount, auth_code, trace, receipt_no, card_name, terminal_id = (
            3000, "123456", "000007", "0007", "Mastercard", "52500038")
    rec = gate.commit_card(ref, Result())
    assert rec is not None and rec.amount == 3000
    assert gate.commit_card(ref, Result()) == rec            # the same approval again: once
    assert [e.kind for e in j.events(ref)].count("CardApproved") == 1
    assert j.transaction(ref).paid == 3000  # type: ignore[union-attr]
    gate.close()
    j.close()
