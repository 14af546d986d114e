"""The ID-003 driver against the byte-exact device simulator, through a real pty.

In every scenario the money the kiosk counted equals the device's own record of notes
that left the customer's hand (stacked, or jammed inside), and nothing is credited before
it is confirmed (journal first, then ACK). Every note ends in exactly one outcome under its
key (credited, returned or in doubt); the harness keeps the gate's one slot per key.
"""

from __future__ import annotations

import asyncio
import queue
import time
from typing import Any, cast

import pytest

from drivers import registry
from drivers.bill.acceptor import Id003Acceptor
from drivers.bill.id003 import Status
from drivers.bill.simulator import Id003Simulator
from kiosk import events as ev
from tests.events import EventQueue, until

NOTES = (2000, 5000, 10000, 20000, 50000, 100000)


class Harness(EventQueue):
    """The driver with a kiosk stand-in: events queued; commits journaled in a list."""

    def __init__(self, driver: str = "id003-sim", **opts: Any) -> None:
        super().__init__()
        opts = {"poll_ms": 60, "denominations": NOTES, **opts}
        self.acc = registry.create("cash", driver, **opts)   # "id003-sim": on its simulator
        # "id003-sim": its own simulator; "id003": the test sets the one it drives
        self.sim = cast(Id003Simulator, getattr(self.acc, "simulator", None))
        self.journal: list[tuple[int, int]] = []     # (value, device ACKs at commit time)
        self.outcomes: dict[str, ev.Record] = {}     # the gate's slot: first outcome per key
        self.contradictions: list[tuple[ev.Record, ev.Record]] = []
        self.attempts = 0                            # commit calls
        self.refuse = 0                              # commits to refuse (journal too slow)
        self.acc.commit = self._commit

    def _commit(self, e: ev.Record) -> bool:
        self.attempts += 1
        if self.refuse:
            self.refuse -= 1
            return False
        first = self.outcomes.setdefault(e.key, e)
        if first is not e:                           # a repeat: durable already, no-op
            if first != e:
                self.contradictions.append((first, e))
            return True
        if isinstance(e, ev.NoteCredited):
            # The ACK must not have reached the device when the credit is journaled.
            self.journal.append((e.value, self.sim.record.vend_valid_acked))
        self.put(e)
        return True

    @property
    def credited(self) -> int:
        return sum(v for v, _ in self.journal)

    @property
    def in_doubt(self) -> int:
        return sum(e.value for e in self.outcomes.values() if isinstance(e, ev.NoteInDoubt))

    async def start(self) -> "Harness":
        await self.acc.start(self.put)
        await self.expect(ev.DeviceStatus, ok=True)
        return self

    async def enabled(self) -> None:
        """enable() is sent at the next poll: wait until the device takes notes."""
        self.acc.enable()
        await self.ready()

    async def ready(self) -> None:
        """A customer pushes the next note in when the acceptor is idle again."""
        deadline = time.monotonic() + 3
        while self.sim.status() is not Status.IDLING:
            assert time.monotonic() < deadline, f"still {self.sim.status().name}"
            await asyncio.sleep(0.02)

    async def escrowed(self, value: int) -> str:
        """A customer's note, in escrow: its key."""
        await self.ready()
        assert self.sim.insert(value)
        return (await self.expect(ev.NoteEscrowed, value=value)).key

    async def pay(self, value: int) -> str:
        key = await self.escrowed(value)
        self.acc.stack(value, key)
        await self.expect(ev.NoteCredited, value=value, key=key, timeout=10)
        return key


@pytest.fixture
async def h():
    harness = await Harness().start()
    await harness.enabled()
    yield harness
    await harness.acc.stop()
    assert not harness.contradictions


async def test_notes_are_credited_at_vend_valid_after_the_journal_then_acked(h):
    for v in (2000, 5000, 100000):
        await h.pay(v)
    await asyncio.sleep(0.3)
    assert h.sim.record.stacked == [2000, 5000, 100000]
    assert h.credited == sum(h.sim.record.stacked)
    assert [acks for _, acks in h.journal] == [0, 1, 2]      # journaled before each ACK
    assert h.sim.record.vend_valid_acked == 3
    assert not any(isinstance(e, ev.NoteCredited) for e in h.seen[:1])


