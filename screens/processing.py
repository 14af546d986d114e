"""Processing: the customer has paid and the top-up is on its way to the operator.

The screen may stay up for a while (a slow operator, status look-ups), so it is cheap to
show: without a GPU, Kivy redraws the whole window through Mesa's software renderer for
any change on screen, about 0.1 s of CPU a frame on a 2-core machine (measured with
benchmarks/ui_soak.py: docs/performance.md). A text changed every 0.4 s (the earlier
"● ○ ○") kept a third of a core busy; an opacity Animation made the process grow by
~500 MB/s. Here three dots drawn with canvas instructions (no text, no texture made or
uploaded) light one after the other, one step every STEP_S seconds; the texts change
only when the state does.
"""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.graphics import Color, Ellipse
from kivy.metrics import dp
from kivy.uix.anchorlayout import AnchorLayout
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from kiosk.catalog import mask_number
from kiosk.engine import State

from . import theme
from .base import KioskScreen
from .widgets import label


class Pulse(Widget):
    """Three dots, one of them lit: a small widget drawn with six canvas instructions,
    stepped by changing two colours."""

    DOTS = 3

    def __init__(self, dot: float, gap: float, lit: Any, dim: Any, **kw: Any) -> None:
        super().__init__(size_hint=(None, None), size=(self.DOTS * dot + (self.DOTS - 1) * gap,
                                                        dot), **kw)
        self.dot, self.gap = dot, gap
        self.lit, self.dim = tuple(lit), tuple(dim)
        self.step = 0
        self.colors: list[Color] = []
        self.dots: list[Ellipse] = []
        with self.canvas:
            for i in range(self.DOTS):
                self.colors.append(Color(rgba=self.lit if i == 0 else self.dim))
                self.dots.append(Ellipse(size=(dot, dot), segments=48))
        self.bind(pos=self._place)
        self._place()

    def _place(self, *_: Any) -> None:
        for i, e in enumerate(self.dots):
            e.pos = (self.x + i * (self.dot + self.gap), self.y)

    def show(self, step: int) -> None:
        """Light dot `step` (modulo the number of dots); nothing changes if it is lit."""
        step %= self.DOTS
        if step == self.step:
            return
        self.colors[self.step].rgba = self.dim
        self.colors[step].rgba = self.lit
        self.step = step


class ProcessingScreen(KioskScreen):
    STEP_S = 2.0          # one change on screen every STEP_S seconds while it is shown

    def build(self) -> None:
        self.root.add_widget(BoxLayout())
        self.what = label("", theme.FS_TITLE)
        self.root.add_widget(self.what)
        dot = max(dp(16), theme.FS_HUGE * 0.5)
        self.pulse = Pulse(dot, dot * 0.8, lit=theme.PRIMARY, dim=theme.NEUTRAL_DOWN)
        row = AnchorLayout(size_hint_y=None, height=dot * 2.5)
        row.add_widget(self.pulse)
        self.root.add_widget(row)
        self.wait = label("", theme.FS_BODY, theme.MUTED)
        self.root.add_widget(self.wait)
        self.root.add_widget(BoxLayout())
        self._stepper: Any = None

    def on_enter(self, *args: Any) -> None:
        self.pulse.show(0)
        if self._stepper is None:
            self._stepper = Clock.schedule_interval(self._next, self.STEP_S)

    def on_leave(self, *args: Any) -> None:
        if self._stepper is not None:
            self._stepper.cancel()
            self._stepper = None

    def _next(self, _dt: float) -> None:
        self.pulse.show(self.pulse.step + 1)

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Topping up, please wait")
        p = self.ctx.catalog.product(s.txn.product_id) if s.txn.product_id else None
        self.what.text = _("{product} for {number}").format(
            product=p.label(self.ctx.tr.lang) if p else "", number=mask_number(s.txn.msisdn))
        if s.txn.unknown_queries:
            self.wait.text = _("The network is slow to answer. We are checking; "
                               "your money is safe. Please do not leave.")
        else:
            self.wait.text = _("Your payment was received. Please do not leave.")
        self.set_footer([])
