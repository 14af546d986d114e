"""The ZVT terminal simulator at byte level: a hand-driven ECR on a REAL pty (pyserial, raw
frames and ACK bytes), checking what a terminal must do on the line, and its ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from drivers.card_terminal import zvt
from drivers.card_terminal.simulator import ZvtSimulator
from drivers.card_terminal.zvt import ACK, NAK, Apdu, Code


class Ecr:
    """The kiosk's side, spelled out: write a frame, expect the ACK byte; read a frame, ACK
    it; answer 80 00 00 (or not) by hand."""

    def __init__(self, link: str) -> None:
        self.port = serial.Serial(link, 9600, stopbits=2, timeout=0.02)
        self.decoder = zvt.Decoder()
        self.pending: list[zvt.Control | zvt.Frame | zvt.BadFrame] = []

    def read_item(self, timeout: float = 1.0) -> zvt.Control | zvt.Frame | zvt.BadFrame | None:
        deadline = time.monotonic() + timeout
        while not self.pending and time.monotonic() < deadline:
            self.pending += self.decoder.feed(self.port.read(max(1, self.port.in_waiting)))
        return self.pending.pop(0) if self.pending else None

    def send(self, apdu: bytes, expect: int = ACK) -> None:
        self.port.write(zvt.frame(apdu))
        assert self.read_item() == zvt.Control(expect)

    def receive(self, ack: bool = True, timeout: float = 2.0) -> Apdu:
        item = self.read_item(timeout)
        assert isinstance(item, zvt.Frame), item
        if ack:
            self.port.write(bytes((ACK,)))
        return zvt.decode_apdu(item.apdu)

    def confirm(self, timeout: float = 2.0) -> Apdu:
        """Receive a terminal message, ACK it and answer 80 00 00."""
        apdu = self.receive(timeout=timeout)
        self.send(zvt.positive())
        return apdu

    def until_end(self) -> list[Apdu]:
        got = []
        while True:
            got.append(self.confirm())
            if got[-1].code in (Code.COMPLETION, Code.ABORT):
                return got

    def register(self, config: int = 0xBE) -> zvt.Completion:
        self.send(zvt.registration("000000", config, 608))
        assert self.receive().positive
        done = self.confirm()
        assert done.code == Code.COMPLETION
        return zvt.parse_completion(done)


@pytest.fixture
def sim() -> Iterator[ZvtSimulator]:
    s = ZvtSimulator(step_s=0.01, t1_s=0.2, t3_s=0.6, no_answer_s=0.5).start()
    yield s
    s.stop()


@pytest.fixture
def ecr(sim: ZvtSimulator) -> Iterator[Ecr]:
    e = Ecr(sim.link)
    yield e
    e.port.close()


def pay(ecr: Ecr, amount: int = 15000) -> list[Apdu]:
    ecr.send(zvt.authorisation(amount, 608))
    assert ecr.receive().positive
    return ecr.until_end()


def test_registration_answers_80_00_00_then_completion_with_tid(sim, ecr):
    assert ecr.register() == zvt.Completion(terminal_id="52500038", currency=608)
    assert sim.registered and sim.config == 0xBE


def test_a_bad_crc_is_naked_and_the_command_ignored(sim, ecr):
    wire = zvt.frame(zvt.registration("000000", 0xBE, 608))
    ecr.port.write(wire[:-1] + bytes((wire[-1] ^ 1,)))
    assert ecr.read_item() == zvt.Control(NAK)
    assert ecr.read_item(0.3) is None and not sim.registered


def test_commands_before_registration_are_refused(sim, ecr):
    ecr.send(zvt.authorisation(100, 608))
    answer = ecr.receive()
    assert answer.negative and answer.ins == zvt.RESULT_NOT_REGISTERED


def test_wrong_currency_registration_is_aborted(sim, ecr):
    ecr.send(zvt.registration("000000", 0xBE, 978))
    assert ecr.receive().positive
    assert ecr.confirm() == Apdu(6, 0x1E, b"\x6f")
    assert not sim.registered


def test_approved_payment_sequence_and_ledger(sim, ecr):
    ecr.register()
    got = pay(ecr, 15000)
    codes = [a.code for a in got]
    assert codes[:4] == [Code.INTERMEDIATE_STATUS] * 3 + [Code.STATUS_INFORMATION]
    assert [zvt.parse_intermediate_status(a).code for a in got[:3]] == [0x0A, 0x01, 0x04]
    assert codes[-1] == Code.COMPLETION and set(codes[4:-1]) == {Code.PRINT_LINE}
    info = zvt.parse_status_information(got[3])
    assert info.approved and info.amount == 15000 and info.receipt_no == "0001"
    lines = [zvt.parse_print_line(a) for a in got[4:-1]]
    assert "AMOUNT PHP 150.00" in [p.text for p in lines] and lines[-1].last
    assert not any(c.isdigit() and len(p.text) > 30 for p in lines for c in p.text)
    assert sim.ledger.authorised == {"0001": 15000} and sim.ledger.reversed == {}


def test_no_print_lines_when_the_ecr_does_not_print(sim, ecr):
    ecr.register(config=0xB8)                           # receipts stay on the terminal
    got = pay(ecr)
    assert Code.PRINT_LINE not in [a.code for a in got]


def test_declined_payment_ends_with_06_1e(sim, ecr):
    ecr.register()
    sim.next_outcome = "decline"
    got = pay(ecr)
    status = zvt.parse_status_information(next(a for a in got if a.code == Code.STATUS_INFORMATION))
    assert status.result_code == zvt.RESULT_DECLINED and got[-1] == zvt.decode_apdu(zvt.abort(5))
    assert sim.ledger.authorised == {}


def test_customer_abort_at_the_terminal(sim, ecr):
    ecr.register()
    sim.next_outcome = "customer_abort"
    got = pay(ecr)
    assert got[-1] == zvt.decode_apdu(zvt.abort(0x6C))
    assert sim.ledger.transactions[-1].outcome == "aborted"


def test_ecr_abort_while_waiting_for_the_card(sim, ecr):
    ecr.register()
    sim.step_s = 0.5
    ecr.send(zvt.authorisation(5000, 608))
    assert ecr.receive().positive
    assert ecr.confirm().code == Code.INTERMEDIATE_STATUS      # insert card
    ecr.send(zvt.ecr_abort())
    assert ecr.receive().positive                              # the abort is taken
    assert ecr.confirm() == zvt.decode_apdu(zvt.abort(0x6C))
    assert "ECR_ABORT" in sim.commands and sim.ledger.authorised == {}


def test_unacknowledged_frames_are_repeated_three_times(sim, ecr):
    ecr.register()
    ecr.send(zvt.authorisation(100, 608))
    assert ecr.receive().positive
    first = ecr.receive(ack=False)                             # say nothing
    repeats = [ecr.receive(ack=False, timeout=0.5) for _ in range(3)]
    assert repeats == [first] * 3
    # It gives up on the payment and says so (06 1E 6C), 4 times as well, then is quiet.
    aborts = [ecr.receive(ack=False, timeout=0.5) for _ in range(4)]
    assert aborts == [zvt.decode_apdu(zvt.abort(0x6C))] * 4
    assert ecr.read_item(0.5) is None
    assert sim.ledger.transactions[-1].outcome == "aborted"


def test_a_naked_frame_is_sent_again(sim, ecr):
    ecr.register()
    ecr.send(zvt.authorisation(100, 608))
    assert ecr.receive().positive
    first = ecr.receive(ack=False)
    ecr.port.write(bytes((NAK,)))
    assert ecr.receive() == first


def test_an_approval_the_ecr_never_confirms_is_reversed_by_the_terminal(sim, ecr):
    ecr.register()
    ecr.send(zvt.authorisation(7000, 608))
    assert ecr.receive().positive
    for _ in range(3):
        ecr.confirm()                                          # the intermediate statuses
    assert ecr.receive().code == Code.STATUS_INFORMATION      # ACKed, never 80 00 00
    time.sleep(0.8)
    kinds = [(t.kind, t.outcome) for t in sim.ledger.transactions]
    assert kinds == [("payment", "approved"), ("auto_reversal", "approved")]
    assert sim.ledger.authorised == sim.ledger.reversed == {"0001": 7000}


def test_negative_answer_to_the_status_also_reverses(sim, ecr):
    ecr.register()
    ecr.send(zvt.authorisation(7000, 608))
    assert ecr.receive().positive
    for _ in range(3):
        ecr.confirm()
    assert ecr.receive().code == Code.STATUS_INFORMATION
    ecr.send(zvt.negative(0x9A))
    time.sleep(0.2)
    assert sim.ledger.reversed == {"0001": 7000}


def test_reversal_of_the_last_payment_then_refused_twice(sim, ecr):
    ecr.register()
    pay(ecr, 15000)
    ecr.send(zvt.reversal("000000", "0001"))
    assert ecr.receive().positive
    got = ecr.until_end()
    info = zvt.parse_status_information(next(a for a in got if a.code == Code.STATUS_INFORMATION))
    assert info.reversal and info.original_trace == "000001" and info.receipt_no == "0002"
    assert got[-1].code == Code.COMPLETION and sim.ledger.reversed == {"0001": 15000}
    ecr.send(zvt.reversal("000000", "0001"))
    assert ecr.receive().positive
    assert ecr.until_end()[-1] == zvt.decode_apdu(zvt.abort(zvt.RESULT_ALREADY_REVERSED))


@pytest.mark.parametrize("case", ["not_working", "unknown_receipt", "not_the_last"])
def test_reversal_refused(sim, ecr, case):
    ecr.register()
    pay(ecr, 1000)
    pay(ecr, 2000)
    sim.reversal_works = case != "not_working"
    receipt = {"not_working": "0002", "unknown_receipt": "0099", "not_the_last": "0001"}[case]
    ecr.send(zvt.reversal("000000", receipt))
    assert ecr.receive().positive
    assert ecr.until_end()[-1] == zvt.decode_apdu(zvt.abort(zvt.RESULT_REVERSAL_NOT_POSSIBLE))
    assert sim.ledger.reversed == {}


@pytest.mark.parametrize("outcome", ["no_completion", "no_completion_reversed"])
def test_approval_then_silence(sim, ecr, outcome):
    """The 04 0F is confirmed, then nothing: no receipt line, no 06 0F. With
    "no_completion_reversed" the terminal reverses the payment by itself, and its reversal
    is then refused "already reversed" (06 1E B4), or 84 B4 with refuse_reversal_with."""
    ecr.register()
    sim.next_outcome = outcome
    ecr.send(zvt.authorisation(3000, 608))
    assert ecr.receive().positive
    while (got := ecr.confirm()).code == Code.INTERMEDIATE_STATUS:
        pass
    assert got.code == Code.STATUS_INFORMATION and zvt.parse_status_information(got).approved
    assert ecr.read_item(0.5) is None                         # silence
    [payment] = [t for t in sim.ledger.transactions if t.kind == "payment"]
    assert payment.delivered and not payment.completed
    assert sim.ledger.authorised == {"0001": 3000}
    reversed_by_itself = outcome == "no_completion_reversed"
    assert sim.ledger.reversed == ({"0001": 3000} if reversed_by_itself else {})
    sim.refuse_reversal_with = "negative"
    ecr.send(zvt.reversal("000000", "0001"))
    answer = ecr.receive()
    if reversed_by_itself:
        assert answer == Apdu(0x84, zvt.RESULT_ALREADY_REVERSED)  # 84 B4 00, nothing follows
        assert ecr.read_item(0.3) is None
    else:
        assert answer.positive and ecr.until_end()[-1].code == Code.COMPLETION
    assert sim.ledger.reversed == {"0001": 3000}


def test_card_number_in_bmp_22_and_on_the_receipt(sim, ecr):
    ecr.register()
    sim.card_pan = "476173EEEEEE0119"
    got = pay(ecr, 1000)
    status = next(a for a in got if a.code == Code.STATUS_INFORMATION)
    assert bytes.fromhex("22F0F8476173EEEEEE0119") in status.data       # as a terminal sends it
    assert zvt.parse_status_information(status).card_last4 == "0119"
    printed = [a.data[1:].decode("cp437") for a in got if a.code == Code.PRINT_LINE]
    assert "PAN 476173EEEEEE0119" in printed                  # the driver must mask it
    assert zvt.parse_print_line(next(a for a in got if a.code == Code.PRINT_LINE
                                     and b"PAN" in a.data)).text == "PAN ************0119"


def test_repeat_receipt_gives_the_last_transaction(sim, ecr):
    ecr.register()
    ecr.send(zvt.repeat_receipt("000000"))
    assert ecr.receive().positive
    assert ecr.until_end() == [zvt.decode_apdu(zvt.abort(zvt.RESULT_FUNCTION_NOT_POSSIBLE))]
    pay(ecr, 4200)
    ecr.send(zvt.repeat_receipt("000000"))
    assert ecr.receive().positive
    got = ecr.until_end()
    info = zvt.parse_status_information(got[0])
    assert info.approved and info.amount == 4200 and info.receipt_no == "0001"
    assert zvt.parse_print_line(got[1]).text == "** DUPLICATE **"
    assert sim.ledger.authorised == {"0001": 4200}               # repeating books nothing


def test_status_enquiry(sim, ecr):
    ecr.send(zvt.status_enquiry("000000"))
    assert ecr.receive().positive
    done = zvt.parse_completion(ecr.confirm(), after_status_enquiry=True)
    assert done.terminal_status == 0 and done.sw_version.startswith("ZVTSIM")


def test_wrong_password_is_refused(sim, ecr):
    ecr.send(zvt.status_enquiry("123456"))
    assert ecr.receive().negative


def test_a_busy_terminal_refuses_other_commands(sim, ecr):
    ecr.register()
    sim.next_outcome = "no_answer"
    sim.no_answer_s = 1.0
    ecr.send(zvt.authorisation(3000, 608))
    assert ecr.receive().positive
    for _ in range(3):
        ecr.confirm()
    ecr.send(zvt.repeat_receipt("000000"))
    answer = ecr.receive()
    assert answer.negative and answer.ins == zvt.RESULT_PLEASE_WAIT
    late = ecr.confirm(timeout=3)                                # the bank answered
    assert late.code == Code.STATUS_INFORMATION
    assert sim.ledger.authorised == {"0001": 3000}


def test_garbage_before_frames_and_one_bad_crc(sim, ecr):
    ecr.register()
    sim.next_outcome = "garbage"
    ecr.send(zvt.authorisation(100, 608))
    assert ecr.receive().positive
    got = []
    while True:
        item = ecr.read_item(2)
        if isinstance(item, zvt.BadFrame):
            ecr.port.write(bytes((NAK,)))
            got.append("NAK")
            continue
        assert isinstance(item, zvt.Frame)
        ecr.port.write(bytes((ACK,)))
        apdu = zvt.decode_apdu(item.apdu)
        ecr.send(zvt.positive())
        got.append(apdu.code)
        if apdu.code == Code.COMPLETION:
            break
    assert ecr.decoder.garbage_bytes >= 11
    assert got.index("NAK") == got.index(Code.STATUS_INFORMATION) - 1
    assert sim.ledger.authorised == {"0001": 100}


def test_offline_terminal_does_not_even_ack(sim, ecr):
    sim.offline = True
    ecr.port.write(zvt.frame(zvt.status_enquiry("000000")))
    assert ecr.read_item(0.5) is None


def test_unplug_removes_the_link_and_the_terminal_restarts(sim, ecr):
    ecr.register()
    old = sim.pty_path
    sim.unplug(0.3)
    with pytest.raises(serial.SerialException):
        for _ in range(5):
            ecr.port.read(1)
    assert sim.wait_plugged(3) and sim.pty_path != old and not sim.registered
    again = Ecr(sim.link)
    try:
        again.register()
    finally:
        again.port.close()
