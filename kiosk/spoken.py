"""What the kiosk says when its state changes, for customers who cannot see the screen.

Pure functions of engine States (no Kivy, no audio): the UI calls them and gives the lines
to kiosk/speech.Speech.say(). Every line is a speech.Line: the text in the customer's
language (through `tr`, the UI's translator, so the strings are extracted for translation
like any other), and its English source for a recorded prompt set or the fallback voice.

    changes(prev, new, tr, money)     the cash paid and still to pay, a note given back,
                                      the card terminal's words, the result, a voucher's
                                      amount (never its code), notices
    voucher_code(state, tr)           the code, only when the customer asks (KEY_CODE)
    qr_countdown(prev_left, left, tr) the wallet QR code is about to expire
    closing(left, tr, money_kept)     "This screen will close in ..." (the inactivity prompt)

`money(minor) -> str` is the UI's formatter (kiosk/money.display); speech.speakable()
turns what it writes into words.
"""

from __future__ import annotations

from collections.abc import Callable

from .engine import Outcome, Phase, State
from .i18n import N_, NOTICES
from .speech import KEY_CHARS, KEY_CODE, Line
from .speech_clips import Amount, Digits

Tr = Callable[[str], str]
MoneyText = Callable[[int], str]

QR_WARN_AT = (30, 10)          # seconds left on the QR code when the customer is told


def line(tr: Tr, msgid: str, money: MoneyText | None = None, **args: object) -> Line:
    """One Line: `tr(msgid)` with its fields filled in. Amount values are formatted with
    `money`, Digits are spaced one digit at a time, others with str(). Without fields the
    text is taken as it is (a card terminal's words may hold braces)."""
    if not args:
        return Line(tr(msgid), msgid, {}, msgid)
    shown: dict[str, object] = {}
    for key, v in args.items():
        if isinstance(v, Amount):
            shown[key] = money(int(v)) if money is not None else str(int(v))
        elif isinstance(v, Digits):
            shown[key] = v.spaced()
        else:
            shown[key] = v
    english = msgid.format(**shown)
    try:
        text = tr(msgid).format(**shown)
    except (KeyError, IndexError, ValueError):      # a broken translation: say the English
        text = english
    return Line(text, msgid, args, english)


def notice(tr: Tr, key: str) -> Line | None:
    """An engine notice ("note.rejected") in words; None for none or an unknown key."""
    msgid = NOTICES.get(key)
    return line(tr, msgid) if msgid else None


def changes(prev: State, new: State, tr: Tr, money: MoneyText) -> list[str]:
    """What to say because the state went from `prev` to `new` (often nothing)."""
    out: list[Line] = []
    p, n = prev.txn, new.txn
    same_txn = p.ref == n.ref or p.ref is None
    entered = prev.phase is not new.phase

    def say(msgid: str, **args: object) -> None:
        out.append(line(tr, msgid, money, **args))

    # ---- cash: the note being checked, what is in, what is still to pay, a note back
    if new.phase is Phase.PAY_CASH and entered:
        say(N_("Insert your banknotes"))
        say(N_("Still to pay: {amount}"), amount=Amount(n.remaining))
    if new.escrow and new.escrow != prev.escrow:
        say(N_("Checking your note of {amount}…"), amount=Amount(new.escrow))
    if same_txn and n.paid > p.paid and n.ref and Phase.PAY_CARD not in (
            prev.phase, new.phase) and Phase.PAY_QR not in (prev.phase, new.phase):
        if Phase.PAY_CASH in (prev.phase, new.phase):        # as the cash screen shows it
            say(N_("Inserted so far: {amount}"), amount=Amount(n.paid))
        if new.phase in (Phase.PAY_CASH, Phase.PAY_VOUCHER) and n.remaining:
            say(N_("Still to pay: {amount}"), amount=Amount(n.remaining))
    elif (prev.escrow and not new.escrow and n.paid == p.paid and new.notice == prev.notice
          and prev.phase is Phase.PAY_CASH):
        say(N_("Your note was given back."))

    # ---- the other ways to pay
    if new.phase is Phase.PAY_QR and new.qr_payload and not prev.qr_payload:
        say(N_("Scan to pay with your wallet"))
    if new.phase is Phase.PAY_CARD and entered:
        say(N_("Pay by card"))
    if new.phase is Phase.PAY_CARD and new.card_text and new.card_text != prev.card_text:
        for part in new.card_text.split(" - "):     # as the card screen shows it
            say(part)       # translated where it is one of screens/payment.TERMINAL_TEXTS

    # ---- the top-up
    if new.phase is Phase.FULFILLING and entered and not n.failure:
        say(N_("Topping up, please wait"))
    if new.phase is Phase.FULFILLING and n.unknown_queries and not p.unknown_queries:
        say(N_("The network is slow to answer. We are checking; your money is safe. "
            "Please do not leave."))
    if new.phase is Phase.RESULT and n.outcome is not None and (
            n.outcome is not p.outcome or not same_txn
            or prev.phase not in (Phase.RESULT, Phase.RECEIPT)):
        out += result(new, tr, money)

    # ---- whatever the screen now says in its notice line
    if new.notice and new.notice != prev.notice:
        said = notice(tr, new.notice)
        if said is not None:
            out.append(said)
    return list(out)


