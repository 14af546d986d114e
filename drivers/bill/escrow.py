"""The note acceptor's escrow cycle as a pure state machine: no I/O, no clock, no threads.

The shell (`acceptor.py`) feeds it what happened and executes what it returns. Every
function takes a frozen `EscrowState` and returns `(state, sends, events)`: `sends` are
ID-003 frames to send (`Send(Command, data)`), `events` are kiosk records. A note outcome
(NoteCredited / NoteReturned / NoteInDoubt, always with value and key) is *owed* until the
shell reports it durable with `on_committed`; an owed outcome is emitted again with every
status (the shell commits it again: same key, harmless), and VEND VALID is ACKed only when
nothing is owed. Time is the `now` passed in (escrow decision, transient timer, resends).

    on_start(s, pending, report, now)   first status of this process (+ the journal's note)
    on_status(s, report, now)           every status answer
    on_decision(s, "stack"|"return", key, now)
    on_committed(s, key)                commit(outcome) returned True
    on_link_lost(s, now)                no answer / port gone (called again while it lasts)
    on_reset(s, epoch, now)             the shell ran RESET and configured the acceptor
    on_enable(s, on)

| stage     | the note                          | leaves on                                    |
|-----------|-----------------------------------|----------------------------------------------|
| STARTING  | none, or the journal's pending    | pending: VEND VALID/STACKED/PU-stacker ->    |
|           | one (not configured: process      | credited, PU-acceptor -> returned, its       |
|           | start, or after a power-up)       | ESCROW -> RETURN, STACKING -> followed, else |
|           |                                   | in doubt; none: IDLING/DISABLED/fault ->     |
|           |                                   | RESET (the shell: on_reset -> IDLE)          |
| IDLE      | none                              | ESCROW -> ESCROW (NoteEscrowed, a new key)   |
| ESCROW    | NoteEscrowed, awaiting a decision | stack -> STACKING; return or 10 s -> RETURNING|
| STACKING  | STACK sent                        | VEND VALID/STACKED -> CREDITED (credited);   |
|           |                                   | REJECTING/RETURNING -> RETURNING; IDLING     |
|           |                                   | with no VEND VALID, fault, stuck -> in doubt |
| CREDITED  | credited; ACK once durable,       | STACKED/IDLING/... -> IDLE (or STARTING)     |
|           | a repeat ACKed, never re-credited |                                              |
| RETURNING | RETURN sent / given back          | IDLING/DISABLED/ACCEPTING -> IDLE (returned) |
| FAULT     | settled; inhibited, CashFault     | IDLING/DISABLED/ESCROW/ACCEPTING -> IDLE     |
|           |                                   | (inhibit restored, DeviceStatus ok)          |

In any stage a POWER_UP* status settles a note in transit (in the stacker: credited; in the
acceptor: returned by the RESET; plain: in doubt, or returned if it was being returned) and
moves to STARTING: RESET is sent only there, never with a note in transit. A link loss keeps
the note; after `transient_timeout_s` without the device it is in doubt ("link_lost") and
kept in *limbo*: if it shows again in escrow it is stacked, its VEND VALID is only ACKed.
A note this process never named (found at start, or an unknown escrow code) is handled with
an empty key: NoteAtPowerUp for reconciliation, never a keyed outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Protocol

from kiosk import events as ev

from .id003 import POWER_UP_STATES, TRANSIENT, Command, Status, StatusReport

FAULT_NAMES = {Status.STACKER_FULL: "stacker_full", Status.STACKER_OPEN: "stacker_open",
               Status.ACCEPTOR_JAM: "acceptor_jam", Status.STACKER_JAM: "stacker_jam",
               Status.CHEATED: "cheated", Status.FAILURE: "failure"}
# A fault before STACK: the device gives the note back, unless it is caught inside.
CAUGHT_INSIDE = frozenset({Status.ACCEPTOR_JAM, Status.STACKER_JAM, Status.FAILURE})
RESEND_S = 1.0                  # STACK/RETURN sent again if the device still shows ESCROW


class EscrowError(Exception):
    """Base of the state machine's errors."""


class IllegalTransition(EscrowError):
    """The shell asked for something the machine cannot do in its stage (a caller bug)."""


class Stage(Enum):
    STARTING = "starting"
    IDLE = "idle"
    ESCROW = "escrow"
    STACKING = "stacking"
    CREDITED = "credited"
    RETURNING = "returning"
    FAULT = "fault"


@dataclass(frozen=True)
class Send:
    command: Command
    data: bytes = b""


ACK, RESET = Send(Command.ACK), Send(Command.RESET)
STACK, RETURN = Send(Command.STACK_1), Send(Command.RETURN)


