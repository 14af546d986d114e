"""A decision about a note (STACK or RETURN) holds only for the note it was made for.

The kiosk decides on a NoteEscrowed, which names the note (its key, "epoch:seq") as the
acceptor showed it then. ID-003 has no note identity: all the host sees is "ESCROW, a note of
this denomination". So the note the kiosk decided about is the one in escrow only while the
host has watched the acceptor without a gap, and the escrow code is still the note's:

- after the line was lost (the port gone or not answering: a USB-serial adapter dropping
  out, the acceptor power-cycled) the customer may have taken the note back and fed
  another, of the same value or not, and the acceptor may be holding that one;
- a different escrow code means a different note, whatever happened between two polls.

Then the note in transit is settled as given back (NoteReturned under its key: the acceptor
holds no note it was asked to stack and has not reported stacking it), any STACK or RETURN
decided for it, sent or still queued, is dropped with it (escrow.on_decision takes a decision
only for the key of the note in escrow), and what the acceptor holds now is a new note:
NoteEscrowed under a new key, for the kiosk to decide again. No STACK is sent on the strength
of a decision made before the gap; a RESET starts a new epoch of keys, which retires every
earlier decision the same way.

In every other case the escrow machine follows the acceptor as before (see escrow.py): a
note seen stacking or at VEND VALID after the gap is credited, one gone is returned, or in
doubt if STACK had been sent.
"""

from __future__ import annotations

from dataclasses import replace

from kiosk import events as ev

from . import escrow
from .escrow import EscrowState, Stage, Step
from .id003 import Status, StatusReport

IN_TRANSIT = frozenset({Stage.ESCROW, Stage.STACKING, Stage.RETURNING})


def on_status(s: EscrowState, r: StatusReport, now: float) -> Step:
    """escrow.on_status, once a note the acceptor may no longer hold as decided is settled."""
    if _not_the_same_note(s, r):
        s = _given_back(s)
    return escrow.on_status(s, r, now)


def _not_the_same_note(s: EscrowState, r: StatusReport) -> bool:
    n = s.note
    if n is None or s.stage not in IN_TRANSIT or r.status not in (Status.ESCROW,
                                                                   Status.HOLDING):
        return False
    if s.link_lost_since is not None:              # the first status after a gap
        return True
    return (bool(n.key) and r.status is Status.ESCROW
            and s.values.get(r.denomination or 0) != n.value)


def _given_back(s: EscrowState) -> EscrowState:
    n = s.note
    assert n is not None
    # Owed: on_status hands it over with this status, and again until it is durable.
    owed = s.owed + ((ev.NoteReturned(n.value, n.key),) if n.key else ())
    return replace(s, note=None, owed=owed,
                   stage=Stage.IDLE if s.configured else Stage.STARTING)