async def test_a_note_the_engine_returns_goes_back_and_is_never_credited(h):
    assert h.sim.insert(50000)
    await h.expect(ev.NoteEscrowed, value=50000)
    h.acc.return_note(50000)
    await h.expect(ev.NoteReturned, value=50000)
    assert h.sim.record.returned == [50000] and h.sim.record.stacked == []
    assert h.credited == 0


async def test_counterfeit_is_rejected_with_its_reason(h):
    h.sim.counterfeit(0x72)
    h.sim.insert(2000)
    e = await h.expect(ev.NoteRejected)
    assert "magnetic" in e.reason or e.reason.startswith("0x72") or e.reason
    assert h.credited == 0 and h.sim.record.stacked == []
    await h.pay(2000)                                 # the next good note goes through


async def test_a_note_left_in_escrow_is_returned_after_the_escrow_timeout():
    h = await Harness(escrow_timeout_s=0.5).start()
    try:
        await h.enabled()
        h.sim.insert(2000)
        await h.expect(ev.NoteEscrowed)               # the engine never decides
        await h.expect(ev.NoteReturned, value=2000, timeout=4)
        assert h.sim.record.returned == [2000] and h.credited == 0
    finally:
        await h.acc.stop()


@pytest.mark.parametrize("where,status", [("stacker", "stacker_jam"),
                                          ("acceptor", "acceptor_jam")])
async def test_jam_puts_the_note_in_doubt_and_once_cleared_the_next_note_is_taken(
        h, where, status):
    await h.pay(2000)
    h.sim.jam_after_escrow(where)
    key = await h.escrowed(5000)
    h.acc.stack(5000, key)
    doubt = await h.expect(ev.NoteInDoubt, key=key)
    assert (doubt.value, doubt.reason) == (5000, status)
    fault = await h.expect(ev.CashFault)
    assert fault.reason == status and fault.in_doubt == 0    # the note is in NoteInDoubt
    await h.expect(ev.DeviceStatus, ok=False)
    await until(lambda: h.sim.device.inhibited, "the acceptor inhibited", 2)
    h.sim.clear_fault()                                # the technician clears it
    await h.expect(ev.DeviceStatus, ok=True)
    await h.ready()                                    # the kiosk's "enabled" is restored
    await h.pay(10000)                                 # and the next note is not ignored
    # The kiosk's count (credited + in doubt) equals what left customers' hands: a note
    # jammed at the stacker ends in the box; one jammed in the acceptor's path is taken out
    # by the technician clearing the jam, and counted with the box.
    assert h.sim.record.jammed == [5000]
    in_path = 0 if where == "stacker" else sum(h.sim.record.jammed)
    assert h.credited + h.in_doubt == sum(h.sim.record.stacked) + in_path == 17000


@pytest.mark.parametrize("fault,reason", [("stacker_full", "stacker_full"),
                                          ("stacker_open", "stacker_open"),
                                          ("cheat", "cheated"), ("failure", "failure")])
async def test_faults_put_cash_out_of_service_until_cleared(h, fault, reason):
    getattr(h.sim, fault)()
    e = await h.expect(ev.CashFault)
    assert e.reason == reason and e.in_doubt == 0
    await h.expect(ev.DeviceStatus, ok=False)
    h.sim.clear_fault()
    await h.expect(ev.DeviceStatus, ok=True)
    await h.enabled()
    await h.pay(2000)