def inhibit(on: bool) -> Send:
    return Send(Command.INHIBIT, b"\x01" if on else b"\x00")


@dataclass(frozen=True)
class Note:
    key: str                    # "epoch:seq"; "" for a note this process never named
    value: int                  # minor units; 0 when unknown


class Pending(Protocol):        # kiosk.gate.PendingNote
    key: str
    value: int


@dataclass(frozen=True)
class EscrowState:
    values: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    escrow_timeout_s: float = 10.0
    transient_timeout_s: float = 10.0
    stage: Stage = Stage.STARTING
    started: bool = False
    configured: bool = False
    note: Note | None = None    # the note in transit (ESCROW/STACKING/RETURNING, STARTING)
    since: float = 0.0          # stage entered
    sent_at: float = 0.0        # last STACK/RETURN
    status: Status | None = None
    status_since: float = 0.0
    fault: str | None = None
    enabled: bool = False
    epoch: str = ""
    seq: int = 0
    limbo: Note | None = None   # in doubt while the device may still hold it
    owed: tuple[ev.Record, ...] = ()
    link_lost_since: float | None = None


Step = tuple[EscrowState, list[Send], list[ev.Record]]


@dataclass
class _Out:
    sends: list[Send] = field(default_factory=list)
    events: list[ev.Record] = field(default_factory=list)


# ---------------------------------------------------------------------------- inputs
def on_start(s: EscrowState, pending: Pending | None, report: StatusReport,
             now: float) -> Step:
    if s.started:
        raise IllegalTransition("on_start called twice")
    note = Note(pending.key, pending.value) if pending is not None else None
    return on_status(replace(s, started=True, stage=Stage.STARTING, note=note, since=now),
                     report, now)


def on_status(s: EscrowState, r: StatusReport, now: float) -> Step:
    if not s.started:
        raise IllegalTransition("a status before on_start")
    out = _Out(events=list(s.owed))                 # not durable yet: commit them again
    if r.status in (Status.COMMUNICATION_ERROR, Status.INVALID_COMMAND):
        return s, out.sends, out.events
    entered = r.status is not s.status
    s = replace(s, status=r.status, status_since=now if entered else s.status_since,
                link_lost_since=None)
    if r.status in TRANSIENT and now - s.status_since > s.transient_timeout_s:
        s = _stuck(replace(s, status_since=now), r.status, out)
    if r.status in POWER_UP_STATES:
        s = _powered_up(s, r.status, out)
    else:
        s = _dispatch(s, r, now, entered, out)
    return s, out.sends, out.events


def on_decision(s: EscrowState, decision: str, key: str, now: float) -> Step:
    if decision not in ("stack", "return"):
        raise IllegalTransition(f"decision {decision!r} is neither 'stack' nor 'return'")
    if s.stage is not Stage.ESCROW or s.note is None or key != s.note.key:
        return s, [], []                            # a stale decision: ignored
    stage, send = (Stage.STACKING, STACK) if decision == "stack" else (Stage.RETURNING, RETURN)
    return replace(s, stage=stage, since=now, sent_at=now), [send], []


def on_committed(s: EscrowState, key: str) -> Step:
    left = tuple(o for o in s.owed if getattr(o, "key", None) != key)
    if len(left) == len(s.owed):
        raise IllegalTransition(f"no outcome of note {key!r} awaits a commit")
    s = replace(s, owed=left)
    return s, [ACK] if s.status is Status.VEND_VALID and not left else [], []


def on_link_lost(s: EscrowState, now: float) -> Step:
    if not s.started:
        return s, [], []
    since = now if s.link_lost_since is None else s.link_lost_since
    s, out = replace(s, link_lost_since=since), _Out(events=list(s.owed))
    if s.note is not None and now - since >= s.transient_timeout_s:
        # The device stays away: the customer cannot wait for it. A note never named
        # (found at start) is only dropped; its NoteAtPowerUp is journaled already.
        limbo = s.note if s.note.key else None
        s = _settle(s, "doubt", out, "link_lost") if limbo else replace(s, note=None)
        s = replace(s, stage=_rest(s), limbo=limbo)
    return s, out.sends, out.events


def on_reset(s: EscrowState, epoch: str, now: float,
             values: Mapping[int, int] | None = None) -> Step:
    if s.note is not None:
        raise IllegalTransition(f"RESET with note {s.note.key!r} in transit")
    return replace(s, stage=Stage.IDLE, configured=True, epoch=epoch, seq=0, since=now,
                   status=None, fault=None, limbo=None,
                   values=MappingProxyType(dict(values)) if values is not None
                   else s.values), [], []


