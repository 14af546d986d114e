"""A physical keypad: a USB numeric keypad, or the kiosk's tactile keys sending key events.

Digits go to the screen that takes digits (the number, an amount); arrows move a visible
focus between the buttons of the screen (or of the question on top of it); Enter presses
the focused button (on the number screen, with nothing focused, it continues); Backspace
deletes a digit, Delete or NumLock clears; Escape cancels. With speech on, every move says
the focused button, and the speech keys (kiosk/speech.py) repeat, stop and change the
volume. Keys (Kivy key codes) in one table: `KEYS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kivy.graphics import Color, Line
from kivy.metrics import dp
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.modalview import ModalView

from . import theme

if TYPE_CHECKING:
    from .app import KioskApp

DIGITS = {**{48 + i: str(i) for i in range(10)}, **{256 + i: str(i) for i in range(10)}}
KEYS: dict[int, str] = {
    273: "up", 274: "down", 275: "right", 276: "left",
    13: "enter", 271: "enter", 32: "enter",
    8: "del", 127: "clear", 300: "clear",
    27: "cancel",
}
# Speech keys (keypad * + - . /) are kiosk/speech.py's: Speech.key() is asked first.
KIVY_NAMES: dict[int, str] = {}


def kivy_name(key: int) -> str:
    if not KIVY_NAMES:
        from kivy.core.window import Keyboard
        KIVY_NAMES.update({code: name for name, code in Keyboard.keycodes.items()})
    return KIVY_NAMES.get(key, "")


def focusable(w: Any) -> bool:
    return (isinstance(w, ButtonBehavior) and bool(getattr(w, "action", ""))
            and not w.disabled and w.opacity > 0 and w.get_root_window() is not None
            and w.width > 0 and w.height > 0)


def in_button(w: Any) -> bool:
    p = w.parent
    while p is not None and p is not p.parent:
        if isinstance(p, ButtonBehavior):
            return True
        p = p.parent
    return False


class FocusRing:
    def __init__(self, app: KioskApp, speak: Callable[[str], None]) -> None:
        self.app = app
        self.speak = speak
        self.current: Any = None
        self._line: tuple[Any, Any, Any] | None = None

    # ------------------------------------------------------------------ what can be focused
    def scope(self) -> list[Any]:
        """The buttons the customer can reach now: the question on top, or the screen and
        the top bar (never the demo panel), in reading order."""
        from kivy.core.window import Window
        modals = [w for w in Window.children if isinstance(w, ModalView)]
        roots = [modals[0]] if modals else [self.app.screen(), self.app.topbar]
        found = [w for r in roots for w in r.walk(restrict=True) if focusable(w)]
        return sorted(found, key=lambda w: (-round(w.to_window(*w.center)[1] / dp(24)),
                                            w.to_window(*w.center)[0]))

    # ------------------------------------------------------------------ keys
    def on_key(self, _window: Any, key: int, _scancode: int, codepoint: str | None,
               _modifiers: list[str]) -> bool:
        """Window.on_key_down: True when the kiosk used the key."""
        self.app.rt.touched()
        act = self.app.speech.key(kivy_name(key) or codepoint or "")
        if act is not None:
            self.app.speech_action(act)
            return True
        if key in DIGITS or (codepoint and codepoint.isdigit() and len(codepoint) == 1):
            return self.digit(DIGITS.get(key) or str(codepoint))
        name = KEYS.get(key)
        if name is None:
            return False
        return self.command(name)

    def command(self, name: str) -> bool:
        if name in ("up", "down", "left", "right"):
            self.move(name)
        elif name == "enter":
            self.activate()
        elif name in ("del", "clear"):
            target = self.digit_target()
            if target is None:
                return False
            target.key(name)
        elif name == "cancel":
            self.press_action("cancel") or self.press_action("amount_cancel")
        return True

    def digit_target(self) -> Any:
        """Who takes typed digits now: an open amount keypad, or the screen if it has one.
        (The voucher screen takes digits itself, as a barcode scanner types them.)"""
        from kivy.core.window import Window
        for w in Window.children:
            if isinstance(w, ModalView) and hasattr(w, "key"):
                return w
        scr = self.app.screen()
        return scr if hasattr(scr, "key") else None

    def digit(self, d: str) -> bool:
        target = self.digit_target()
        if target is None:
            return False
        target.key(d)
        if self.app.speech_on:
            self.speak(d)
        return True

    # ------------------------------------------------------------------ focus
    def move(self, direction: str) -> None:
        items = self.scope()
        if not items:
            return
        if self.current not in items:
            self.set(items[0] if direction in ("down", "right") else items[-1])
            return
        self.set(self.neighbour(items, self.current, direction))

    @staticmethod
    def neighbour(items: list[Any], cur: Any, direction: str) -> Any:
        """Right and left: the next and previous button in reading order (so that one key
        alone reaches every button, row after row); up and down: the nearest button in
        that direction, or the next/previous one at the edge."""
        i = items.index(cur)
        if direction in ("left", "right"):
            return items[(i + (1 if direction == "right" else -1)) % len(items)]
        cx, cy = cur.to_window(*cur.center)
        dx, dy = {"up": (0, 1), "down": (0, -1), "left": (-1, 0), "right": (1, 0)}[direction]
        best, best_cost = None, math.inf
        for w in items:
            if w is cur:
                continue
            x, y = w.to_window(*w.center)
            ahead = (x - cx) * dx + (y - cy) * dy
            if ahead <= dp(4):
                continue
            side = abs((x - cx) * dy) + abs((y - cy) * dx)
            if side > ahead:
                continue                      # outside the 45° cone of that direction
            cost = ahead + 2 * side
            if cost < best_cost:
                best, best_cost = w, cost
        if best is not None:
            return best
        step = 1 if direction == "down" else -1
        return items[(i + step) % len(items)]

    def set(self, w: Any) -> None:
        self.clear()
        self.current = w
        with w.canvas.after:
            colour = Color(*theme.FOCUS)
            line = Line(rectangle=(w.x - dp(4), w.y - dp(4), w.width + dp(8),
                                   w.height + dp(8)), width=dp(4))
        self._line = (w, colour, line)
        w.bind(pos=self._redraw, size=self._redraw)
        if self.app.speech_on:
            self.speak(self.describe(w))

    def _redraw(self, w: Any, *_: Any) -> None:
        if self._line and self._line[0] is w:
            self._line[2].rectangle = (w.x - dp(4), w.y - dp(4), w.width + dp(8),
                                       w.height + dp(8))

    def clear(self) -> None:
        if self._line is not None:
            w, colour, line = self._line
            w.canvas.after.remove(colour)
            w.canvas.after.remove(line)
            w.unbind(pos=self._redraw, size=self._redraw)
            self._line = None
        self.current = None

    def reading(self) -> list[str]:
        """The screen (or the question on top) read aloud: its texts top to bottom, then
        its buttons, then how to use the keys."""
        from kivy.core.window import Window
        from kivy.uix.label import Label
        modals = [w for w in Window.children if isinstance(w, ModalView)]
        root = modals[0] if modals else self.app.screen()
        texts, buttons = [], []
        for w in root.walk(restrict=True):
            if focusable(w):
                buttons.append(self.label_of(w))
            elif (isinstance(w, Label) and w.text and w.opacity > 0
                  and w.get_root_window() is not None and not in_button(w)):
                texts.append((w.to_window(*w.center), w.text.replace("\n", " ")))
        texts.sort(key=lambda t: (-round(t[0][1] / dp(24)), t[0][0]))
        tr = self.app.tr
        out = [t for _, t in texts]
        if buttons:
            out.append(tr("Buttons: {names}.").format(names=", ".join(buttons)))
            out.append(tr("Arrow keys choose a button, Enter presses it."))
        return out

    @staticmethod
    def label_of(w: Any) -> str:
        texts = [c.text for c in w.walk(restrict=True) if getattr(c, "text", "")]
        return ", ".join(t.replace("\n", " ") for t in texts)

    def describe(self, w: Any) -> str:
        return self.label_of(w) + ". " + self.app.tr("Button")

    def activate(self) -> None:
        w = self.current
        if w is not None and w in self.scope():
            w.trigger_action(0)
            return
        self.clear()
        # Nothing focused: Enter continues where there is one obvious way on.
        for action in ("more_time", "number_ok", "amount_ok", "voucher_ok", "start", "finish"):
            if self.press_action(action):
                return

    def press_action(self, action: str) -> bool:
        for w in self.scope():
            if w.action == action:
                w.trigger_action(0)
                return True
        return False

    def screen_changed(self) -> None:
        """Another screen or question: the old focus is gone; the first move starts over."""
        self.clear()
