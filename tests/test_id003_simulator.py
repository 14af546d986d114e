"""The ID-003 simulator: spoken to through a REAL pty with pyserial, using only id003.encode
and id003.Decoder, as the kiosk's driver does; plus the pure device, fuzzed."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.bill import id003
from drivers.bill.device import Id003Device, Timings
from drivers.bill.id003 import Command, Decoder, Frame, Status, encode, parse_status
from drivers.bill.simulator import PHP_NOTES, Id003Simulator, default_codes


class Host:
    """The kiosk side of the line: 9600 8E1, timeout 0.2, one frame per exchange."""

    def __init__(self, link: str, parity: str = serial.PARITY_EVEN) -> None:
        # A pty reopened under a recycled /dev/pts/N may refuse even parity again (EINVAL):
        # a host opening a replugged line takes parity N, as the driver does on a pty.
        self.port = serial.Serial(link, 9600, parity=parity, timeout=0.2)
        self.decoder = Decoder()

    def send(self, cmd: int, data: bytes = b"") -> None:
        self.port.write(encode(cmd, data))

    def answer(self, timeout: float = 0.5) -> Frame | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.port.read(1)
            if chunk:
                chunk += self.port.read(self.port.in_waiting)
            frames = self.decoder.feed(chunk)
            if frames:
                assert len(frames) == 1, frames
                return frames[0]
        return None

    def x(self, cmd: int, data: bytes = b"", timeout: float = 0.5) -> Frame | None:
        self.send(cmd, data)
        return self.answer(timeout)

    def status(self) -> id003.StatusReport:
        frame = self.x(Command.STATUS_REQUEST)
        assert frame is not None, "no answer to STATUS_REQUEST"
        return parse_status(frame)

    def wait_for(self, status: Status, timeout: float = 2.0) -> list[Status]:
        """Poll every 20 ms until `status`; the distinct statuses seen on the way."""
        seen: list[Status] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.status().status
            if not seen or seen[-1] is not now:
                seen.append(now)
            if now is status:
                return seen
            time.sleep(0.02)
        raise AssertionError(f"no {status.name} within {timeout} s, saw {seen}")

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def sim() -> Iterator[Id003Simulator]:
    # The brief's timings, but a quicker INITIALIZE: every test resets the device once.
    simulator = Id003Simulator(PHP_NOTES, timings=Timings(initialize=0.1)).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def host(sim: Id003Simulator) -> Iterator[Host]:
    h = Host(sim.link)
    yield h
    h.close()


@pytest.fixture
def ready(sim: Id003Simulator, host: Host) -> Host:
    """Reset and enabled: IDLING."""
    assert host.x(Command.RESET) == Frame(id003.ACK)
    host.wait_for(Status.DISABLED)
    assert host.x(Command.INHIBIT, b"\x00") == Frame(Command.INHIBIT, b"\x00")
    assert host.status().status is Status.IDLING
    return host


def escrow(sim: Id003Simulator, host: Host, value: int) -> int:
    assert sim.insert(value)
    host.wait_for(Status.ESCROW)
    report = host.status()
    assert report.denomination is not None
    return report.denomination


# ---------------------------------------------------------------------------- the cycle
def test_power_up_reset_enable_and_stack(sim: Id003Simulator, host: Host) -> None:
    assert os.path.islink(sim.link) and os.readlink(sim.link).startswith("/dev/pts/")
    assert host.status().status is Status.POWER_UP
    assert host.x(Command.RESET) == Frame(id003.ACK)
    assert host.wait_for(Status.DISABLED) == [Status.INITIALIZE, Status.DISABLED]

    version = host.x(Command.GET_VERSION)
    assert version is not None and version.cmd == Command.GET_VERSION
    assert version.data.decode("ascii").startswith("i(PHL)")
    currency = host.x(Command.GET_CURRENCY)
    assert currency is not None
    table = id003.parse_currency_table(currency.data)
    assert {code: d.minor(2) for code, d in table.items()} == PHP_NOTES
    mask = id003.denomination_mask(table)
    assert host.x(Command.ENABLE_DENOMINATIONS, mask) == Frame(Command.ENABLE_DENOMINATIONS, mask)
    assert host.x(Command.INHIBIT, b"\x00") == Frame(Command.INHIBIT, b"\x00")
    assert host.x(Command.GET_INHIBIT) == Frame(Command.GET_INHIBIT, b"\x00")
    assert host.status().status is Status.IDLING

    assert sim.insert(2000)
    assert host.wait_for(Status.ESCROW) == [Status.ACCEPTING, Status.ESCROW]
    assert host.status().denomination == 0x61
    assert sim.record.stacked == []                      # escrow is not money yet
    assert host.x(Command.STACK_1) == Frame(id003.ACK)
    assert host.wait_for(Status.VEND_VALID) == [Status.STACKING, Status.VEND_VALID]
    assert sim.record.stacked == [2000]                  # in the box from VEND_VALID on
    for _ in range(3):                                   # repeated until the host's ACK
        assert host.status().status is Status.VEND_VALID
    assert host.x(Command.ACK, timeout=0.25) is None      # the host's ACK gets no answer
    assert host.status().status is Status.STACKED        # once
    assert host.status().status is Status.IDLING
    assert sim.record.stacked == [2000]
    assert sim.record.vend_valid_acked == 1
    assert sim.record.returned == [] and sim.record.rejected == []


def test_return_from_escrow(sim: Id003Simulator, ready: Host) -> None:
    assert escrow(sim, ready, 5000) == 0x62
    assert ready.x(Command.RETURN) == Frame(id003.ACK)
    assert ready.wait_for(Status.IDLING) == [Status.RETURNING, Status.IDLING]
    assert sim.record.returned == [5000]
    assert sim.record.stacked == [] and sim.record.vend_valid_acked == 0


def test_inhibit_during_escrow_then_stack_ends_disabled(sim: Id003Simulator,
                                                        ready: Host) -> None:
    escrow(sim, ready, 10000)
    assert ready.x(Command.INHIBIT, b"\x01") == Frame(Command.INHIBIT, b"\x01")
    assert ready.x(Command.STACK_2) == Frame(id003.ACK)
    ready.wait_for(Status.VEND_VALID)
    ready.send(Command.ACK)
    assert ready.wait_for(Status.DISABLED) == [Status.STACKED, Status.DISABLED]
    assert not sim.insert(2000)                          # the slot is closed
    assert sim.record.stacked == [10000]


def test_counterfeit_is_rejected(sim: Id003Simulator, ready: Host) -> None:
    sim.counterfeit(0x72)
    assert sim.insert(2000)
    assert ready.wait_for(Status.REJECTING)[-1] is Status.REJECTING
    report = ready.status()
    assert (report.reject_code, report.reject_reason) == (0x72, "magnetic_pattern")
    ready.wait_for(Status.IDLING)
    assert sim.record.rejected == ["magnetic_pattern"]
    assert sim.record.stacked == [] and sim.record.returned == []


def test_unknown_note_is_rejected(sim: Id003Simulator, ready: Host) -> None:
    assert sim.insert(12300)
    ready.wait_for(Status.REJECTING)
    assert ready.status().reject_reason == "discrimination"
    ready.wait_for(Status.IDLING)


def test_inhibited_denomination_is_rejected(sim: Id003Simulator, ready: Host) -> None:
    mask = id003.denomination_mask([0x61])
    assert ready.x(Command.ENABLE_DENOMINATIONS, mask) == Frame(Command.ENABLE_DENOMINATIONS, mask)
    assert ready.x(Command.GET_ENABLE_DENOMINATIONS) == Frame(Command.GET_ENABLE_DENOMINATIONS,
                                                              mask)
    assert sim.insert(5000)
    ready.wait_for(Status.REJECTING)
    assert ready.status().reject_code == 0x79
    ready.wait_for(Status.IDLING)
    assert sim.record.rejected == ["inhibit"]
    assert escrow(sim, ready, 2000) == 0x61


def test_disabled_device_does_not_take_notes(sim: Id003Simulator, ready: Host) -> None:
    assert ready.x(Command.INHIBIT, b"\x01") == Frame(Command.INHIBIT, b"\x01")
    assert ready.status().status is Status.DISABLED
    assert not sim.insert(2000)


def test_commands_out_of_place_are_invalid(ready: Host) -> None:
    assert ready.x(Command.STACK_1) == Frame(Status.INVALID_COMMAND)
    assert ready.x(0x99) == Frame(Status.INVALID_COMMAND)
    assert ready.x(Command.INHIBIT, b"\x00\x00") == Frame(Status.INVALID_COMMAND)
    assert ready.x(Command.STATUS_REQUEST, b"\x00") == Frame(Status.INVALID_COMMAND)
    assert ready.status().status is Status.IDLING


# ---------------------------------------------------------------------------- faults
@pytest.mark.parametrize("fault,status,data", [
    ("stacker_full", Status.STACKER_FULL, b""), ("stacker_open", Status.STACKER_OPEN, b""),
    ("cheat", Status.CHEATED, b""), ("failure", Status.FAILURE, b"\xa2"),
])
def test_faults_hold_until_cleared(sim: Id003Simulator, ready: Host, fault: str,
                                   status: Status, data: bytes) -> None:
    getattr(sim, fault)()
    for _ in range(2):
        frame = ready.x(Command.STATUS_REQUEST)
        assert frame == Frame(status, data)
    assert not sim.insert(2000)
    assert ready.x(Command.RESET) == Frame(id003.ACK)        # a reset does not fix hardware
    assert ready.wait_for(status) == [Status.INITIALIZE, status]
    sim.clear_fault()
    ready.x(Command.INHIBIT, b"\x00")
    assert ready.status().status is Status.IDLING


def test_fault_during_escrow_returns_the_note(sim: Id003Simulator, ready: Host) -> None:
    escrow(sim, ready, 20000)
    sim.stacker_open()
    assert ready.status().status is Status.STACKER_OPEN
    assert sim.record.returned == [20000]


def test_jam_after_escrow_in_the_stacker(sim: Id003Simulator, ready: Host) -> None:
    sim.jam_after_escrow()
    escrow(sim, ready, 2000)
    assert ready.x(Command.STACK_1) == Frame(id003.ACK)
    assert ready.wait_for(Status.STACKER_JAM) == [Status.STACKING, Status.STACKER_JAM]
    for _ in range(3):
        assert ready.status().status is Status.STACKER_JAM
    assert sim.record.jammed == [2000]
    assert sim.record.stacked == [] and sim.record.vend_valid_acked == 0
    sim.clear_fault()                                       # the note is found in the box
    assert ready.status().status is Status.IDLING
    assert sim.record.stacked == [2000]


def test_jam_in_the_acceptor_leaves_the_box_alone(sim: Id003Simulator, ready: Host) -> None:
    sim.jam_after_escrow("acceptor")
    escrow(sim, ready, 2000)
    ready.x(Command.STACK_1)
    ready.wait_for(Status.ACCEPTOR_JAM)
    sim.clear_fault()
    assert ready.status().status is Status.IDLING
    assert sim.record.stacked == [] and sim.record.jammed == [2000]


def test_power_up_with_bill_in_stacker(sim: Id003Simulator, ready: Host) -> None:
    escrow(sim, ready, 5000)
    ready.x(Command.STACK_1)
    assert ready.status().status is Status.STACKING
    sim.power_up_with_bill("stacker")                       # power lost while stacking
    assert ready.status().status is Status.POWER_UP_BILL_IN_STACKER
    assert sim.record.stacked == [5000]                     # counted once, never credited
    assert ready.x(Command.RESET) == Frame(id003.ACK)
    ready.wait_for(Status.DISABLED)
    assert sim.record.stacked == [5000] and sim.record.returned == []
    assert sim.record.vend_valid_acked == 0


def test_power_up_with_bill_in_acceptor_is_returned_on_reset(sim: Id003Simulator,
                                                              host: Host) -> None:
    sim.power_up_with_bill("acceptor", 10000)
    assert host.status().status is Status.POWER_UP_BILL_IN_ACCEPTOR
    host.x(Command.RESET)
    host.wait_for(Status.DISABLED)
    assert sim.record.returned == [10000] and sim.record.stacked == []


def test_hold_escrow_keeps_the_note_in_escrow_after_stack(sim: Id003Simulator,
                                                          ready: Host) -> None:
    sim.hold_escrow(0.4)
    escrow(sim, ready, 2000)
    started = time.monotonic()
    assert ready.x(Command.STACK_1) == Frame(id003.ACK)
    assert ready.status().status is Status.ESCROW
    assert ready.x(Command.STACK_1) == Frame(id003.ACK)      # a repeat changes nothing
    ready.wait_for(Status.STACKING)
    assert time.monotonic() - started >= 0.35
    ready.wait_for(Status.VEND_VALID)
    ready.send(Command.ACK)
    ready.wait_for(Status.IDLING)
    assert sim.record.stacked == [2000] and sim.record.vend_valid_acked == 1


def test_stuck_transient_status(sim: Id003Simulator, ready: Host) -> None:
    sim.stuck(Status.STACKING, 0.5)
    escrow(sim, ready, 2000)
    ready.x(Command.STACK_1)
    started = time.monotonic()
    assert ready.wait_for(Status.VEND_VALID, timeout=2) == [Status.STACKING, Status.VEND_VALID]
    assert time.monotonic() - started >= 0.45


# ---------------------------------------------------------------------------- the line
def test_unplug_and_replug(sim: Id003Simulator, ready: Host) -> None:
    old_pty = sim.pty_path
    sim.unplug(0.5)
    assert not os.path.lexists(sim.link)
    with pytest.raises(serial.SerialException, match="write failed"):
        ready.send(Command.STATUS_REQUEST)
    with pytest.raises(serial.SerialException, match="returned no data"):
        ready.port.read(1)
    with pytest.raises(OSError):
        ready.port.in_waiting                              # a bare OSError(EIO)
    with pytest.raises(serial.SerialException):
        Host(sim.link)                                     # nothing there yet

    assert sim.wait_plugged(3)
    # The old /dev/pts/N is still held open by the host, so the new one gets another number
    # (the USB-serial renumbering of the field); the name stays.
    assert os.readlink(sim.link) != old_pty
    with pytest.raises(serial.SerialException):
        ready.port.read(1)                                 # the old handle stays dead
    ready.close()
    again = Host(sim.link)
    try:
        assert again.status().status is Status.POWER_UP
        assert again.x(Command.RESET) == Frame(id003.ACK)
        again.wait_for(Status.DISABLED)
    finally:
        again.close()


def test_unplug_during_escrow_powers_up_with_bill_in_acceptor(sim: Id003Simulator,
                                                               ready: Host) -> None:
    escrow(sim, ready, 2000)
    sim.unplug(0.2)
    ready.close()
    assert sim.wait_plugged(3)
    again = Host(sim.link)
    try:
        assert again.status().status is Status.POWER_UP_BILL_IN_ACCEPTOR
        again.x(Command.RESET)
        again.wait_for(Status.DISABLED)
        assert sim.record.returned == [2000]
    finally:
        again.close()


def test_garbage_before_a_reply(sim: Id003Simulator, ready: Host) -> None:
    sim.garbage(40)
    assert ready.status().status is Status.IDLING
    assert ready.decoder.garbage_bytes + ready.decoder.bad_length + ready.decoder.bad_crc > 0
    sim.garbage(0, data=b"\x00\xfc\xf0\x13")               # a stray SYNC with a long LNG
    assert ready.status().status is Status.IDLING
    assert ready.status().status is Status.IDLING


def test_reply_with_bad_crc_is_dropped_and_the_retry_works(sim: Id003Simulator,
                                                           ready: Host) -> None:
    sim.bad_crc_next()
    assert ready.x(Command.STATUS_REQUEST, timeout=0.3) is None
    assert ready.decoder.bad_crc == 1
    assert ready.status().status is Status.IDLING


def test_slow_replies(sim: Id003Simulator, ready: Host) -> None:
    sim.slow(0.4)
    ready.send(Command.STATUS_REQUEST)
    assert ready.answer(timeout=0.2) is None
    frame = ready.answer(timeout=0.5)
    assert frame == Frame(Status.IDLING)
    sim.slow(0)
    assert ready.status().status is Status.IDLING


def test_latency_holds_replies_back_in_order_without_queueing(sim: Id003Simulator,
                                                              ready: Host) -> None:
    sim.latency(0.3)
    escrow(sim, ready, 2000)                             # polled through the latency
    sent = time.monotonic()
    ready.send(Command.STACK_1)                          # acted on at once...
    ready.send(Command.STATUS_REQUEST)
    assert ready.answer(timeout=0.2) is None             # ...answered 0.3 s later
    frames: list[Frame] = []
    while len(frames) < 2 and time.monotonic() - sent < 1.0:
        frames += ready.decoder.feed(ready.port.read(max(1, ready.port.in_waiting)))
    assert frames == [Frame(id003.ACK), Frame(Status.STACKING)]   # in order
    assert time.monotonic() - sent < 0.55                # the second not 0.3 s more
    sim.latency(0)
    assert ready.wait_for(Status.VEND_VALID) == [Status.VEND_VALID]


def test_latency_jitter_stays_within_its_bounds(sim: Id003Simulator, ready: Host) -> None:
    sim.latency(0.05, jitter=0.1)
    took = []
    for _ in range(8):
        started = time.monotonic()
        assert ready.x(Command.STATUS_REQUEST, timeout=0.5) == Frame(Status.IDLING)
        took.append(time.monotonic() - started)
    assert 0.05 <= min(took) and max(took) < 0.3
    assert max(took) - min(took) > 0.02                  # drawn anew for every reply


def test_drop_line_keeps_the_device_state_and_logs_each_line(sim: Id003Simulator,
                                                             ready: Host) -> None:
    escrow(sim, ready, 5000)
    sim.drop_line(0.3)                                   # the adapter, not the acceptor
    assert sim.give_back()                               # the customer takes it back
    assert not sim.give_back()                           # nothing undecided in escrow now
    assert sim.wait_plugged(3)
    ready.close()
    again = Host(sim.link, serial.PARITY_NONE)
    try:
        # The device kept its state through the line drop: it may still be finishing the
        # return (RETURNING) when the host is back, but never powers up or initialises.
        seen = again.wait_for(Status.IDLING)
        assert seen[-1] is Status.IDLING and set(seen) <= {Status.RETURNING, Status.IDLING}
        assert sim.record.returned == [5000] and sim.record.resets == 1
        assert sim.sent_on(2) and set(sim.sent_on(2)) == {Command.STATUS_REQUEST}   # polls
        assert Command.RESET in sim.sent_on(1) and sim.line == 2
    finally:
        again.close()


def test_lose_line_on_a_command_loses_that_frame(sim: Id003Simulator, ready: Host) -> None:
    escrow(sim, ready, 5000)
    sim.lose_line_on(Command.STACK_1, 0.3)
    ready.send(Command.STACK_1)
    deadline = time.monotonic() + 2
    while os.path.lexists(sim.link):                     # the line goes as STACK arrives
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert sim.wait_plugged(3)
    assert Command.STACK_1 not in sim.sent_on(1)         # it never reached the device
    ready.close()
    again = Host(sim.link, serial.PARITY_NONE)
    try:
        assert again.status().status is Status.ESCROW     # still undecided, same state
    finally:
        again.close()


def test_host_frame_with_bad_crc_is_ignored(sim: Id003Simulator, ready: Host) -> None:
    bad = bytearray(encode(Command.STATUS_REQUEST))
    bad[-1] ^= 0x40
    ready.port.write(bytes(bad))
    assert ready.answer(timeout=0.4) is None
    assert sim.decoder.bad_crc == 1
    assert ready.status().status is Status.IDLING


def test_line_noise_from_the_host_never_kills_the_device(sim: Id003Simulator,
                                                         ready: Host) -> None:
    rng = random.Random(7)
    for _ in range(20):
        ready.port.write(rng.randbytes(rng.randrange(1, 80)))
        ready.port.write(encode(rng.randrange(256), rng.randbytes(rng.randrange(4))))
    time.sleep(0.3)
    ready.port.reset_input_buffer()
    ready.decoder.reset()
    ready.port.write(bytes(300))                            # flush any half frame held
    time.sleep(0.1)
    frame = ready.x(Command.STATUS_REQUEST)
    assert frame is not None and id003.is_status(frame.cmd)
    assert sim._thread is not None and sim._thread.is_alive()


def test_default_codes() -> None:
    assert default_codes((100000, 2000, 5000)) == {0x61: 2000, 0x62: 5000, 0x63: 100000}
    assert default_codes() == PHP_NOTES


# ---------------------------------------------------------------------------- pure device
class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


ACTIONS = st.one_of(
    st.tuples(st.just("frame"), st.integers(0, 255), st.binary(max_size=4)),
    st.tuples(st.just("frame"), st.sampled_from(list(Command)), st.binary(max_size=2)),
    st.tuples(st.just("time"), st.floats(0, 1), st.just(b"")),
    st.tuples(st.sampled_from(["insert", "counterfeit", "hold_escrow", "jam_after_escrow",
                               "power_up_with_bill", "stacker_full", "stacker_open",
                               "clear_fault", "cheat", "failure", "stuck", "power_cycle"]),
              st.integers(0, 0x7F), st.just(b"")),
)


def _act(device: Id003Device, clock: Clock, what: str, arg: object, data: bytes) -> None:
    match what:
        case "frame":
            reply = device.handle(Frame(int(arg), data))             # type: ignore[arg-type]
            if reply:
                frames = Decoder().feed(reply)
                assert len(frames) == 1 and frames[0].to_bytes() == reply
        case "time":
            clock.t += float(arg)                                    # type: ignore[arg-type]
        case "insert":
            device.insert(rng_value(int(arg)))                       # type: ignore[arg-type]
        case "power_up_with_bill":
            device.power_up_with_bill("stacker" if int(arg) % 2 else "acceptor")  # type: ignore
        case "jam_after_escrow":
            device.jam_after_escrow("stacker" if int(arg) % 2 else "acceptor")    # type: ignore
        case "stuck":
            device.stuck(list(Status)[int(arg) % len(Status)], 0.5)  # type: ignore[arg-type]
        case "hold_escrow":
            device.hold_escrow(0.3)
        case "counterfeit" | "failure":
            getattr(device, what)(0x71 + int(arg) % 14)              # type: ignore[arg-type]
        case _:
            getattr(device, what)()


def rng_value(n: int) -> int:
    values = sorted(PHP_NOTES.values())
    return values[n % len(values)] if n < 100 else 12300


@settings(max_examples=150, deadline=None)
@given(st.lists(ACTIONS, max_size=40))
def test_device_never_crashes_and_conserves_notes(actions: list[tuple[str, object, bytes]]
                                                  ) -> None:
    clock = Clock()
    device = Id003Device(PHP_NOTES, clock=clock)
    inserted = 0
    for what, arg, data in actions:
        before = device.status()
        _act(device, clock, what, arg, data)
        if what == "insert" and before[0] is Status.IDLING:
            inserted += 1
        status, sdata = device.status()
        parse_status(Frame(status, sdata))                           # always well formed
    record = device.record
    assert record.vend_valid_acked <= len(record.stacked)
    # no note is ever counted twice (power_up_with_bill may add notes nobody inserted)
    placed = len(record.stacked) + len(record.returned) + len(record.rejected)
    forced = sum(1 for what, *_ in actions if what == "power_up_with_bill")
    assert placed <= inserted + forced