def on_enable(s: EscrowState, on: bool) -> Step:
    s = replace(s, enabled=on)
    if not s.configured or (on and s.stage is Stage.FAULT):
        return s, [], []                            # applied at configuration / fault clear
    return s, [inhibit(not on)], []


# ---------------------------------------------------------------------------- helpers
def _rest(s: EscrowState) -> Stage:
    return Stage.IDLE if s.configured else Stage.STARTING


def _settle(s: EscrowState, kind: str, out: _Out, reason: str = "") -> EscrowState:
    """The note in transit gets its one outcome; it leaves `note`."""
    n = s.note
    if n is None:
        return s
    if not n.key:                                   # never named: reconciliation only
        if kind != "returned":
            out.events.append(ev.NoteAtPowerUp("stacker", n.value))
        return replace(s, note=None)
    rec: ev.Record = (ev.NoteCredited(n.value, n.key) if kind == "credited" else
                      ev.NoteReturned(n.value, n.key) if kind == "returned" else
                      ev.NoteInDoubt(n.value, n.key, reason))
    out.events.append(rec)
    return replace(s, note=None, owed=s.owed + (rec,))


def _credit(s: EscrowState, r: StatusReport, out: _Out) -> EscrowState:
    s = replace(_settle(s, "credited", out), stage=Stage.CREDITED)
    return _vend_valid(s, r, out)


def _vend_valid(s: EscrowState, r: StatusReport, out: _Out) -> EscrowState:
    if r.status is Status.VEND_VALID and not s.owed:
        out.sends.append(ACK)                       # VEND VALID repeats until this
    return s


def _fault(s: EscrowState, reason: str, out: _Out) -> EscrowState:
    if s.fault == reason:
        return s
    out.events += [ev.CashFault(reason), ev.DeviceStatus("cash", False, reason)]
    out.sends.append(inhibit(True))
    return replace(s, stage=Stage.FAULT, fault=reason)


def _stuck(s: EscrowState, status: Status, out: _Out) -> EscrowState:
    if s.fault is not None:
        return s
    reason = f"stuck_{status.name.lower()}"
    if s.stage is Stage.STARTING and s.note is None:
        out.sends.append(RESET)                     # nothing in transit: start again
        return s
    if s.note is not None:
        s = replace(_settle(s, "doubt", out, reason), limbo=s.note)
    return _fault(s, reason, out)


def _powered_up(s: EscrowState, st: Status, out: _Out) -> EscrowState:
    where = {Status.POWER_UP_BILL_IN_STACKER: "stacker",
             Status.POWER_UP_BILL_IN_ACCEPTOR: "acceptor"}.get(st)
    if s.note is not None:
        returning = s.stage is Stage.RETURNING
        kind = {"stacker": "doubt" if returning else "credited",
                "acceptor": "returned"}.get(where or "", "returned" if returning else "doubt")
        reason = "no_trace_at_start" if s.stage is Stage.STARTING else (
            "stacker_after_return" if where else "power_up_no_trace")
        s = _settle(s, kind, out, reason)
    elif where is not None and s.stage is not Stage.CREDITED:   # not the note just credited
        n = s.limbo or Note("", 0)
        out.events.append(ev.NoteAtPowerUp(where, n.value, n.key))
    out.sends.append(RESET)
    return replace(s, stage=Stage.STARTING, configured=False, fault=None, limbo=None)


def _dispatch(s: EscrowState, r: StatusReport, now: float, entered: bool,
              out: _Out) -> EscrowState:
    st, n = r.status, s.note
    if s.stage is Stage.STARTING:
        return _starting(s, r, now, out)
    if s.stage is Stage.FAULT:
        if st in FAULT_NAMES:
            return _fault(s, FAULT_NAMES[st], out)
        if st in (Status.IDLING, Status.DISABLED, Status.ESCROW, Status.ACCEPTING):
            out.events.append(ev.DeviceStatus("cash", True, "fault cleared"))
            if s.configured:
                out.sends.append(inhibit(not s.enabled))
            s = replace(s, stage=_rest(s), fault=None)
            return _dispatch(s, r, now, entered, out)
        return _vend_valid(s, r, out)
    if s.stage is Stage.CREDITED:
        if st is Status.VEND_VALID:
            return _vend_valid(s, r, out)           # a repeat: ACKed, never re-credited
        return _dispatch(replace(s, stage=_rest(s)), r, now, entered, out)
    if n is None:                                   # IDLE
        return _idle(s, r, now, entered, out)
    # ESCROW, STACKING, RETURNING: a note in transit
    match st:
        case Status.VEND_VALID | Status.STACKED:
            return _credit(s, r, out)
        case Status.ESCROW | Status.HOLDING if s.stage is Stage.ESCROW:
            if now - s.since > s.escrow_timeout_s:  # no decision: give it back
                out.sends.append(RETURN)
                return replace(s, stage=Stage.RETURNING, since=now, sent_at=now)
            return s
        case Status.ESCROW | Status.HOLDING:
            if now - s.sent_at >= RESEND_S:         # our STACK/RETURN did not take
                out.sends.append(STACK if s.stage is Stage.STACKING else RETURN)
                return replace(s, sent_at=now)
            return s
        case Status.STACKING | Status.PAUSE:
            return replace(s, stage=Stage.STACKING)
        case Status.RETURNING | Status.REJECTING:
            return replace(s, stage=Stage.RETURNING)
        case Status.IDLING | Status.DISABLED | Status.ACCEPTING:
            if s.stage is Stage.STACKING:
                s = _settle(s, "doubt", out, "no_vend_valid")
            else:
                s = _settle(s, "returned", out)
            return _dispatch(replace(s, stage=_rest(s)), r, now, entered, out)
        case _ if st in FAULT_NAMES:
            kind = "doubt" if s.stage is Stage.STACKING or st in CAUGHT_INSIDE else "returned"
            return _fault(_settle(s, kind, out, FAULT_NAMES[st]), FAULT_NAMES[st], out)
    return s


