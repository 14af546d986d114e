"""A STACK or RETURN holds only for the note it was made for (drivers/bill/decisions.py), pure:
the escrow machine fed statuses as the driver feeds it, through decisions.on_status.

The pty tests (test_stale_decision.py) drop the line under a decided note; here also the
case no line fault shows: between two polls the note went back and another was fed.
"""

from __future__ import annotations

from drivers.bill import decisions, escrow
from drivers.bill.escrow import RETURN, STACK, EscrowState, Stage
from drivers.bill.id003 import Status, StatusReport
from kiosk import events as ev

VALUES = {0x61: 2000, 0x62: 5000, 0x63: 10000}


class Driver:
    """The machine as the shell runs it: started, reset, enabled; outcomes committed."""

    def __init__(self) -> None:
        self.s = EscrowState(values=VALUES)
        self.t = 100.0
        self.sent: list[escrow.Send] = []
        self.events: list[ev.Record] = []
        self.run(escrow.on_start(self.s, None, StatusReport(Status.DISABLED), self.t))
        self.run(escrow.on_reset(self.s, "e", self.t))
        assert self.sent == [escrow.RESET]
        self.sent.clear()

    def run(self, step: escrow.Step) -> None:
        self.s, sends, events = step
        self.sent += sends
        for e in events:
            if e not in self.events:
                self.events.append(e)
            if isinstance(e, ev.NOTE_OUTCOMES) and any(getattr(o, "key", None) == e.key
                                                        for o in self.s.owed):
                self.run(escrow.on_committed(self.s, e.key))

    def status(self, status: Status, code: int | None = None, after: float = 0.1) -> None:
        self.t += after
        self.run(decisions.on_status(self.s, StatusReport(status, denomination=code), self.t))

    def decide(self, what: str, key: str) -> None:
        self.run(escrow.on_decision(self.s, what, key, self.t))

    def escrowed(self) -> list[ev.NoteEscrowed]:
        return [e for e in self.events if isinstance(e, ev.NoteEscrowed)]


def test_another_escrow_code_between_two_polls_is_another_note():
    d = Driver()
    d.status(Status.ESCROW, 0x63)                     # 100 pesos
    (first,) = d.escrowed()
    d.decide("stack", first.key)
    assert d.sent == [STACK] and d.s.stage is Stage.STACKING
    d.sent.clear()
    d.status(Status.ESCROW, 0x62, after=1.5)          # 50 pesos now: the 100 went back
    assert d.sent == []                               # no STACK resent for it
    second = d.escrowed()[-1]
    assert (second.value, second.key != first.key) == (5000, True)
    assert ev.NoteReturned(10000, first.key) in d.events
    d.decide("stack", first.key)                      # the old decision, late: ignored
    d.status(Status.ESCROW, 0x62, after=1.5)
    assert d.sent == [] and d.s.note == escrow.Note(second.key, 5000)
    assert d.s.stage is Stage.ESCROW


def test_the_same_code_with_no_gap_is_the_same_note():
    d = Driver()
    d.status(Status.ESCROW, 0x62)
    (note,) = d.escrowed()
    d.decide("stack", note.key)
    d.status(Status.ESCROW, 0x62, after=1.5)          # the STACK did not take: sent again
    assert d.sent == [STACK, STACK] and len(d.escrowed()) == 1
    d.status(Status.STACKING)
    d.status(Status.VEND_VALID)
    assert ev.NoteCredited(5000, note.key) in d.events


def test_after_a_gap_a_note_in_escrow_is_a_new_one_even_of_the_same_value():
    for decided in ("", "stack", "return"):
        d = Driver()
        d.status(Status.ESCROW, 0x62)
        (note,) = d.escrowed()
        if decided:
            d.decide(decided, note.key)
        d.sent.clear()
        d.run(escrow.on_link_lost(d.s, d.t + 0.1))    # the line drops, and comes back
        d.status(Status.ESCROW, 0x62, after=2.0)
        assert d.sent == [], decided                  # nothing on the old decision's word
        assert ev.NoteReturned(5000, note.key) in d.events
        again = d.escrowed()[-1]
        assert again.key != note.key and again.value == 5000
        d.decide("stack", note.key)                   # decided before the gap: ignored
        assert d.sent == []
        d.decide("return", again.key)                 # the kiosk decides the new one
        assert d.sent == [RETURN]


def test_after_a_gap_a_note_that_moved_on_is_followed():
    d = Driver()
    d.status(Status.ESCROW, 0x62)
    (note,) = d.escrowed()
    d.decide("stack", note.key)
    d.run(escrow.on_link_lost(d.s, d.t + 0.1))
    d.status(Status.STACKING, after=1.0)              # the STACK got there: followed
    d.status(Status.VEND_VALID)
    assert ev.NoteCredited(5000, note.key) in d.events
    assert not any(isinstance(e, ev.NoteReturned) for e in d.events)
    assert len(d.escrowed()) == 1
