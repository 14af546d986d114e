"""The ID-003 driver when the acceptor's answers come late: up to 400 ms, fixed or at random.

Real acceptors, and the USB-serial adapters between them and the kiosk, sometimes answer a
poll 100-400 ms late. The simulator has two kinds of late answer: `latency` holds every reply
back (the device acts on the frame at once, replies keep their order), `slow` makes the
device itself late to each frame (frames queue, the host's unanswered ACK delays the next
reply too). Through the real driver on the real pty, with its default reply timeout: no
spurious timeout or RESET, every note the device stacked is credited once, at its value, a
returned note is never credited, and the device gets one STACK and one ACK per note.

And when the driver does give up on a try (a reply timeout shorter than the line's latency),
the answer that comes afterwards is taken off the line, never read as the answer to the
next command: a VEND VALID read a poll late would be ACKed a second time.
"""

from __future__ import annotations

import asyncio

import pytest

from drivers.bill.id003 import Command
from kiosk import events as ev
from tests.bill.test_acceptor import Harness

PAID = (2000, 5000, 10000, 20000)


async def _session(h: Harness) -> tuple[list[str], str]:
    """Four notes paid, a fifth returned by the kiosk: the keys paid, the key returned."""
    await h.enabled()
    keys = [await h.pay(value) for value in PAID[:2]]
    returned = await h.escrowed(50000)
    h.acc.return_note(50000, returned)
    await h.expect(ev.NoteReturned, key=returned, timeout=15)
    keys += [await h.pay(value) for value in PAID[2:]]
    await asyncio.sleep(2.0)                      # the last ACK and STACKED, late too
    return keys, returned


def _assert_each_note_once(h: Harness, keys: list[str], returned: str) -> None:
    record = h.sim.record
    # The device's ledger is the driver's credits: each note once, in order, its value.
    assert record.stacked == list(PAID)
    assert [v for v, _ in h.journal] == list(PAID)
    assert [type(h.outcomes[k]) for k in keys] == [ev.NoteCredited] * len(PAID)
    assert record.vend_valid_acked == len(PAID)
    assert record.returned == [50000] and isinstance(h.outcomes[returned], ev.NoteReturned)
    assert len(h.outcomes) == len(PAID) + 1 and not h.contradictions
    sent = h.sim.sent_on(1)                       # one line throughout: never reopened
    assert sent.count(Command.ACK) == len(PAID)   # one ACK per VEND VALID, none read late
    # RESET only at the start, before the acceptor was configured (a try given up and
    # sent again reaches the device twice).
    configured = sent.index(Command.ENABLE_DENOMINATIONS)
    assert record.resets == sent.count(Command.RESET) == sent[:configured].count(Command.RESET)


@pytest.mark.parametrize("kind,seconds,jitter", [
    ("latency", 0.4, 0.0), ("latency", 0.0, 0.4), ("slow", 0.4, 0.0), ("slow", 0.0, 0.4),
], ids=["reply_400ms", "reply_0-400ms", "device_400ms", "device_0-400ms"])
async def test_answers_up_to_400ms_late_lose_nothing_and_count_nothing_twice(
        kind, seconds, jitter):
    h = Harness(poll_ms=150)                      # the kiosk's poll (config/kiosk.toml)
    getattr(h.sim, kind)(seconds, jitter)         # from the first frame: start-up included
    await h.start()
    try:
        keys, returned = await _session(h)
        _assert_each_note_once(h, keys, returned)
        assert [e.ok for e in h.seen if isinstance(e, ev.DeviceStatus)] == [True]
        line = h.acc.line
        assert (line.timeouts, line.stale, line.misfits) == (0, 0, 0)
        sent = h.sim.sent_on(1)                   # nothing sent twice: no try given up
        assert h.sim.record.resets == 1
        assert (sent.count(Command.STACK_1), sent.count(Command.RETURN)) == (len(PAID), 1)
    finally:
        await h.acc.stop()


async def test_an_answer_that_comes_after_the_driver_gave_up_is_not_the_next_ones():
    # 300 ms of patience for 400 ms answers: every first try is given up, its answer comes
    # while the second try waits (and is taken: same command), the second try's answer
    # comes after the exchange is over.
    h = Harness(poll_ms=150, reply_timeout_ms=300)
    h.sim.latency(0.4)
    await h.acc.start(h.put)
    try:
        await h.expect(ev.DeviceStatus, ok=True, timeout=20)   # 0.7 s a command: slow
        keys, returned = await _session(h)
        _assert_each_note_once(h, keys, returned)
        line = h.acc.line
        assert line.timeouts > 0 and line.stale > 0      # it did give up, answers did come
        assert line.misfits == 0                         # none was read for another command
    finally:
        await h.acc.stop()