async def test_a_stuck_transient_state_is_a_fault():
    h = await Harness(transient_timeout_s=0.6).start()
    try:
        await h.enabled()
        h.sim.insert(2000)
        await h.expect(ev.NoteEscrowed)
        h.sim.stuck(Status.STACKING, 3.0)
        h.acc.stack(2000)
        doubt = await h.expect(ev.NoteInDoubt, timeout=4)
        assert (doubt.value, doubt.reason) == (2000, "stuck_stacking")
        e = await h.expect(ev.CashFault, timeout=4)
        assert e.reason == "stuck_stacking"
        # The device finishes after all: its VEND VALID is ACKed, never credited on top.
        await h.expect(ev.DeviceStatus, ok=True, timeout=6)
        assert h.sim.record.vend_valid_acked == 1 and h.credited == 0
    finally:
        await h.acc.stop()


async def test_power_up_with_a_bill_in_the_stacker_is_journaled_for_reconciliation():
    h = Harness()
    h.sim.power_up_with_bill("stacker", 5000)
    await h.acc.start(h.put)
    try:
        e = await h.expect(ev.NoteAtPowerUp)
        assert e.where == "stacker"
        await h.expect(ev.DeviceStatus, ok=True)
        assert 5000 in h.sim.record.stacked and h.credited == 0
    finally:
        await h.acc.stop()


async def test_unplugged_while_idle_reconnects_by_itself(h):
    h.sim.unplug(0.8)
    lost = await h.expect(ev.DeviceStatus, ok=False)
    assert "unavailable" in lost.detail or "answer" in lost.detail or "restarted" in lost.detail
    assert h.sim.wait_plugged(5)
    await h.expect(ev.DeviceStatus, ok=True, timeout=8)
    await h.enabled()
    await h.pay(2000)
    assert h.credited == sum(h.sim.record.stacked)


async def test_unplugged_while_stacking_the_note_is_not_lost(h):
    h.sim.insert(10000)
    await h.expect(ev.NoteEscrowed, value=10000)
    h.sim.stuck(Status.STACKING, 1.0)
    h.acc.stack(10000)
    await asyncio.sleep(0.2)                          # STACK sent, note moving
    h.sim.unplug(0.5)
    await h.expect(ev.NoteCredited, value=10000, timeout=10)
    await asyncio.sleep(0.3)
    assert h.credited == sum(h.sim.record.stacked) == 10000


@pytest.mark.parametrize("fault", ["garbage", "bad_crc", "slow", "slow_400ms"])
async def test_line_noise_and_slow_replies_lose_nothing(h, fault):
    if fault == "garbage":
        h.sim.garbage(7)
    elif fault == "bad_crc":
        h.sim.bad_crc_next()
    else:
        h.sim.slow(0.4 if fault == "slow_400ms" else 0.12)
    await h.pay(2000)
    h.sim.slow(0)
    await h.pay(5000)
    await asyncio.sleep(0.3)
    assert h.credited == sum(h.sim.record.stacked) == 7000
    assert len(h.journal) == 2                        # a repeated VEND VALID is not credited


async def test_currency_table_that_lacks_a_configured_note_keeps_cash_out_of_service():
    from drivers.bill.simulator import Id003Simulator
    sim = Id003Simulator().start()                     # a PHP acceptor: no 75-peso note
    acc = Id003Acceptor(port=sim.link, poll_ms=50, denominations=(2000, 5000, 7500))
    events: queue.Queue[ev.Record] = queue.Queue()
    await acc.start(events.put)
    try:
        e = await asyncio.to_thread(events.get, True, 5)
        assert isinstance(e, ev.DeviceStatus) and not e.ok
        assert "currency table lacks [7500]" in e.detail
        assert sim.device.inhibited
    finally:
        await acc.stop()
        sim.stop()


async def test_no_port_is_reported_and_retried(tmp_path):
    acc = Id003Acceptor(port=str(tmp_path / "no-such-port"), poll_ms=50, denominations=NOTES)
    events: queue.Queue[ev.Record] = queue.Queue()
    await acc.start(events.put)
    try:
        e = await asyncio.to_thread(events.get, True, 5)
        assert isinstance(e, ev.DeviceStatus) and not e.ok and "unavailable" in e.detail
    finally:
        await acc.stop()