def _idle(s: EscrowState, r: StatusReport, now: float, entered: bool,
          out: _Out) -> EscrowState:
    match r.status:
        case Status.ESCROW:
            value = s.values.get(r.denomination or 0)
            if s.limbo is not None and value == s.limbo.value:
                if now - s.sent_at >= RESEND_S:     # in doubt (counted paid): into the box
                    out.sends.append(STACK)
                    return replace(s, sent_at=now)
                return s
            if value is None:                       # a code we do not know: back it goes
                out.sends.append(RETURN)
                return replace(s, stage=Stage.RETURNING, note=Note("", 0), sent_at=now)
            key = f"{s.epoch}:{s.seq + 1}"
            out.events.append(ev.NoteEscrowed(value, key))
            return replace(s, stage=Stage.ESCROW, note=Note(key, value), seq=s.seq + 1,
                           since=now, sent_at=now)
        case Status.HOLDING:
            out.sends.append(RETURN)
            return replace(s, stage=Stage.RETURNING, note=Note("", 0), sent_at=now)
        case Status.REJECTING if entered:
            out.events.append(ev.NoteRejected(r.reason or "rejected"))
        case Status.STACKING | Status.PAUSE if s.limbo is None:
            return replace(s, stage=Stage.STACKING, note=Note("", 0))
        case Status.VEND_VALID:
            if s.limbo is None:                     # a note nobody named is in the box
                out.events.append(ev.NoteAtPowerUp("stacker", 0))
            return _vend_valid(replace(s, stage=Stage.CREDITED, limbo=None), r, out)
        case Status.IDLING | Status.DISABLED:
            return replace(s, limbo=None)
        case st if st in FAULT_NAMES:
            return _fault(s, FAULT_NAMES[st], out)
    return s


def _starting(s: EscrowState, r: StatusReport, now: float, out: _Out) -> EscrowState:
    """Not configured: resolve a note in transit first, then RESET."""
    st, n = r.status, s.note
    value = s.values.get(r.denomination or 0, 0)
    if n is not None:                               # the journal's pending note
        match st:
            case Status.VEND_VALID | Status.STACKED:
                return _credit(s, r, out)
            case Status.ESCROW | Status.HOLDING if st is Status.HOLDING or value == n.value:
                out.sends.append(RETURN)
                return replace(s, stage=Stage.RETURNING, sent_at=now)
            case Status.STACKING | Status.PAUSE:
                return replace(s, stage=Stage.STACKING)
            case Status.RETURNING:
                return replace(s, stage=Stage.RETURNING)
        s = _settle(s, "doubt", out, FAULT_NAMES.get(st, "no_trace_at_start"))
    match st:
        case Status.ESCROW | Status.HOLDING:
            out.events.append(ev.NoteAtPowerUp("escrow", value))
            out.sends.append(RETURN)
            return replace(s, stage=Stage.RETURNING, note=Note("", value), sent_at=now)
        case Status.STACKING | Status.PAUSE:
            return replace(s, stage=Stage.STACKING, note=Note("", 0))
        case Status.VEND_VALID:
            out.events.append(ev.NoteAtPowerUp("stacker", 0))
            return _vend_valid(replace(s, stage=Stage.CREDITED), r, out)
        case Status.ACCEPTING | Status.REJECTING | Status.RETURNING | Status.STACKED \
                | Status.INITIALIZE:
            return s                                # transient: it ends by itself
    out.sends.append(RESET)
    return s
