"""The customer's flows through the real window, by touches, with a screenshot per screen."""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace

import pytest

from drivers.sim.virtual import PROFILES
from kiosk import luhn
from kiosk.payments import emvco
from kiosk.backend.simulated import UNKNOWN_SIM
from kiosk.i18n import load
from kiosk.linebreak import strip_marks
from screens import sound

pytestmark = pytest.mark.asyncio(loop_scope="session")

NUMBER = "09171234567"


async def to_products(k, number: str = NUMBER, shots: str = "") -> None:
    await k.wait_phase("idle")
    await k.tap("start")
    await k.wait_phase("identify")
    await k.type_digits(number)
    if shots:
        await k.shot(f"{shots}-02-identify")
    await k.tap("number_ok")
    await k.wait_phase("confirm_number")
    assert "0917 123 4567" in k.texts()          # read back whole, grouped
    if shots:
        await k.shot(f"{shots}-03-confirm")
    await k.tap("number_yes")
    await k.wait_phase("choose_product")
    await k.wait_for(lambda: k.rt.state.offered is not None, "the number checked")


async def test_cash_topup_with_change_voucher(kiosk):
    k = kiosk
    acceptor, printer = k.rt.devices["cash"].simulator, k.rt.devices["printer"].simulator
    stacked_before, printed_before = sum(acceptor.record.stacked), len(printer.receipts)
    await k.shot("cash-01-attract")
    await to_products(k, shots="cash")
    await k.shot("cash-04-products")
    await k.tap("product_globe-load_5000")
    await k.wait_phase("choose_payment")
    await k.shot("cash-05-payment")
    await k.tap("pay_cash")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    await k.shot("cash-06-insert")
    ref = k.rt.state.txn.ref

    # A 100 note is more than the 50 still to pay: returned at escrow, never credited.
    await k.tap("demo_note_10000")
    await k.wait_for(lambda: acceptor.record.returned[-1:] == [10000], "the 100 note returned")
    await k.wait_for(lambda: k.rt.state.notice == "note.too_large", "the notice")
    assert "more than you still need to pay" in k.texts()
    await k.shot("cash-07-note-returned")
    assert k.rt.state.txn.paid == 0

    for expected_paid in (2000, 4000):
        await k.tap("demo_note_2000")
        await k.wait_for(lambda: k.rt.state.txn.paid == expected_paid, f"paid {expected_paid}")
    assert "₱10.00" in k.texts()                         # still to pay
    await k.shot("cash-08-partly-paid")
    await k.tap("demo_note_2000")                        # 60 for 50: change 10 as voucher
    await k.wait_phase("result")
    await k.wait_for(lambda: k.rt.state.receipt_printed, "the receipt printed")
    await k.shot("cash-09-result")
    t = k.rt.state.txn
    assert (t.outcome.value, t.paid, t.credited, t.voucher) == ("success", 6000, 5000, 1000)
    assert luhn.valid(t.voucher_code) and len(t.voucher_code) == 16
    assert "Done! Your top-up was sent" in k.texts()

    row = k.rt.journal.transaction(ref)
    assert (row.status, row.outcome, row.paid, row.credited, row.voucher) == (
        "closed", "success", 6000, 5000, 1000)
    assert sum(acceptor.record.stacked) - stacked_before == row.paid
    assert k.rt.devices["backend"].simulator.credits[ref] == 5000
    # What the ESC/POS printer put on paper (its simulator parsed the bytes).
    await k.wait_for(lambda: len(printer.receipts) == printed_before + 1, "the receipt")
    paper = printer.receipts[-1]
    text = "\n".join(paper.lines)
    assert ref in text and "0917***4567" in text and NUMBER not in text
    assert paper.cut and paper.qr == [k.rt.state.txn.voucher_code]   # the change voucher

    await k.tap("show_receipt")
    await k.wait_phase("receipt")
    await k.shot("cash-10-receipt")
    await k.tap("finish")
    await k.wait_phase("idle")