def result(s: State, tr: Tr, money: MoneyText) -> list[Line]:
    """The result screen in words: what happened to the money and, if there is one, the
    voucher's amount and how to hear its code (the code is not read unasked: the kiosk
    stands in a public place)."""
    t = s.txn
    out: list[Line] = []

    def say(msgid: str, **args: object) -> None:
        out.append(line(tr, msgid, money, **args))

    reason = NOTICES.get(t.failure) if t.failure not in ("", "change") else None
    if t.outcome is Outcome.SUCCESS:
        say(N_("Done! Your top-up was sent"))
    elif t.outcome is Outcome.PENDING:
        say(N_("Your top-up is being processed"))
    elif t.outcome is Outcome.FAILED_REFUNDED or (
            t.outcome is Outcome.CANCELLED and t.refunded):
        say(N_("Your number was not topped up"))
        if reason:
            say(reason)
        say(N_("Your card payment of {amount} was reversed: nothing was charged."),
            amount=Amount(t.refunded))
    elif t.outcome is Outcome.CANCELLED and t.failure in ("", "cancelled"):
        say(N_("Cancelled"))
    else:
        say(N_("Your number was not topped up"))
        if reason:
            say(reason)
        say(N_("Your money is safe: it is kept for you as a voucher."))
    if t.voucher_code:
        amount = Amount(t.voucher or (t.paid - t.credited))
        if t.voucher_held:
            say(N_("Voucher {amount}, valid only if this top-up fails"), amount=amount)
        elif t.credited:
            say(N_("Your change: a voucher for {amount}"), amount=amount)
        else:
            say(N_("Your voucher for {amount}"), amount=amount)
        say(N_("To hear the voucher code, press {key}."), key=KEY_CHARS[KEY_CODE])
    if s.sim_present:
        say(N_("Do not forget your SIM card!"))
    return out


def voucher_code(s: State, tr: Tr) -> list[str]:
    """The voucher's code, digit by digit: only when the customer presses KEY_CODE on the
    result or receipt screen. Nothing when there is no voucher."""
    t = s.txn
    if not t.voucher_code or s.phase not in (Phase.RESULT, Phase.RECEIPT):
        return []
    return [line(tr, N_("Your voucher code is {code}."), code=Digits(t.voucher_code))]


def qr_countdown(prev_left: float | None, left: float, tr: Tr,
                 warn_at: tuple[int, ...] = QR_WARN_AT) -> list[str]:
    """Called every tick of the QR screen with the seconds left before (None at the first
    tick) and now: a warning when `left` crosses one of `warn_at`."""
    for mark in warn_at:
        if left <= mark and (prev_left is None or prev_left > mark) and left > 0:
            if prev_left is None and left < mark:
                continue        # the screen was opened late: only the marks still ahead
            return [line(tr, N_("{n} seconds left to pay."), n=mark)]
    return []


def closing(left: int, tr: Tr, money_kept: bool = False) -> list[str]:
    """The inactivity prompt ("Need more time?") when it opens: said once, not each second."""
    out = [line(tr, N_("Need more time?")),
           line(tr, N_("This screen will close in {n} s."), n=left)]
    if money_kept:
        out.append(line(tr, N_("The money you inserted will be kept for you as a voucher.")))
    return list(out)
