"""A customer who cannot see the screen: a whole top-up with the keypad alone (no touch on
the kiosk's screen), in speech mode, hearing every screen and every change. What the
speech engine was given is checked, and espeak-ng's audio of it is a real WAV file."""

from __future__ import annotations

import wave
from dataclasses import replace
from pathlib import Path

import pytest

from kiosk.speech import Speech

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEY = {"up": 273, "down": 274, "right": 275, "left": 276, "enter": 13, "star": 268,
       "backspace": 8, "escape": 27, "dot": 266}


async def press(k, name: str) -> None:
    from kivy.core.window import Window
    code = KEY[name] if name in KEY else 256 + int(name)          # keypad digits
    text = name if name.isdigit() else None
    Window.dispatch("on_key_down", code, 0, text, [])
    Window.dispatch("on_key_up", code, 0)
    await k.frames(1)


async def focus_on(k, action: str, tries: int = 30) -> None:
    """Arrow keys until the visible focus is on `action` (as a customer listening would)."""
    path = []
    for _ in range(tries):
        cur = k.app.focus.current
        if cur is not None and cur.action == action:
            return
        await press(k, "right")
        path.append(getattr(k.app.focus.current, "action", None))
    raise AssertionError(f"the arrows never reached {action}: {path}")


@pytest.fixture
def speech(kiosk, tmp_path: Path):
    app = kiosk.app
    old = app.speech
    settings = replace(app.settings.speech, record_dir=tmp_path, player=("true",))
    app.speech = Speech(settings, app.settings.catalog.currency)
    yield app.speech
    app.speech.end()
    app.speech = old


def heard(speech) -> str:
    return "\n".join(text for _lang, text in speech.said)


async def test_a_top_up_with_the_keypad_alone_in_speech_mode(kiosk, speech, tmp_path):
    k = kiosk
    acceptor = k.rt.devices["cash"].simulator
    await k.wait_phase("idle")
    await press(k, "star")                                    # speech on
    assert speech.enabled
    assert "Speech is on." in heard(speech)
    assert "Top up your prepaid phone" in heard(speech)       # the screen is read
    await press(k, "enter")                                   # the one way on: start
    await k.wait_phase("identify")
    assert "Type your mobile number" in heard(speech)
    for d in "09171234567":
        await press(k, d)
    assert k.app.screen().digits == "09171234567"
    await press(k, "backspace")
    await press(k, "7")                                       # corrected a digit
    await press(k, "enter")                                   # continue
    await k.wait_phase("confirm_number")
    assert "0917 123 4567" in heard(speech)
    await focus_on(k, "number_yes")
    assert "Yes, this is my number. Button" in heard(speech)  # the focus is said
    await press(k, "enter")
    await k.wait_for(lambda: k.rt.state.offered is not None, "the number checked")
    await focus_on(k, "product_globe-load_5000")
    await k.shot("keypad-01-focus-on-a-product")
    await press(k, "enter")
    await k.wait_phase("choose_payment")
    await focus_on(k, "pay_cash")
    await press(k, "enter")
    await k.wait_for(lambda: k.rt.state.txn.ref, "a reference")
    await k.note_reader_ready()
    speech.said.clear()
    acceptor.insert(2000)                                     # the customer's hand, not a touch
    await k.wait_for(lambda: k.rt.state.txn.paid == 2000, "paid 20")
    await k.wait_for(lambda: "Still to pay" in heard(speech), "the change said")
    assert "20 pesos" in heard(speech)                        # money said as words
    for paid in (4000, 6000):                                 # 60 for 50: change 10
        await k.note_reader_ready()
        acceptor.insert(2000)
        await k.wait_for(lambda paid=paid: k.rt.state.txn.paid == paid, f"paid {paid}")
    await k.wait_phase("result")
    await k.wait_for(lambda: "Done" in heard(speech), "the result said")
    # The voucher's amount is said; its code only on request (a public place).
    code = k.rt.state.txn.voucher_code
    assert code and code not in heard(speech)
    await press(k, "dot")                                     # repeat
    await k.frames(2)
    await speech.idle()
    wav = speech.last_recording
    assert wav is not None and wav.exists()
    with wave.open(str(wav)) as w:
        assert w.getnframes() / w.getframerate() > 0.3        # real audio from espeak-ng
    await press(k, "enter")                                   # Finish
    await k.wait_phase("idle")
    assert not speech.enabled                                 # the next customer starts silent


async def test_arrows_reach_every_button_and_escape_cancels(kiosk):
    k = kiosk
    await k.wait_phase("idle")
    await press(k, "enter")
    await k.wait_phase("identify")
    seen = set()
    for _ in range(40):
        await press(k, "right")
        seen.add(k.app.focus.current.action)
    # Every key of the on-screen keypad, the switches and Cancel can be reached.
    assert {f"key_{d}" for d in "0123456789"} <= seen
    assert {"key_del", "key_clear", "cancel", "lang_zh_CN", "large_text"} <= seen
    await k.shot("keypad-02-focus-visible")
    await press(k, "escape")
    await k.wait_phase("idle")


async def test_speech_in_a_language_without_a_voice_is_english_and_says_so(kiosk, speech):
    k = kiosk
    await k.wait_phase("idle")
    await k.tap("lang_fil")
    assert k.app.tr.lang == "fil"
    await press(k, "star")
    assert k.app.tr.lang == "en"                     # what is heard is what is shown
    assert "There is no voice for your language" in heard(speech)
    assert all(lang == "en" for lang, _text in speech.said)
    await press(k, "star")                           # off again
    assert not speech.enabled


async def test_need_more_time_is_answered_with_enter(kiosk, speech):
    k = kiosk
    rt = k.rt
    await k.wait_phase("idle")
    await press(k, "star")
    await press(k, "enter")
    await k.wait_phase("identify")
    rt.settings = replace(rt.settings, ui=replace(rt.settings.ui, idle_timeout_s=1,
                                                  answer_timeout_s=20))
    await k.wait_for(lambda: k.widget("more_time"), "the question", 5)
    await k.wait_for(lambda: "Press Enter if you need more time." in heard(speech),
                     "the question said")
    await press(k, "enter")
    assert rt.warning_until is None and k.phase == "identify"
    await press(k, "escape")
    await k.wait_phase("idle")