async def test_qr_topup_identified_by_sim(kiosk):
    k = kiosk
    iccid, msisdn = PROFILES["uicc"].iccid, PROFILES["uicc"].msisdn
    wallet = k.rt.devices["wallet"].simulator      # the HTTP wallet gateway simulator
    await k.wait_phase("idle")
    aggregator = k.rt.devices["backend"].simulator
    aggregator.subscriber_delay_s = 1.5           # the operator takes a moment to answer
    try:
        await k.tap("demo_vsim_uicc")             # the customer inserts the SIM
        await k.wait_phase("lookup")
        assert "Reading your SIM card" in k.texts()
        await k.shot("qr-00-reading-sim")
    finally:
        aggregator.subscriber_delay_s = 0.0
    await k.wait_phase("confirm_number")
    assert msisdn not in k.texts() and "0917•••4567" in k.texts()
    await k.shot("qr-01-confirm-sim")
    await k.tap("number_yes")
    await k.wait_phase("choose_product")
    await k.tap("tab_data")
    await k.shot("qr-02-data-packs")
    await k.tap("product_globe-data-7d_9900")
    await k.wait_phase("choose_payment")
    await k.tap("pay_qr")
    await k.wait_for(lambda: k.rt.state.qr_payload, "the QR code")
    ref = k.rt.state.txn.ref
    assert ref in k.rt.state.qr_payload
    qr = k.app.screens["qr"].qr
    assert qr.matrix and len(qr.matrix) >= 25 + 8
    shot = await k.shot("qr-03-scan")
    # A real scanner reads the screen: zbar decodes the screenshot to the very payload.
    scanned = subprocess.run(["zbarimg", "--raw", "-q", str(shot)], capture_output=True,
                             text=True, timeout=30)
    assert scanned.returncode == 0, scanned.stderr
    assert scanned.stdout.strip() == k.rt.state.qr_payload
    fields = {f.tag: f.value for f in emvco.decode(scanned.stdout.strip())}
    assert fields["54"] == "99.00" and fields["53"] == "608"
    # Large enough for a phone at arm's length: at least 4 px a module, quiet zone drawn.
    assert qr.width >= 4 * len(qr.matrix) and qr.height >= 4 * len(qr.matrix)
    await k.tap("demo_qr_pay")                    # the customer pays on the phone
    await k.wait_phase("result")
    await k.shot("qr-04-result")
    assert wallet.ledger[ref] == 9900
    row = k.rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.credited) == ("success", 9900, 9900)
    assert "Do not forget your SIM card!" in k.texts()
    await k.tap("demo_vsim_remove")
    await k.wait_for(lambda: not k.rt.state.sim_present, "the SIM taken back")
    assert "Do not forget your SIM card!" not in k.texts()
    await k.tap("finish")
    await k.wait_phase("idle")


async def test_failed_topup_ends_in_voucher(kiosk):
    k = kiosk
    await to_products(k)
    await k.tap("demo_backend_fail")              # the operator will refuse the top-up
    await k.tap("product_globe-load_2000")
    await k.tap("pay_cash")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    ref = k.rt.state.txn.ref
    await k.tap("demo_note_2000")
    await k.wait_phase("result")
    await k.wait_for(lambda: k.rt.state.receipt_printed, "the receipt printed")
    await k.shot("fail-01-voucher")
    t = k.rt.state.txn
    assert (t.outcome.value, t.paid, t.credited, t.voucher) == ("failed_voucher", 2000, 0, 2000)
    text = k.texts()
    assert "Your number was not topped up" in text and "voucher" in text
    assert " ".join(t.voucher_code[i:i + 4] for i in range(0, 16, 4)) in text
    assert ref not in k.rt.devices["backend"].simulator.credits
    [voucher] = k.rt.journal.vouchers(ref)
    assert (voucher["amount"], voucher["status"]) == (2000, "active")
    await k.tap("finish")
    await k.wait_phase("idle")


