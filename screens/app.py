"""The Kivy application: one window, a top bar with the language switch, one screen per
engine phase, the "Need more time?" question, and the demo panel when configured.

Kivy runs on the same asyncio loop as the runtime (App.async_run), so the engine's
listeners are called on the UI thread and nothing here waits on a device or a backend.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.metrics import dp, sp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager

from kiosk import events as ev
from kiosk import spoken
from kiosk.config import Settings
from kiosk.engine import Phase, State
from kiosk.i18n import N_, Translator, language_name
from kiosk.runtime import Runtime
from kiosk.speech import Speech

from . import theme
from .attract import AttractScreen
from .base import Context, KioskScreen
from .confirm import ConfirmScreen
from .focus import FocusRing
from .identify import IdentifyScreen
from .payment import CardScreen, CashScreen, PaymentScreen, QrScreen
from .processing import ProcessingScreen
from .product import ProductScreen
from .result import ReceiptScreen, ResultScreen
from .sound import beep
from .voucher import VoucherScreen
from .widgets import Dialog, KButton, Panel, label

KV = Path(__file__).with_name("widgets.kv")

SCREEN_OF_PHASE = {
    Phase.IDLE: "attract", Phase.IDENTIFY: "identify", Phase.LOOKUP: "identify",
    Phase.CONFIRM_NUMBER: "confirm", Phase.CHOOSE_PRODUCT: "product",
    Phase.CHOOSE_PAYMENT: "payment", Phase.PAY_CASH: "cash", Phase.PAY_QR: "qr",
    Phase.PAY_CARD: "card", Phase.PAY_VOUCHER: "voucher", Phase.FULFILLING: "processing",
    Phase.RESULT: "result",
    Phase.RECEIPT: "receipt",
}
SCREENS: dict[str, type[KioskScreen]] = {
    "attract": AttractScreen, "identify": IdentifyScreen, "confirm": ConfirmScreen,
    "product": ProductScreen, "payment": PaymentScreen, "cash": CashScreen, "qr": QrScreen,
    "card": CardScreen, "processing": ProcessingScreen, "result": ResultScreen,
    "receipt": ReceiptScreen, "voucher": VoucherScreen,
}
STEP_OF_SCREEN = {"identify": 1, "confirm": 1, "product": 2, "payment": 3, "cash": 3,
                  "qr": 3, "card": 3, "voucher": 3, "processing": 4, "result": 4, "receipt": 4}
STEP_NAMES = (N_("Your number"), N_("Product"), N_("Payment"), N_("Top-up"))


class TopBar(Panel):
    """Where the visit stands, and the customer's switches: language, large text, high
    contrast. On a portrait panel the switches get a row of their own."""

    def __init__(self, app: KioskApp) -> None:
        rows = 2 if theme.PORTRAIT else 1
        super().__init__(orientation="vertical", size_hint_y=None, height=dp(72) * rows,
                         padding=(dp(16), dp(6)), spacing=dp(6), bg=list(theme.TOPBAR),
                         radius=0)
        self.app = app
        # The bar keeps its size in large text (the switches must stay where they were).
        self.step = label("", sp(26), theme.rgb("FFFFFF"), bold=True, halign="left")
        switches = BoxLayout(spacing=dp(8))
        # Built once; every render only restyles them (no new widgets on each state change).
        self.lang_buttons: dict[str, KButton] = {}
        for lang in app.settings.ui.languages:
            b = self._switch(language_name(lang), f"lang_{lang}",
                             lambda lang=lang: self.app.set_language(lang), dp(122))
            self.lang_buttons[lang] = b
        self.large = self._switch("A+", "large_text", self.app.toggle_large, dp(70))
        self.contrast = self._switch("◐", "high_contrast", self.app.toggle_contrast, dp(70))
        self.large.font_name = self.contrast.font_name = "DejaVuSans"
        for b in (self.large, self.contrast, *self.lang_buttons.values()):
            switches.add_widget(b)
        switches.size_hint_x = None
        switches.width = sum(b.width for b in switches.children) + dp(8) * (
            len(switches.children) - 1)
        if rows == 2:
            self.add_widget(self.step)
            line = BoxLayout()
            line.add_widget(BoxLayout())
            line.add_widget(switches)
            self.add_widget(line)
        else:
            line = BoxLayout(spacing=dp(12))
            line.add_widget(self.step)
            line.add_widget(switches)
            self.add_widget(line)

    @staticmethod
    def _switch(text: str, action: str, cb: Any, width: float) -> KButton:
        b = KButton(text=text, action=action, style="neutral", on_press=cb)
        b.height, b.size_hint_x, b.width, b.font_size = dp(58), None, width, sp(22)
        b.pos_hint = {"center_y": 0.5}
        return b

    def update(self, screen: str) -> None:
        tr = self.app.tr
        n = STEP_OF_SCREEN.get(screen)
        self.step.text = (tr("Step {n} of {total}: {name}").format(
            n=n, total=len(STEP_NAMES), name=tr(STEP_NAMES[n - 1])) if n
            else tr("Prepaid top-up"))
        for lang, b in self.lang_buttons.items():
            b.set_style("demo_on" if lang == tr.lang else "neutral")
        self.large.set_style("demo_on" if theme.LARGE else "neutral")
        self.contrast.set_style("demo_on" if theme.CONTRAST else "neutral")


class KioskApp(App):
    title = "Top-up kiosk"

    def __init__(self, rt: Runtime, **kw: Any) -> None:
        super().__init__(**kw)
        self.rt = rt
        self.settings: Settings = rt.settings
        ui = self.settings.ui
        self.tr = Translator(ui.languages, ui.default_language)
        self.ctx = Context(rt, self.tr)
        self.dialog: Dialog | None = None
        self.demo: Any = None
        self.speech = Speech(self.settings.speech, self.settings.catalog.currency)
        self.focus = FocusRing(self, self.speak)
        self._heard: State | None = None          # the state speech last spoke about
        self._qr_left: int | None = None
        self.first_frame_at: float | None = None

    # Kiosk: the settings panel (F1) never opens.
    def open_settings(self, *args: Any) -> bool:
        return False

    def build(self) -> BoxLayout:
        from kivy.core.window import Window  # created on first import: after Config is set
        theme.register_fonts(self.settings.ui.cjk_font)
        Builder.load_file(str(KV))
        ui = self.settings.ui
        self.large, self.contrast = ui.large_text, ui.high_contrast
        self.fit: theme.Fit | None = None
        self.base = BoxLayout()
        self._lay_out()
        Window.bind(on_touch_down=self._any_touch, on_resize=self._resized,
                    on_key_down=self.focus.on_key)
        self.rt.subscribe(self.on_state)
        Clock.schedule_interval(self._tick, 0.5)
        Window.bind(on_flip=self._first_frame)
        return self.base

    def _wanted_fit(self) -> theme.Fit:
        from kivy.core.window import Window
        ui = self.settings.ui
        return theme.fit(Window.width, Window.height, demo=bool(self.settings.demo),
                         large=self.large, contrast=self.contrast,
                         panel_inches=ui.panel_inches, scale=ui.scale)

    def _lay_out(self, carry: bool = True) -> None:
        """Build every screen for the window's size and the customer's modes. Called at
        start and again when the panel, its orientation or a mode changes; the state
        lives in the runtime, so the new screens show exactly where the customer was."""
        from kivy.core.window import Window
        self.fit = self._wanted_fit()
        theme.apply(self.fit)
        Window.clearcolor = theme.BG
        old = getattr(self, "screens", {})
        memory = {name: scr.memory() for name, scr in old.items()} if carry else {}
        if old and self.sm.current in old:
            old[self.sm.current].dispatch("on_leave")   # its timers and key bindings
        if self.dialog is not None:
            self.dialog.dismiss()
            self.dialog = None
        self._dismiss_questions()
        self.base.clear_widgets()
        self.base.orientation = "vertical" if self.fit.demo_below else "horizontal"
        column = BoxLayout(orientation="vertical")
        self.topbar = TopBar(self)
        column.add_widget(self.topbar)
        self.sm = ScreenManager(transition=NoTransition())
        self.screens: dict[str, KioskScreen] = {}
        for name, cls in SCREENS.items():
            scr = cls(self.ctx, name=name)
            scr.restore(memory.get(name, {}))
            self.screens[name] = scr
            self.sm.add_widget(scr)
        column.add_widget(self.sm)
        self.base.add_widget(column)
        self.demo = None
        if self.settings.demo:
            from .demo import DemoPanel
            self.demo = (DemoPanel(self.ctx, height=self.fit.demo_px, below=True)
                         if self.fit.demo_below else DemoPanel(self.ctx, width=self.fit.demo_px))
            self.base.add_widget(self.demo)
        logging.getLogger("kiosk.ui").info(
            "layout: %dx%d px, %s, %.2f px/dp%s%s", Window.width, Window.height,
            "portrait" if self.fit.portrait else "landscape", self.fit.scale,
            ", large text" if self.fit.large else "", ", high contrast" if self.fit.contrast
            else "")
        self.render()

    def _resized(self, *_: Any) -> None:
        if self._wanted_fit() != self.fit:
            Clock.unschedule(self._relayout)
            Clock.schedule_once(self._relayout, 0.1)     # once, after a burst of resizes

    def _relayout(self, *_: Any) -> None:
        if self._wanted_fit() != self.fit:
            self._lay_out()

    def toggle_large(self) -> None:
        self.large = not self.large
        self.rt.touched()
        self._lay_out()

    def toggle_contrast(self) -> None:
        self.contrast = not self.contrast
        self.rt.touched()
        self._lay_out()

    def _any_touch(self, *_: Any) -> bool:
        self.rt.touched()
        return False

    def _first_frame(self, window: Any) -> None:
        """Called after the first frame reached the screen (the window's buffer flip)."""
        window.unbind(on_flip=self._first_frame)
        self.first_frame_at = time.monotonic()
        logging.getLogger("kiosk.ui").info("attract screen shown: kiosk %s ready",
                                           self.settings.kiosk_id)

    # ------------------------------------------------------------------ rendering
    def on_state(self, state: State) -> None:
        before = self.sm.current
        self.render()
        if self.speech.enabled and self.sm.current == before and self._heard is not None:
            lines = spoken.changes(self._heard, state, self.tr, self.ctx.money)
            if lines:
                self.speech.say(lines, self.tr.lang)
        self._heard = state

    # ------------------------------------------------------------------ speech
    @property
    def speech_on(self) -> bool:
        return self.speech.enabled

    def speak(self, text: str | list[str]) -> None:
        self.speech.say(text, self.tr.lang)

    def speech_action(self, act: str) -> None:
        """A speech key was pressed (kiosk/speech.py did the volume and the repeat)."""
        if act == "start":
            voices = self.speech.settings.voices
            if self.tr.lang not in voices and self.tr.lang not in self.speech.clips:
                # No voice for this language: speech mode speaks the fallback language,
                # and the screen follows, so that what is heard is what is shown.
                self.tr.set(self.speech.settings.fallback_language)
                self.rt.post(ev.ChooseLanguage(self.tr.lang))
                self.render()
                self.speak([self.tr("Speech is on."), self.tr(
                    "There is no voice for your language: the kiosk speaks and shows "
                    "English."), *self.focus.reading()])
                return
            self.speak([self.tr("Speech is on."), *self.focus.reading()])
        elif act == "code":
            self.speak(spoken.voucher_code(self.rt.state, self.tr))


    def set_language(self, lang: str) -> None:
        self.tr.set(lang)
        self.rt.touched()
        self.rt.post(ev.ChooseLanguage(lang))     # for the receipt and the voice
        self.render()

    def render(self) -> None:
        s = self.rt.state
        name = SCREEN_OF_PHASE[s.phase]
        if name == "attract" and self.sm.current != "attract":
            # The next customer starts afresh, in the default language and modes.
            self.tr.set(self.tr.default)
            ui = self.settings.ui
            if (self.large, self.contrast) != (ui.large_text, ui.high_contrast):
                self.large, self.contrast = ui.large_text, ui.high_contrast
                self._lay_out(carry=False)         # nothing of the last visit is kept
                return
            for scr in self.screens.values():
                scr.reset()
        screen = self.screens[name]
        changed = self.sm.current != name
        if changed:
            self._dismiss_questions()
            self.focus.screen_changed()
            self.sm.current = name
            if name == "attract":
                self.speech.end()                 # the next customer starts without it
        screen.update(s)
        self.topbar.update(name)
        self._update_dialog()
        if changed and self.speech.enabled:
            self.speak(self.focus.reading())

    def _dismiss_questions(self) -> None:
        """A question asked on one screen (amount keypad, cancel?) never outlives it."""
        from kivy.core.window import Window
        from kivy.uix.modalview import ModalView
        for w in list(Window.children):
            if isinstance(w, ModalView) and w is not self.dialog:
                w.dismiss(animation=False)

    def _update_dialog(self) -> None:
        until = self.rt.warning_until
        if until is None:
            if self.dialog is not None:
                self.dialog.dismiss()
                self.dialog = None
            return
        left = max(0, int(until - time.monotonic() + 0.999))
        body = self.tr("This screen will close in {n} s.").format(n=left)
        if self.rt.state.phase in (Phase.PAY_CASH, Phase.PAY_VOUCHER) and self.rt.state.txn.paid:
            body += "\n" + self.tr("The money you inserted will be kept for you as a voucher.")
        if self.dialog is None:
            self.dialog = Dialog(self.tr("Need more time?"), body,
                                 [(self.tr("Yes, I need more time"), "primary", "more_time",
                                   self.rt.touched)])
            self.dialog.open(animation=False)
            self.focus.screen_changed()
            # Heard as well as seen: a timed prompt warns by sound too.
            if self.speech.enabled:
                kept = bool(self.rt.state.phase in (Phase.PAY_CASH, Phase.PAY_VOUCHER)
                            and self.rt.state.txn.paid)
                self.speak([*spoken.closing(left, self.tr, kept),
                            self.tr("Press Enter if you need more time.")])
            else:
                beep()
        else:
            self.dialog.body_label.text = body

    def _tick(self, _dt: float) -> None:
        if self._wanted_fit() != self.fit:        # a resize some window systems do not tell
            self._relayout()
        if self.sm.current == "qr":
            self.screens["qr"].tick()   # type: ignore[attr-defined]
            s = self.rt.state
            left = max(0, int(s.qr_expires_at - time.time())) if s.qr_expires_at else None
            if self.speech.enabled and left is not None:
                lines = spoken.qr_countdown(self._qr_left, left, self.tr)
                if lines:
                    self.speak(lines)
            self._qr_left = left
        if self.rt.warning_until is not None or self.dialog is not None:
            self._update_dialog()

    # ------------------------------------------------------------------ helpers for tests
    def screen(self) -> KioskScreen:
        return self.screens[self.sm.current]


async def run_async(settings: Settings, windowed: bool = False) -> int:
    rt = Runtime(settings)
    await rt.start()
    app = KioskApp(rt)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # systemd stops the kiosk with SIGTERM: leave the loop, close the journal cleanly.
        loop.add_signal_handler(sig, app.stop)
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        await rt.stop()
    return 0


def run(settings: Settings, windowed: bool = False) -> int:
    """Call screens.window.configure(settings, windowed) before importing this module."""
    return asyncio.run(run_async(settings, windowed))