async def test_kiosk_restarted_at_vend_valid_journals_the_note_and_finishes_it():
    """The kiosk process died after the note passed the stacker and before its ACK: the
    acceptor still says VEND VALID when a new driver starts."""
    from drivers.bill.simulator import Id003Simulator, default_codes
    sim = Id003Simulator(default_codes(NOTES)).start()
    first = Id003Acceptor(port=sim.link, poll_ms=60, denominations=NOTES)
    first.commit = lambda e: False                   # the crash: never journaled, never ACKed
    q = EventQueue()
    await first.start(q.put)
    await q.expect(ev.DeviceStatus, ok=True)
    first.enable()
    deadline = time.monotonic() + 3
    while sim.status() is not Status.IDLING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    sim.insert(5000)
    await q.expect(ev.NoteEscrowed, value=5000)
    first.stack(5000)
    while sim.status() is not Status.VEND_VALID:
        await asyncio.sleep(0.02)
    await first.stop()                                # the process is gone
    second = Harness("id003", port=sim.link)
    second.sim = sim
    await second.acc.start(second.put)
    try:
        e = await second.expect(ev.NoteAtPowerUp)
        assert (e.where, e.value) == ("stacker", 0)      # VEND VALID carries no value
        await second.expect(ev.DeviceStatus, ok=True)
        assert sim.record.stacked == [5000] and sim.record.vend_valid_acked == 1
        assert second.credited == 0                  # not credited blindly: reconciled
    finally:
        await second.acc.stop()
        sim.stop()


# ---------------------------------------------------------------- line faults mid-note
@pytest.mark.parametrize("at", [Status.STACKING, Status.VEND_VALID], ids=lambda s: s.name)
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["drop", "corrupt"])
async def test_lost_or_corrupt_replies_mid_note_do_not_reset_and_the_cycle_goes_on(
        h, kind, n, at):
    resets = h.sim.record.resets
    getattr(h.sim, f"{kind}_replies")(n, when=at)      # from the first reply reporting `at`
    key = await h.pay(5000)
    await h.pay(2000)                                  # and the acceptor takes the next one
    await asyncio.sleep(0.2)
    assert h.sim.record.resets == resets               # never RESET with a note in transit
    assert h.sim.record.stacked == [5000, 2000] and h.credited == 7000
    assert len(h.journal) == 2 and isinstance(h.outcomes[key], ev.NoteCredited)
    assert h.sim.record.vend_valid_acked == 2