async def test_backend_timeout_is_resolved_by_lookup_not_failed(kiosk):
    k = kiosk
    await to_products(k)
    await k.tap("demo_backend_timeout_after_commit")  # credited, but the reply is lost
    await k.tap("product_globe-load_2000")
    await k.tap("pay_cash")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    ref = k.rt.state.txn.ref
    await k.tap("demo_note_2000")
    await k.wait_phase("result")
    t = k.rt.state.txn
    assert (t.outcome.value, t.credited, t.voucher) == ("success", 2000, 0)
    assert k.rt.devices["backend"].simulator.credits[ref] == 2000
    kinds = [e.kind for e in k.rt.journal.events(ref)]
    assert "TopUpUnknown" in kinds and "QueryTopUp" in kinds and kinds.count("TopUp") == 1
    await k.tap("finish")


async def test_customer_walks_away(kiosk):
    k = kiosk
    rt = k.rt
    rt.settings = replace(rt.settings, ui=replace(rt.settings.ui, idle_timeout_s=1,
                                                  answer_timeout_s=2))
    await k.tap("start")
    await k.wait_phase("identify")
    await k.type_digits("0917")
    chimes = len(sound.played)
    await k.wait_for(lambda: k.widget("more_time"), "the 'Need more time?' question", 5)
    assert "Need more time?" in k.texts()
    assert len(sound.played) == chimes + 1          # heard, not only seen
    await k.shot("timeout-01-need-more-time")
    await k.tap("more_time")                      # one touch keeps the visit
    assert rt.warning_until is None and k.phase == "identify"
    await k.wait_for(lambda: k.widget("more_time"), "the question again", 5)
    await k.wait_phase("idle", 6)                 # no answer: back to the start
    assert k.widget("more_time") is None
    await k.shot("timeout-02-back-to-start")


async def test_walk_away_after_paying_part_gives_a_voucher(kiosk):
    k = kiosk
    rt = k.rt
    await to_products(k)
    await k.tap("product_globe-load_5000")
    await k.tap("pay_cash")
    await k.wait_for(lambda: rt.state.txn.ref, "a reference")
    ref = rt.state.txn.ref
    await k.tap("demo_note_2000")
    await k.wait_for(lambda: rt.state.txn.paid == 2000, "the note credited")
    rt.settings = replace(rt.settings, ui=replace(rt.settings.ui, idle_timeout_s=1,
                                                  answer_timeout_s=1))
    await k.wait_for(lambda: k.widget("more_time"), "the question", 5)
    assert "kept for you as a voucher" in k.texts()
    await k.shot("timeout-03-money-inserted")
    await k.wait_phase("result", 6)
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.voucher) == ("cancelled", 2000, 2000)
    await k.shot("timeout-04-voucher")
    # The voucher's code is not left on screen for the next person: with nobody there,
    # the result goes back to the start after the answer time (here 4 s), not ~50 s.
    rt.settings = replace(rt.settings, ui=replace(rt.settings.ui, idle_timeout_s=60,
                                                  answer_timeout_s=4, result_timeout_s=30))
    rt.touched()
    start = time.monotonic()
    await k.wait_phase("idle", 8)
    assert time.monotonic() - start < 6


async def test_cancel_with_money_inserted_explains_and_gives_voucher(kiosk):
    k = kiosk
    await to_products(k)
    await k.tap("product_globe-load_5000")
    await k.tap("pay_cash")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    await k.tap("demo_note_2000")
    await k.wait_for(lambda: k.rt.state.txn.paid == 2000, "the note credited")
    await k.tap("cancel")
    await k.wait_for(lambda: k.widget("confirm_cancel"), "the cancel question")
    assert "Notes cannot be given back once accepted" in k.texts()
    await k.shot("cancel-01-explained")
    await k.tap("keep_paying")
    assert k.phase == "pay_cash"
    await k.tap("cancel")
    await k.tap("confirm_cancel")
    await k.wait_phase("result")
    t = k.rt.state.txn
    assert (t.outcome.value, t.paid, t.voucher) == ("cancelled", 2000, 2000)
    await k.shot("cancel-02-voucher")


