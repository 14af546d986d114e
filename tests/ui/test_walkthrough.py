"""A first-time customer's top-up, timed, in each language: the touches it takes and the
time to read each screen's text, at a first-timer's pace, stay under 60 s.

The pace: 0.7 s per digit on the keypad, 1.5 s per other touch (find it, reach it), and
reading every text of each screen (not the words on its buttons and tiles, which are
searched, not read; not the demo panel) at an adult's silent reading rate for simple
text: 238 words a minute, Chinese 255 characters a minute (Brysbaert, "How many words do
we read per minute?", 2019). The texts are measured from the real window, so a screen
that says too much, or a flow that needs too many touches, fails here."""

from __future__ import annotations

import re

import pytest

from kiosk.linebreak import is_cjk

pytestmark = pytest.mark.asyncio(loop_scope="session")

DIGIT_S, TOUCH_S = 0.7, 1.5


def reading_seconds(text: str) -> float:
    cjk = sum(1 for ch in text if is_cjk(ch) and ch.isalpha())
    words = len(re.findall(r"[A-Za-z0-9₱.,]+", text))
    return cjk / (255 / 60) + words / (238 / 60)


class Walk:
    def __init__(self, k) -> None:
        self.k, self.seconds, self.touches, self.read = k, 0.0, 0, []

    def screen_text(self) -> str:
        from kiosk.linebreak import strip_marks
        from screens.focus import in_button
        scr = self.k.app.screen()
        # What is read: the screen's texts; a button's or a tile's words are found, not read.
        texts = [w.text for w in scr.walk(restrict=True)
                 if getattr(w, "text", "") and not getattr(w, "action", "")
                 and w.opacity > 0 and not in_button(w)]
        return strip_marks(" ".join(texts))

    def reads(self) -> None:
        text = self.screen_text()
        self.read.append(text)
        self.seconds += reading_seconds(text)

    async def tap(self, action: str) -> None:
        await self.k.tap(action)
        self.touches += 1
        self.seconds += DIGIT_S if action.startswith("key_") else TOUCH_S


@pytest.mark.parametrize("lang", ["en", "zh_CN", "fil"])
async def test_a_first_top_up_takes_under_a_minute(kiosk, lang):
    k = kiosk
    w = Walk(k)
    await k.wait_phase("idle")
    # The start screen is read while walking up: the time runs from the first touch.
    await w.tap(f"lang_{lang}")
    await w.tap("start")
    await k.wait_phase("identify")
    w.reads()
    for d in "09171234567":
        await w.tap(f"key_{d}")
    await w.tap("number_ok")
    await k.wait_phase("confirm_number")
    w.reads()
    await w.tap("number_yes")
    await k.wait_for(lambda: k.rt.state.offered is not None, "the number checked")
    w.reads()
    await w.tap("product_globe-load_10000")
    await k.wait_phase("choose_payment")
    w.reads()
    await w.tap("pay_qr")
    await k.wait_for(lambda: k.rt.state.qr_payload, "the QR code")
    w.reads()
    await k.tap("demo_qr_pay")                  # on the customer's phone, not the kiosk
    await k.wait_phase("result")
    w.reads()
    await w.tap("finish")
    await k.wait_phase("idle")
    print(f"{lang}: {w.touches} touches, {w.seconds:.1f} s",
          [round(reading_seconds(t), 1) for t in w.read])
    assert w.touches <= 18
    assert w.seconds < 60, (lang, round(w.seconds, 1), w.read)
