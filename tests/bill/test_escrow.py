"""The escrow cycle's state machine (drivers/bill/escrow.py), pure: tables of status
sequences, each ending with the note credited exactly once, returned, or in doubt with its
value and key; then random sequences (hypothesis) against the invariants the money needs.

`Shell` plays the driver around the machine: it commits outcomes (or refuses, as a slow
journal does), reports them durable with on_committed, and answers RESET with on_reset,
the way drivers/bill/acceptor.py does; it checks on the way that no ACK leaves before the
credit of its note is durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.bill import escrow as fsm
from drivers.bill.escrow import ACK, RESET, RETURN, STACK, IllegalTransition, Stage
from drivers.bill.id003 import Command, Status, StatusReport
from kiosk import events as ev

VALUES = {0x61: 2000, 0x62: 5000, 0x63: 10000}
EVIDENCE = {Status.VEND_VALID, Status.STACKED, Status.POWER_UP_BILL_IN_STACKER}


def report(name: str) -> StatusReport:
    """ "ESCROW" (50 pesos), "ESCROW:61", "REJECTING", "FAILURE" or any status name."""
    name, _, code = name.partition(":")
    status = Status[name]
    if status is Status.ESCROW:
        return StatusReport(status, denomination=int(code or "62", 16))
    if status is Status.REJECTING:
        return StatusReport(status, reject_code=0x72, reject_reason="magnetic_pattern")
    if status is Status.FAILURE:
        return StatusReport(status, failure_code=0xA2)
    return StatusReport(status)


@dataclass
class Pending:
    key: str
    value: int
    ref: str | None = "R-1"


@dataclass
class Shell:
    s: fsm.EscrowState = field(default_factory=lambda: fsm.EscrowState(values=VALUES))
    t: float = 100.0
    refuse: int = 0                                    # commits to refuse
    sent: list[fsm.Send] = field(default_factory=list)
    events: list[ev.Record] = field(default_factory=list)
    durable: dict[str, ev.Record] = field(default_factory=dict)   # the gate's slots
    emitted: dict[str, set[ev.Record]] = field(default_factory=dict)
    new_credits: list[tuple[str, Status | None]] = field(default_factory=list)
    epochs: int = 0
    last: Status | None = None

    def apply(self, step: fsm.Step) -> list[ev.Record]:
        self.s, sends, events = step
        self.events += events
        for e in events:
            if isinstance(e, ev.NOTE_OUTCOMES):
                if e.key not in self.emitted and isinstance(e, ev.NoteCredited):
                    self.new_credits.append((e.key, self.last))
                self.emitted.setdefault(e.key, set()).add(e)
                if self.refuse:
                    self.refuse -= 1
                    continue
                self.durable.setdefault(e.key, e)
                self.apply(fsm.on_committed(self.s, e.key))
        for send in sends:
            if send == ACK:                            # journal first, then the ACK
                assert all(k in self.durable for k, _ in self.new_credits), self.new_credits
            self.sent.append(send)
            if send == RESET:
                self.epochs += 1
                self.apply(fsm.on_reset(self.s, f"e{self.epochs}", self.t))
        return events

    # the driver's inputs
    def start(self, first: str = "IDLING", pending: Pending | None = None) -> Shell:
        self.last = report(first).status
        self.apply(fsm.on_start(self.s, pending, report(first), self.t))
        return self

    def status(self, name: str, dt: float = 0.15) -> list[ev.Record]:
        self.t += dt
        self.last = report(name).status
        return self.apply(fsm.on_status(self.s, report(name), self.t))

    def decide(self, decision: str, key: str | None = None) -> None:
        if key is None:
            key = self.s.note.key if self.s.note else ""
        self.apply(fsm.on_decision(self.s, decision, key, self.t))

    def lost(self, dt: float = 0.5) -> None:
        self.t += dt
        self.last = None
        self.apply(fsm.on_link_lost(self.s, self.t))

    def run(self, steps: str) -> Shell:
        """Space-separated: status names, "stack"/"return" (the note in escrow), "stale"
        (a stack for another key), "lost" (no answer), "+S" (S seconds pass), "refuse"."""
        for step in steps.split():
            if step in ("stack", "return"):
                self.decide(step)
            elif step == "stale":
                self.decide("stack", "e0:9")
            elif step == "lost":
                self.lost()
            elif step == "refuse":
                self.refuse += 1
            elif step.startswith("+"):
                self.t += float(step[1:])
            else:
                self.status(step)
        return self

    # what happened
    def outcomes(self) -> list[tuple[str, int, str]]:
        return [(type(e).__name__, e.value, getattr(e, "reason", ""))
                for e in self.durable.values()]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def configured() -> Shell:
    shell = Shell().start("POWER_UP")
    assert shell.sent == [RESET] and shell.s.stage is Stage.IDLE and shell.s.configured
    shell.sent.clear()
    return shell


CREDITED = [("NoteCredited", 5000, "")]
RETURNED = [("NoteReturned", 5000, "")]


def doubt(reason: str) -> list[tuple[str, int, str]]:
    return [("NoteInDoubt", 5000, reason)]


# ---------------------------------------------------------------------------- tables
CYCLES = [
    ("credit", "IDLING ACCEPTING ESCROW stack STACKING VEND_VALID STACKED IDLING", CREDITED),
    ("return", "IDLING ESCROW return RETURNING RETURNING IDLING", RETURNED),
    ("vend_valid_repeated", "ESCROW stack STACKING VEND_VALID VEND_VALID VEND_VALID STACKED",
     CREDITED),
    ("replies_lost_stacking_and_stacked", "ESCROW stack VEND_VALID IDLING", CREDITED),
    ("no_answer_mid_note", "ESCROW stack lost lost STACKING lost VEND_VALID lost STACKED",
     CREDITED),
    ("slow_replies", "ESCROW +0.4 stack +0.4 STACKING +0.4 VEND_VALID +0.4 DISABLED", CREDITED),
    ("stack_not_taken_is_sent_again", "ESCROW stack ESCROW +1.1 ESCROW STACKING VEND_VALID",
     CREDITED),
    ("device_stacks_while_returning", "ESCROW return STACKING VEND_VALID", CREDITED),
    ("rejected_in_transport", "ESCROW stack STACKING REJECTING RETURNING IDLING", RETURNED),
    ("escrow_timeout_then_late_stack", "ESCROW +10.5 ESCROW stack RETURNING IDLING", RETURNED),
    ("stale_key_ignored", "ESCROW stale ESCROW return RETURNING IDLING", RETURNED),
    ("commit_refused_twice", ("ESCROW stack refuse refuse VEND_VALID VEND_VALID VEND_VALID "
     "STACKED"), CREDITED),
    ("stacked_without_vend_valid_is_evidence", "ESCROW stack STACKING STACKED IDLING",
     CREDITED),
    ("idle_after_stacking_without_vend_valid", "ESCROW stack STACKING IDLING",
     doubt("no_vend_valid")),
    ("jam_while_stacking", "ESCROW stack STACKING STACKER_JAM STACKER_JAM DISABLED",
     doubt("stacker_jam")),
    ("acceptor_jam_in_escrow", "ESCROW ACCEPTOR_JAM IDLING", doubt("acceptor_jam")),
    ("stacker_open_in_escrow", "ESCROW STACKER_OPEN STACKER_OPEN DISABLED", RETURNED),
    ("stuck_stacking_then_done", ("ESCROW stack STACKING +10.5 STACKING STACKING VEND_VALID "
     "STACKED IDLING"), doubt("stuck_stacking")),
    ("line_gone_too_long", "ESCROW stack STACKING lost +10 lost VEND_VALID STACKED IDLING",
     doubt("link_lost")),
    ("line_gone_too_long_in_escrow", "ESCROW lost +10 lost ESCROW STACKING VEND_VALID",
     doubt("link_lost")),
    # power-up (or a RESET by someone) at every stage
    ("power_up_in_escrow_bill_in_acceptor", "ESCROW POWER_UP_BILL_IN_ACCEPTOR", RETURNED),
    ("power_up_in_escrow_no_bill", "ESCROW POWER_UP", doubt("power_up_no_trace")),
    ("power_up_stacking_bill_in_stacker", "ESCROW stack STACKING POWER_UP_BILL_IN_STACKER",
     CREDITED),
    ("power_up_stacking_bill_in_acceptor", "ESCROW stack STACKING POWER_UP_BILL_IN_ACCEPTOR",
     RETURNED),
    ("power_up_stacking_no_bill", "ESCROW stack STACKING POWER_UP", doubt("power_up_no_trace")),
    ("power_up_at_vend_valid", "ESCROW stack VEND_VALID lost POWER_UP_BILL_IN_STACKER",
     CREDITED),
    ("power_up_after_the_ack", "ESCROW stack VEND_VALID POWER_UP", CREDITED),
    ("power_up_returning_bill_in_acceptor", ("ESCROW return RETURNING "
     "POWER_UP_BILL_IN_ACCEPTOR"), RETURNED),
    ("power_up_returning_no_bill", "ESCROW return RETURNING POWER_UP", RETURNED),
    ("power_up_returning_bill_in_stacker", ("ESCROW return RETURNING "
     "POWER_UP_BILL_IN_STACKER"), doubt("stacker_after_return")),
]


@pytest.mark.parametrize("steps,expected", [c[1:] for c in CYCLES], ids=[c[0] for c in CYCLES])
def test_each_cycle_ends_in_one_outcome_with_value_and_key(steps: str, expected: list) -> None:
    shell = configured().run(steps)
    assert shell.outcomes() == expected
    [(key, records)] = shell.emitted.items()
    assert key == "e1:1" and len(records) == 1           # repeats are the same record
    assert [e.key for e in shell.of(ev.NoteEscrowed)] == ["e1:1"]
    # Whatever happened, the acceptor takes the next note within a poll of IDLING.
    shell.status("IDLING")
    new = [e for e in shell.status("ESCROW:61") if isinstance(e, ev.NoteEscrowed)]
    assert [e.value for e in new] == [2000] and new[0].key != "e1:1"
    assert not shell.of(ev.NoteAtPowerUp)


def test_vend_valid_is_acked_once_durable_and_a_repeat_is_acked_never_credited() -> None:
    shell = configured().run("ESCROW stack STACKING refuse VEND_VALID")
    assert ACK not in shell.sent and shell.s.owed       # not durable: no ACK
    assert [type(e) for e in shell.status("VEND_VALID")] == [ev.NoteCredited]   # again
    assert shell.sent.count(ACK) == 1 and not shell.s.owed
    assert shell.status("VEND_VALID") == [] and shell.sent.count(ACK) == 2
    assert list(shell.durable) == ["e1:1"]


def test_no_reset_while_a_note_is_in_transit_only_after_a_power_up() -> None:
    shell = configured().run("ESCROW stack STACKING lost lost lost STACKING VEND_VALID")
    assert RESET not in shell.sent
    shell.run("STACKED IDLING POWER_UP")
    assert shell.sent.count(RESET) == 1 and shell.s.stage is Stage.IDLE


def test_a_fault_inhibits_and_its_clearing_restores_what_the_kiosk_asked() -> None:
    shell = configured()
    shell.apply(fsm.on_enable(shell.s, True))
    shell.run("IDLING STACKER_OPEN STACKER_OPEN")
    assert shell.of(ev.CashFault) == [ev.CashFault("stacker_open")]
    assert shell.sent[-1] == fsm.inhibit(True) and shell.s.stage is Stage.FAULT
    shell.apply(fsm.on_enable(shell.s, True))           # not while the fault lasts
    assert shell.sent[-1] == fsm.inhibit(True)
    shell.run("DISABLED")
    assert shell.sent[-1] == fsm.inhibit(False) and shell.s.fault is None
    assert [e.ok for e in shell.of(ev.DeviceStatus)] == [False, True]


def test_rejections_are_reported_once_each() -> None:
    shell = configured().run("ACCEPTING REJECTING REJECTING IDLING ACCEPTING REJECTING")
    assert len(shell.of(ev.NoteRejected)) == 2 and not shell.durable


def test_an_escrow_code_missing_from_the_table_is_returned_unnamed() -> None:
    shell = configured().run("ESCROW:70 RETURNING IDLING")
    assert shell.sent == [RETURN] and not shell.of(ev.NoteEscrowed) and not shell.durable


# ---------------------------------------------------------------------------- start-up
START = [
    # (first status, then, outcome of the pending note)
    ("VEND_VALID", "STACKED IDLING", CREDITED),
    ("POWER_UP_BILL_IN_STACKER", "", CREDITED),
    ("POWER_UP_BILL_IN_ACCEPTOR", "", RETURNED),
    ("ESCROW", "RETURNING IDLING", RETURNED),
    ("STACKING", "STACKING STACKING VEND_VALID STACKED IDLING", CREDITED),
    ("STACKING", "STACKING POWER_UP_BILL_IN_STACKER", CREDITED),
    ("IDLING", "", doubt("no_trace_at_start")),
    ("DISABLED", "", doubt("no_trace_at_start")),
    ("POWER_UP", "", doubt("no_trace_at_start")),
    ("ESCROW:61", "RETURNING IDLING", doubt("no_trace_at_start")),   # another note
    ("STACKER_JAM", "", doubt("stacker_jam")),
]


@pytest.mark.parametrize("first,then,expected", START,
                         ids=[f"{a}-{b}".replace(" ", "-") for a, b, _ in START])
def test_start_with_a_pending_note_settles_it_with_its_journaled_key(
        first: str, then: str, expected: list) -> None:
    shell = Shell().start(first, Pending("cafe:7", 5000))
    shell.run(then)
    assert shell.outcomes() == expected and list(shell.durable) == ["cafe:7"]
    assert shell.sent.count(RESET) == 1 and shell.s.stage is Stage.IDLE
    # RESET came only once the note was settled (on_reset refuses a note in transit), and
    # the next note is named in the new epoch.
    shell.status("IDLING")
    assert [e.key for e in shell.status("ESCROW")
            if isinstance(e, ev.NoteEscrowed)] == ["e1:1"]


def test_start_at_vend_valid_credits_the_pending_note_then_acks() -> None:
    shell = Shell(refuse=1).start("VEND_VALID", Pending("cafe:7", 5000))
    assert shell.sent == [] and shell.s.owed            # the journal was slow: no ACK
    shell.status("VEND_VALID")
    assert shell.sent == [ACK] and shell.durable["cafe:7"] == ev.NoteCredited(5000, "cafe:7")


@pytest.mark.parametrize("first,then,power_up,sent", [
    ("POWER_UP_BILL_IN_STACKER", "", [("stacker", 0)], [RESET]),
    ("POWER_UP_BILL_IN_ACCEPTOR", "", [("acceptor", 0)], [RESET]),
    ("ESCROW", "RETURNING IDLING", [("escrow", 5000)], [RETURN, RESET]),
    ("VEND_VALID", "STACKED IDLING", [("stacker", 0)], [ACK, RESET]),
    ("STACKING", "VEND_VALID IDLING", [("stacker", 0)], [ACK, RESET]),
    ("IDLING", "", [], [RESET]),
])
def test_start_with_nothing_pending_reports_a_note_for_reconciliation(
        first: str, then: str, power_up: list, sent: list) -> None:
    shell = Shell().start(first).run(then)
    assert [(e.where, e.value) for e in shell.of(ev.NoteAtPowerUp)] == power_up
    assert shell.sent == sent and not shell.durable


def test_illegal_transitions_raise() -> None:
    s = fsm.EscrowState(values=VALUES)
    with pytest.raises(IllegalTransition):
        fsm.on_status(s, report("IDLING"), 0.0)          # before on_start
    shell = configured().run("ESCROW")
    with pytest.raises(IllegalTransition):
        fsm.on_start(shell.s, None, report("IDLING"), 0.0)
    with pytest.raises(IllegalTransition):
        fsm.on_decision(shell.s, "keep", "e1:1", 0.0)
    with pytest.raises(IllegalTransition):
        fsm.on_committed(shell.s, "e1:1")                # nothing owed for it
    with pytest.raises(IllegalTransition):
        fsm.on_reset(shell.s, "e2", 0.0)                 # a note in escrow
    assert issubclass(IllegalTransition, fsm.EscrowError)


def test_commands_are_id003_frames() -> None:
    assert [x.command for x in (ACK, RESET, STACK, RETURN)] == [
        Command.ACK, Command.RESET, Command.STACK_1, Command.RETURN]
    assert fsm.inhibit(True).data == b"\x01" and fsm.inhibit(False).data == b"\x00"


# ---------------------------------------------------------------------------- property
STATUSES = [s.name for s in Status if s not in (Status.ESCROW,)] + [
    "ESCROW:61", "ESCROW:62", "ESCROW:63", "ESCROW:70"]
CYCLE = ["IDLING", "ESCROW:62", "STACKING", "VEND_VALID", "STACKED", "RETURNING"]
ACTIONS = st.one_of(
    st.sampled_from(STATUSES).map(lambda n: ("status", n)),
    st.sampled_from(CYCLE).map(lambda n: ("status", n)),      # the usual cycle, more often
    st.sampled_from(["stack", "return"]).flatmap(
        lambda d: st.sampled_from(["now", "stale"]).map(lambda w: (d, w))),
    st.just(("lost", "")), st.just(("refuse", "")),
    st.sampled_from([0.4, 1.2, 5.5, 10.5]).map(lambda t: ("wait", t)),
    st.booleans().map(lambda on: ("enable", on)),
)


@settings(max_examples=400, deadline=None)
@given(first=st.sampled_from(STATUSES), pending=st.booleans(),
       actions=st.lists(ACTIONS, max_size=60))
def test_random_status_sequences_keep_the_money_invariants(
        first: str, pending: bool, actions: list) -> None:
    shell = Shell().start(first, Pending("cafe:7", 5000) if pending else None)
    for what, arg in actions:
        match what:
            case "status":
                shell.status(arg)
            case "stack" | "return":
                shell.decide(what, None if arg == "now" else "e0:1")
            case "lost":
                shell.lost()
            case "refuse":
                shell.refuse += 1
            case "wait":
                shell.t += arg
            case "enable":
                shell.apply(fsm.on_enable(shell.s, arg))
    # The device idles (commits work again): every note has its one outcome, and the
    # acceptor takes the next note.
    shell.refuse = 0
    shell.status("IDLING")
    shell.status("IDLING")
    named = {e.key for e in shell.of(ev.NoteEscrowed)} | ({"cafe:7"} if pending else set())
    assert named == set(shell.durable), "a note left without an outcome"
    for key, records in shell.emitted.items():
        assert len(records) == 1, f"{key}: more than one outcome {records}"
    for key, seen in shell.new_credits:
        assert seen in EVIDENCE, f"{key} credited on {seen}, not VEND VALID / stacker"
    new = [e for e in shell.status("ESCROW:61") if isinstance(e, ev.NoteEscrowed)]
    assert len(new) == 1 and new[0].key not in named