async def test_wrong_numbers_are_explained(kiosk):
    k = kiosk
    await k.tap("start")
    await k.type_digits("09")
    ok = k.widget("number_ok")
    assert ok.disabled                              # not after two digits
    await k.type_digits("17123")
    assert ok.disabled
    text = k.texts()
    assert "7 of 11 digits" in text and "4 more to type" in text and "Globe" in text
    await k.shot("number-01-too-short")
    await k.type_digits("4567")
    assert not ok.disabled and "✓ Network: Globe" in k.texts()
    await k.type_digits("8")                        # 12 digits: too many, said how many
    assert ok.disabled and "a mobile number has 11 digits" in k.texts()
    await k.tap("key_clear")
    assert "digits" in k.texts() and "Too many" not in k.texts()
    await k.type_digits("01112345678")
    assert ok.disabled and "No network uses numbers starting 0111" in k.texts()
    assert k.phase == "identify"
    await k.shot("number-02-unknown-prefix")
    # An error the engine gave (a SIM it does not know) goes when the customer types.
    await k.tap("demo_vsim_unknown")              # a SIM the operator does not know
    await k.wait_for(lambda: k.rt.state.notice == "sim.unknown", "unknown SIM")
    assert UNKNOWN_SIM not in k.texts()
    await k.tap("demo_vsim_remove")
    await k.wait_for(lambda: k.widget("key_clear"), "the keypad")
    await k.tap("key_clear")
    assert k.app.screen().notice.text == ""


async def test_language_switch_keeps_the_place(kiosk):
    k = kiosk
    zh = load("zh_CN")
    await to_products(k)
    await k.tap("lang_zh_CN")
    assert k.phase == "choose_product"
    text = k.texts()
    title = strip_marks(zh.gettext("What would you like to buy?"))
    assert title in text and title != "What would you like to buy?"
    await k.shot("lang-01-products-zh")
    await k.tap("product_globe-load_2000")
    await k.wait_phase("choose_payment")
    await k.shot("lang-02-payment-zh")
    await k.tap("cancel")
    await k.wait_phase("idle")
    assert k.app.tr.lang == "en"                  # the next customer starts in English


async def test_card_payment_declined_then_reversed_on_failure(kiosk):
    k = kiosk
    terminal = k.rt.devices["card"].simulator      # a ZVT terminal behind a pty
    await to_products(k)
    await k.tap("tab_validity")
    await k.tap("product_globe-keep_1500")
    await k.tap("demo_card_decline")
    await k.tap("pay_card")
    await k.wait_for(lambda: k.rt.state.notice == "card.declined", "the decline")
    assert k.phase == "choose_payment"
    await k.shot("card-01-declined")
    await k.tap("demo_card_approve")
    await k.tap("demo_backend_fail")
    terminal.step_s = 0.6                         # the customer takes a moment at the terminal
    k.rt.devices["backend"].simulator.topup_delay_s = 1.0
    try:
        await k.tap("pay_card")
        await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
        ref = k.rt.state.txn.ref
        await k.wait_for(lambda: k.rt.state.card_text, "the terminal's first message")
        assert k.phase == "pay_card" and "The card terminal says:" in k.texts()
        await k.shot("card-02-at-the-terminal")
        await k.wait_phase("fulfilling")
        assert "do not leave" in k.texts()
        await k.shot("card-03-processing")
    finally:
        terminal.step_s = 0.05
        k.rt.devices["backend"].simulator.topup_delay_s = 0.0
    await k.wait_phase("result")
    await k.shot("card-04-reversed")
    t = k.rt.state.txn
    assert (t.outcome.value, t.paid, t.refunded) == ("failed_refunded", 1500, 1500)
    # The terminal's own ledger: this payment authorised and reversed, exactly once.
    assert terminal.ledger.authorised[t.card_receipt_no] == 1500
    assert terminal.ledger.reversed[t.card_receipt_no] == 1500
    kinds = [e.kind for e in k.rt.journal.events(ref)]
    assert kinds.count("CardApproved") == 1 and kinds.count("CardReversed") == 1
    assert kinds.index("CardApproved") < kinds.index("TopUp") < kinds.index("ReverseCard")
    assert "reversed" in k.texts()