@pytest.mark.parametrize("at,outcome", [
    (Status.ESCROW, ev.NoteReturned),          # power-up with the bill in the acceptor
    (Status.STACKING, ev.NoteCredited),        # power-up with the bill in the stacker
    (Status.VEND_VALID, ev.NoteCredited),      # credited at VEND VALID; the ACK was lost
    (Status.STACKED, ev.NoteCredited),         # after the ACK: nothing more to say
    (Status.RETURNING, ev.NoteReturned),
], ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
async def test_unplugged_for_a_second_at_each_stage_the_note_ends_once(h, at, outcome):
    h.sim.unplug_at(at, 1.0)
    key = await h.escrowed(10000)
    if at is Status.RETURNING:
        h.acc.return_note(10000, key)
    elif at is not Status.ESCROW:
        h.acc.stack(10000, key)
    e = await h.expect(outcome, key=key, timeout=10)
    assert e.value == 10000
    await h.expect(ev.DeviceStatus, ok=True, timeout=10)   # reset after its power-up
    assert [x.ok for x in h.seen if isinstance(x, ev.DeviceStatus)] == [True, False, True]
    await h.pay(2000)                                      # notes are taken again
    await asyncio.sleep(0.2)
    assert list(h.outcomes) == [key, h.seen[-1].key] and not h.contradictions
    if outcome is ev.NoteReturned:
        assert h.sim.record.returned == [10000] and h.sim.record.stacked == [2000]
    else:
        assert h.sim.record.stacked == [10000, 2000]
    assert h.credited == sum(h.sim.record.stacked)
    assert not any(isinstance(x, ev.NoteAtPowerUp) for x in h.seen)


async def test_a_credit_the_journal_cannot_take_yet_is_not_acked_until_it_is(h):
    h.refuse = 3                                       # the journal is slow: 3 refusals
    key = await h.pay(2000)
    await asyncio.sleep(0.3)
    assert h.attempts == 4                             # tried again at each VEND VALID
    assert h.journal == [(2000, 0)]                    # durable before the one ACK
    assert h.sim.record.vend_valid_acked == 1 and h.sim.record.stacked == [2000]
    assert isinstance(h.outcomes[key], ev.NoteCredited)


async def test_a_stale_decision_and_a_late_stack_after_the_escrow_timeout_are_ignored():
    h = await Harness(escrow_timeout_s=0.4).start()
    try:
        await h.enabled()
        key = await h.escrowed(5000)
        h.acc.stack(5000, "0000:99")                   # not this note: ignored
        await h.expect(ev.NoteReturned, key=key, timeout=4)
        h.acc.stack(5000, key)                         # too late: it went back
        await asyncio.sleep(0.3)
        assert h.sim.record.returned == [5000] and h.sim.record.stacked == []
        await h.pay(2000)
    finally:
        await h.acc.stop()
    assert not h.contradictions


# ---------------------------------------------------------------- the kiosk restarted
async def _killed_mid_note(sim: Any, at: Status) -> str:
    """A first driver escrows a 50-peso note and is stopped (the kiosk killed with -9) with
    the note at `at`: ESCROW (STACK journaled, never sent) or VEND_VALID (never ACKed)."""
    first = Id003Acceptor(port=sim.link, poll_ms=60, denominations=NOTES)
    first.commit = lambda e: False                   # the journal never took the credit
    q = EventQueue()
    await first.start(q.put)
    await q.expect(ev.DeviceStatus, ok=True)
    first.enable()
    deadline = time.monotonic() + 3
    while not sim.insert(5000):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    key = (await q.expect(ev.NoteEscrowed, value=5000)).key
    if at is not Status.ESCROW:
        first.stack(5000, key)
    while sim.status() is not at:
        assert time.monotonic() < deadline + 3
        await asyncio.sleep(0.02)
    await first.stop()
    return key


@pytest.mark.parametrize("at,outcome", [
    ("vend_valid", ev.NoteCredited), ("escrow", ev.NoteReturned),
    ("power_up_stacker", ev.NoteCredited), ("power_up_acceptor", ev.NoteReturned),
    ("power_up", ev.NoteInDoubt)])
async def test_restart_settles_the_journals_pending_note_with_its_key(at, outcome):
    from drivers.bill.simulator import Id003Simulator, default_codes
    from kiosk.gate import PendingNote
    sim = Id003Simulator(default_codes(NOTES)).start()
    try:
        if at in ("vend_valid", "escrow"):
            key = await _killed_mid_note(sim, Status[at.upper()])
        else:
            key = "0badcafe:3"
            if at != "power_up":
                sim.power_up_with_bill(at.removeprefix("power_up_"), 5000)
        second = Harness("id003", port=sim.link)
        second.sim = sim
        second.acc.pending_note = lambda: PendingNote(key, 5000, "R-1")
        await second.acc.start(second.put)
        try:
            e = await second.expect(outcome, key=key)
            assert e.value == 5000
            if outcome is ev.NoteInDoubt:
                assert e.reason == "no_trace_at_start"
            await second.expect(ev.DeviceStatus, ok=True)
            await second.enabled()
            await second.pay(2000)                       # and it takes notes again
            await asyncio.sleep(0.2)
            assert not any(isinstance(x, ev.NoteAtPowerUp) for x in second.seen)
            credited = 5000 if outcome is ev.NoteCredited else 0
            assert second.credited == credited + 2000 == sum(sim.record.stacked)
            if at == "vend_valid":
                assert second.journal[0] == (5000, 0)    # journaled, then the one ACK
                assert sim.record.vend_valid_acked == 2
            if outcome is ev.NoteReturned:
                assert sim.record.returned == [5000]
            assert not second.contradictions
        finally:
            await second.acc.stop()
    finally:
        sim.stop()
