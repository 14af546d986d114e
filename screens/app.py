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

from kiosk.config import Settings

from kivy.app import App  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.lang import Builder  # noqa: E402
from kivy.metrics import dp, sp  # noqa: E402
from kivy.uix.boxlayout import BoxLayout  # noqa: E402
from kivy.uix.screenmanager import NoTransition, ScreenManager  # noqa: E402

from kiosk.engine import Phase, State  # noqa: E402
from kiosk.i18n import N_, Translator, language_name  # noqa: E402
from kiosk.runtime import Runtime  # noqa: E402

from . import theme  # noqa: E402
from .attract import AttractScreen  # noqa: E402
from .base import Context, KioskScreen  # noqa: E402
from .confirm import ConfirmScreen  # noqa: E402
from .identify import IdentifyScreen  # noqa: E402
from .payment import CardScreen, CashScreen, PaymentScreen, QrScreen  # noqa: E402
from .product import ProductScreen  # noqa: E402
from .result import ProcessingScreen, ReceiptScreen, ResultScreen  # noqa: E402
from .voucher import VoucherScreen  # noqa: E402
from .widgets import Dialog, KButton, Panel, label  # noqa: E402

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
    def __init__(self, app: "KioskApp") -> None:
        super().__init__(size_hint_y=None, height=dp(76), padding=(dp(20), dp(8)),
                         spacing=dp(12), bg=list(theme.TOPBAR), radius=0)
        self.app = app
        self.step = label("", theme.FS_BODY, theme.ON_PRIMARY, bold=True, halign="left")
        self.add_widget(self.step)
        languages = app.settings.ui.languages
        self.langs = BoxLayout(size_hint_x=None, spacing=dp(10),
                               width=len(languages) * dp(160))
        # Built once; every render only restyles them (no new widgets on each state change).
        self.lang_buttons: dict[str, KButton] = {}
        for lang in languages:
            b = KButton(text=language_name(lang), action=f"lang_{lang}", style="neutral",
                        on_press=lambda lang=lang: self.app.set_language(lang))
            b.height, b.size_hint_x, b.width, b.font_size = dp(60), None, dp(150), sp(26)
            self.lang_buttons[lang] = b
            self.langs.add_widget(b)
        self.add_widget(self.langs)

    def update(self, screen: str) -> None:
        tr = self.app.tr
        n = STEP_OF_SCREEN.get(screen)
        self.step.text = (tr("Step {n} of {total}: {name}").format(
            n=n, total=len(STEP_NAMES), name=tr(STEP_NAMES[n - 1])) if n
            else tr("Prepaid top-up"))
        for lang, b in self.lang_buttons.items():
            b.set_style("demo_on" if lang == tr.lang else "neutral")


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
        self.demo = None
        self.first_frame_at: float | None = None

    # Kiosk: the settings panel (F1) never opens.
    def open_settings(self, *args: Any) -> bool:
        return False

    def build(self) -> BoxLayout:
        from kivy.core.window import Window   # created on first import: after Config is set
        theme.register_fonts(self.settings.ui.cjk_font)
        Builder.load_file(str(KV))
        Window.clearcolor = theme.BG
        root = BoxLayout()
        column = BoxLayout(orientation="vertical")
        self.topbar = TopBar(self)
        column.add_widget(self.topbar)
        self.sm = ScreenManager(transition=NoTransition())
        self.screens: dict[str, KioskScreen] = {}
        for name, cls in SCREENS.items():
            scr = cls(self.ctx, name=name)
            self.screens[name] = scr
            self.sm.add_widget(scr)
        column.add_widget(self.sm)
        root.add_widget(column)
        if self.settings.demo:
            from .demo import DemoPanel
            self.demo = DemoPanel(self.ctx)
            root.add_widget(self.demo)
        Window.bind(on_touch_down=self._any_touch)
        self.rt.subscribe(self.on_state)
        Clock.schedule_interval(self._tick, 0.5)
        Window.bind(on_flip=self._first_frame)
        self.render()
        return root

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
        self.render()

    def set_language(self, lang: str) -> None:
        self.tr.set(lang)
        self.rt.touched()
        self.render()

    def render(self) -> None:
        s = self.rt.state
        name = SCREEN_OF_PHASE[s.phase]
        if name == "attract" and self.sm.current != "attract":
            # The next customer starts afresh, in the default language.
            self.tr.set(self.tr.default)
            for scr in self.screens.values():
                scr.reset()
        screen = self.screens[name]
        if self.sm.current != name:
            self._dismiss_questions()
            self.sm.current = name
        screen.update(s)
        self.topbar.update(name)
        self._update_dialog()

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
        else:
            self.dialog.body_label.text = body

    def _tick(self, _dt: float) -> None:
        if self.sm.current == "qr":
            self.screens["qr"].tick()   # type: ignore[attr-defined]
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