async def test_any_amount_typed_on_the_keypad_and_paper_out(kiosk):
    k = kiosk
    printer = k.rt.devices["printer"].simulator
    await to_products(k)
    await k.tap("product_globe-load-any")
    await k.wait_for(lambda: k.widget("amount_ok"), "the amount keypad")
    await k.type_digits("5")                      # ₱5 is below the minimum: OK stays off
    assert k.widget("amount_ok").disabled
    await k.type_digits("5")                      # ₱55
    assert not k.widget("amount_ok").disabled
    assert "₱55.00" in k.texts()
    await k.shot("range-01-amount")
    await k.tap("amount_ok")
    await k.wait_phase("choose_payment")
    assert k.rt.state.txn.amount == 5500
    await k.tap("demo_paper_out")
    await k.tap("pay_qr")
    await k.wait_for(lambda: k.rt.state.qr_payload, "the QR code")
    ref = k.rt.state.txn.ref
    assert "540555.00" in k.rt.state.qr_payload  # EMVCo tag 54, length 05: the amount
    await k.tap("demo_qr_pay")
    await k.wait_phase("result")
    await k.wait_for(lambda: k.rt.state.receipt_printed is False, "the printer failure")
    assert "The printer is not working" in k.texts()
    await k.shot("range-02-paper-out")
    await k.tap("show_receipt")
    await k.wait_phase("receipt")
    assert ref in k.texts() and "take a photo" in k.texts()
    await k.shot("range-03-receipt-on-screen")
    assert k.rt.journal.transaction(ref).outcome == "success"
    assert not any(ref in "\n".join(r.lines) for r in printer.receipts)


async def test_a_question_left_open_does_not_outlive_its_screen(kiosk):
    k = kiosk
    rt = k.rt
    await to_products(k)
    await k.tap("product_globe-load-any")
    await k.wait_for(lambda: k.widget("amount_ok"), "the amount keypad")
    rt.settings = replace(rt.settings, ui=replace(rt.settings.ui, idle_timeout_s=1,
                                                  answer_timeout_s=1))
    await k.wait_phase("idle", 8)                 # the customer left with the keypad open
    await k.frames(2)
    assert k.widget("amount_ok") is None and k.widget("more_time") is None
    await k.shot("timeout-05-clean-start")


@pytest.mark.parametrize("profile,notice,words", [
    ("bank", "sim.not_sim", "This is not a SIM card"),
    ("mute", "sim.mute", "Turn it over"),
    ("bad_luhn", "sim.bad_iccid", "cannot be read"),
])
async def test_wrong_cards_in_the_sim_slot_are_explained(kiosk, profile, notice, words):
    k = kiosk
    await k.wait_phase("idle")
    await k.tap(f"demo_vsim_{profile}")           # a card in the slot starts the visit
    await k.wait_for(lambda: k.rt.state.notice == notice, notice)
    assert k.phase == "identify" and words in k.texts()
    await k.shot(f"sim-{profile}")
    await k.tap("demo_vsim_remove")
    await k.wait_for(lambda: not k.rt.state.sim_present, "the card taken back")
    await k.tap("demo_vsim_pin")                  # then the right SIM (PIN on: ICCID only)
    await k.wait_phase("confirm_number")
    assert "0917•••4567" in k.texts()
    await k.tap("demo_vsim_remove")
    await k.tap("cancel")


async def test_sim_reader_lost_the_kiosk_goes_on_with_typed_numbers(kiosk, pcscd_rig):
    k = kiosk
    await k.tap("start")
    await k.wait_phase("identify")
    assert "Or insert your SIM card" in k.texts()
    pcscd_rig.stop()                              # the PC/SC service dies
    try:
        await k.wait_for(lambda: not k.rt.state.device_ok("sim_reader"), "the reader lost", 10)
        await k.frames(2)
        assert "Or insert your SIM card" not in k.texts()
        assert "Type your number on the keypad" in k.texts()
        await k.shot("sim-reader-lost")
        await k.type_digits(NUMBER)               # typing still works
        await k.tap("number_ok")
        await k.wait_phase("confirm_number")
        await k.tap("number_no")
    finally:
        pcscd_rig.start()
    await k.wait_for(lambda: k.rt.state.device_ok("sim_reader"), "the reader back", 15)
    await k.frames(2)
    assert "Or insert your SIM card" in k.texts()


async def test_a_jammed_note_reader_gives_a_voucher_and_hides_cash(kiosk):
    k = kiosk
    sim = k.rt.devices["cash"].simulator
    await to_products(k)
    await k.tap("product_globe-load_5000")
    await k.tap("pay_cash")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    ref = k.rt.state.txn.ref
    await k.tap("demo_cash_jam")                  # the next note jams while being stacked
    await k.tap("demo_note_2000")
    await k.wait_phase("result", 10)
    row = k.rt.journal.transaction(ref)
    assert (row.paid, row.voucher) == (2000, 2000)    # the note in doubt is the customer's
    text = k.texts()
    assert "The note reader stopped working." in text and "voucher" in text
    assert "Cancelled" not in text                # the customer did not cancel anything
    await k.shot("cash-fault-01-voucher")
    await k.tap("finish")
    await to_products(k)
    await k.tap("product_globe-load_2000")
    await k.wait_phase("choose_payment")
    assert k.widget("pay_cash") is None and k.widget("pay_qr") is not None
    assert "Notes cannot be taken now." in k.texts()
    await k.shot("cash-fault-02-cash-hidden")
    # Back at the start: cash is not advertised while the reader is out.
    k.rt.post(__import__("kiosk.events", fromlist=["Cancel"]).Cancel())
    await k.wait_phase("idle")
    text = k.texts()
    assert "Notes cannot be taken now." in text and "banknotes" not in text.lower()
    await k.shot("cash-fault-03-attract")
    await k.tap("demo_cash_clear")                # the technician clears the jam
    await k.wait_for(lambda: k.rt.state.device_ok("cash"), "cash back", 8)
    assert "Pay with banknotes, a bank card or a wallet QR code" in k.texts()
    await to_products(k)
    await k.tap("product_globe-load_2000")
    await k.wait_phase("choose_payment")
    assert k.widget("pay_cash") is not None
    assert sum(sim.record.stacked) >= 2000


async def test_pay_with_two_vouchers_typed_and_scanned(kiosk):
    from kivy.core.window import Window

    from kiosk import events as ev
    from kiosk import vouchers
    k = kiosk
    typed, scanned = vouchers.new_code(), vouchers.new_code()
    for code, amount in ((typed, 2000), (scanned, 3000)):   # from earlier failed top-ups
        k.rt.journal.append("K0001-999990", ev.VoucherIssued("K0001-999990", code, amount,
                                                             expires="2099-12-31"))
    await to_products(k)
    await k.tap("product_globe-load_5000")
    await k.tap("pay_voucher")
    await k.wait_phase("pay_voucher")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    ref = k.rt.state.txn.ref
    await k.type_digits(typed)                      # typed on the screen's keypad
    assert " ".join(typed[i:i + 4] for i in range(0, 16, 4)) in k.texts()
    await k.shot("voucher-01-typed")
    await k.tap("voucher_ok")
    await k.wait_for(lambda: k.rt.state.txn.paid == 2000, "the first voucher counted")
    assert "₱30.00" in k.texts()                     # still to pay
    # The second one is held to the scanner: a keyboard to the kiosk (digits, then Enter).
    Window.dispatch("on_textinput", scanned)
    await k.frames(1)
    Window.dispatch("on_key_down", 13, 0, "", [])
    await k.wait_phase("result")
    await k.shot("voucher-02-result")
    row = k.rt.journal.transaction(ref)
    assert (row.method, row.paid, row.credited, row.outcome) == ("voucher", 5000, 5000,
                                                                 "success")
    assert k.rt.devices["backend"].simulator.credits[ref] == 5000
    assert [k.rt.journal.voucher(c)["status"] for c in (typed, scanned)] == ["redeemed"] * 2
    await k.tap("finish")
    # The same voucher a second time: refused, clearly, nothing taken.
    await to_products(k)
    await k.tap("product_globe-load_2000")
    await k.tap("pay_voucher")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    await k.type_digits(typed)
    await k.tap("voucher_ok")
    await k.wait_for(lambda: k.rt.state.notice == "voucher.used", "the refusal")
    assert "already been used" in k.texts() and k.rt.state.txn.paid == 0
    await k.shot("voucher-03-used")
    await k.tap("cancel")
    await k.wait_phase("idle")
