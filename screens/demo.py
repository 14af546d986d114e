"""The developer panel (config `demo = true`): drives the simulated devices by mouse.

Everything here acts on the simulated hardware, exactly as a customer would act on the
real one (push a note, insert a SIM, pay on the phone), never on the engine directly.
"""

from __future__ import annotations

from typing import Any

from kivy.metrics import dp, sp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from kiosk.backend.simulated import DEMO_SIMS, UNKNOWN_SIM
from kiosk.catalog import mask_number
from kiosk.money import display

from . import theme
from .base import Context
from .widgets import KButton, Panel, label




def small_button(text: str, action: str, cb: Any, on: bool = False) -> KButton:
    b = KButton(text=text, style="demo_on" if on else "demo", action=action, on_press=cb)
    b.height = dp(44)
    b.font_size = sp(17)
    return b


class DemoPanel(Panel):
    def __init__(self, ctx: Context, below: bool = False, **kw: Any) -> None:
        # Beside the screens, or (portrait panels) under them, twice as many columns wide.
        self.below = below
        if below:
            kw.update(size_hint_y=None)
        else:
            kw.setdefault("width", dp(320))
            kw.update(size_hint_x=None)
        super().__init__(orientation="vertical",
                         padding=dp(10), spacing=dp(6), bg=list(theme.DEMO_BG), **kw)
        self.ctx = ctx
        head = label("DEMO PANEL", sp(22), theme.DEMO_ACCENT, bold=True)
        self.add_widget(head)
        self.add_widget(label("simulated devices · not shown on a real kiosk", sp(14),
                              theme.rgb("CCCCCC")))
        # Two pages instead of a ScrollView (its stencil costs ~200 MB under software GL):
        # what the customer does, and how the devices and services behave.
        self.page = "customer"
        self.tabs = BoxLayout(size_hint_y=None, height=dp(44), spacing=dp(5))
        self.add_widget(self.tabs)
        self.body = BoxLayout(orientation="vertical", spacing=dp(4))
        self.add_widget(self.body)
        self.feedback = label("", sp(15), theme.DEMO_ACCENT)
        self.add_widget(self.feedback)
        self.pages: dict[str, BoxLayout] = {}
        self._target = self.body
        self.refresh()

    @property
    def d(self) -> dict[str, Any]:
        return self.ctx.rt.devices

    def section(self, title: str) -> None:
        self._target.add_widget(label(title, sp(16), theme.rgb("FFFFFF"), bold=True))

    def grid(self, buttons: list[KButton], cols: int = 2) -> None:
        g = GridLayout(cols=cols * 2 if self.below else cols, spacing=dp(5),
                       size_hint_y=None)
        g.bind(minimum_height=g.setter("height"))
        for b in buttons:
            g.add_widget(b)
        self._target.add_widget(g)

    def say(self, text: str) -> None:
        self.feedback.text = text

    def show(self, page: str) -> None:
        self.page = page
        self.refresh()

    def reveal(self, action: str) -> bool:
        """Switch to the page holding the button `action` (tests and scripted demos)."""
        for page, box in self.pages.items():
            if any(getattr(w, "action", None) == action for w in box.walk()):
                if page != self.page:
                    self.show(page)
                return True
        return False

    def refresh(self, *_: Any) -> None:
        self.tabs.clear_widgets()
        for page, text in (("customer", "Customer"), ("devices", "Devices & services")):
            self.tabs.add_widget(small_button(text, f"demo_page_{page}",
                                              lambda page=page: self.show(page),
                                              on=self.page == page))
        self.pages = {"customer": BoxLayout(orientation="vertical", spacing=dp(4)),
                      "devices": BoxLayout(orientation="vertical", spacing=dp(4))}
        self._target = self.pages["customer"]
        self._customer_page()
        self._target.add_widget(Widget())
        self._target = self.pages["devices"]
        self._devices_page()
        self._target.add_widget(Widget())
        self.body.clear_widgets()
        self.body.add_widget(self.pages[self.page])

    def _customer_page(self) -> None:
        reader, cash, wallet = self.d["sim_reader"], self.d["cash"], self.d["wallet"]
        cur = self.ctx.catalog.currency
        slot = getattr(reader, "virtual", None)
        if slot is not None:
            self.section("PC/SC reader: insert a card")
            btns = [small_button(self._short(name, p), f"demo_vsim_{name}",
                                 lambda name=name: self._vsim(name))
                    for name, p in slot.profiles.items()]
            btns.append(small_button("Remove", "demo_vsim_remove", self._vsim_remove))
            self.grid(btns, cols=3)
        elif hasattr(reader, "insert"):
            self.section("SIM reader")
            btns = [small_button(f"SIM {mask_number(n)}", f"demo_sim_{i}",
                                 lambda iccid=iccid: self._sim(iccid))
                    for i, (iccid, n) in enumerate(DEMO_SIMS.items())]
            btns.append(small_button("Unknown SIM", "demo_sim_unknown",
                                     lambda: self._sim(UNKNOWN_SIM)))
            btns.append(small_button("Remove SIM", "demo_sim_remove", self._sim_remove))
            self.grid(btns)
        device = getattr(cash, "simulator", None) or cash
        if hasattr(device, "insert"):
            title = "ID-003 note reader" if device is not cash else "Note reader"
            self.section(f"{title}: insert a note")
            btns = [small_button(display(v, cur), f"demo_note_{v}",
                                 lambda v=v: self._note(v))
                    for v in cash.denominations]
            btns.append(small_button("Fake note", "demo_note_fake", self._fake_note))
            self.grid(btns, cols=3)
        wallet = getattr(wallet, "simulator", None) or wallet
        if hasattr(wallet, "pay"):
            self.section("Customer's wallet app")
            self.grid([small_button("Pay the QR", "demo_qr_pay", self._qr_pay),
                       small_button("Decline", "demo_qr_decline", self._qr_decline)])

    def _devices_page(self) -> None:
        cash, card = self.d["cash"], self.d["card"]
        backend, printer = self.d["backend"], self.d["printer"]
        device = getattr(cash, "simulator", None)
        if device is not None:
            self.section("ID-003 note reader")
            self.grid([small_button("Jam", "demo_cash_jam", device.jam_after_escrow),
                       small_button("Clear fault", "demo_cash_clear", device.clear_fault)])
        zvt_sim = getattr(card, "simulator", None)
        if zvt_sim is not None:
            self.section("ZVT card terminal: next card")
            names = {"approve": "Approved", "decline": "Declined",
                     "customer_abort": "Cust. abort", "no_answer": "No answer",
                     "slow": "Slow"}
            btns = [small_button(text, f"demo_card_{o}",
                                 lambda o=o: self._set(zvt_sim, "next_outcome", o),
                                 on=zvt_sim.next_outcome == o)
                    for o, text in names.items()]
            btns.append(small_button("Reversal OK" if zvt_sim.reversal_works else
                                     "Reversal refused", "demo_card_reversal",
                                     lambda: self._set(zvt_sim, "reversal_works",
                                                       not zvt_sim.reversal_works),
                                     on=not zvt_sim.reversal_works))
            self.grid(btns, cols=3)
        elif hasattr(card, "next_outcome"):
            self.section("Card terminal: next card is")
            self.grid([small_button(o.capitalize() + "d", f"demo_card_{o}",
                                    lambda o=o: self._set(card, "next_outcome", o),
                                    on=card.next_outcome == o)
                       for o in card.OUTCOMES])
        aggregator = getattr(backend, "simulator", None)
        if aggregator is not None:
            self.section("Aggregator (HTTP): next top-up")
            names = {"succeed": "Succeeds", "fail": "Fails", "timeout_after_commit": "Reply lost",
                     "processing": "Pending", "slow": "Slow", "5xx": "Error 500",
                     "recently_recharged": "Too soon", "insufficient_balance": "No float"}
            self.grid([small_button(label, f"demo_backend_{m}",
                                    lambda m=m: self._backend_mode(aggregator, m),
                                    on=aggregator.mode == m)
                       for m, label in names.items()], cols=3)
        elif hasattr(backend, "mode"):
            self.section("Top-up backend: next top-up")
            names = {"succeed": "Succeeds", "fail": "Fails", "timeout": "Times out"}
            self.grid([small_button(names[m], f"demo_backend_{m}",
                                    lambda m=m: self._set(backend, "mode", m),
                                    on=backend.mode == m)
                       for m in backend.MODES], cols=3)
        paper_sim = getattr(printer, "simulator", None)
        if paper_sim is not None:
            self.section("ESC/POS receipt printer")
            self.grid([small_button(text, f"demo_paper_{state}",
                                    lambda state=state: self._set(paper_sim, "paper", state),
                                    on=paper_sim.paper == state)
                       for state, text in (("ok", "Paper OK"), ("near_end", "Near end"),
                                           ("out", "Paper out"))]
                      + [small_button("Cover open" if not paper_sim.cover_open else
                                      "Close cover", "demo_printer_cover",
                                      lambda: self._set(paper_sim, "cover_open",
                                                        not paper_sim.cover_open),
                                      on=paper_sim.cover_open)], cols=3)
        elif hasattr(printer, "paper_state"):
            self.section("Receipt printer")
            self.grid([small_button("Paper OK", "demo_paper_ok",
                                    lambda: self._set(printer, "paper_state", "ok"),
                                    on=printer.paper_state == "ok"),
                       small_button("Paper out", "demo_paper_out",
                                    lambda: self._set(printer, "paper_state", "out"),
                                    on=printer.paper_state == "out")])

    def _backend_mode(self, aggregator: Any, mode: str) -> None:
        aggregator.set_mode(mode)
        self.say(f"aggregator: next top-up {mode.replace('_', ' ')}")
        self.refresh()

    def _set(self, obj: Any, attr: str, value: Any) -> None:
        setattr(obj, attr, value)
        self.say(f"{attr.replace('_', ' ')} = {value}")
        self.refresh()

    def _sim(self, iccid: str) -> None:
        self.d["sim_reader"].insert(iccid)
        self.say(f"SIM inserted (ICCID …{iccid[-4:]})")

    SHORT = {"uicc": "USIM", "classic": "Old SIM", "pin": "PIN on", "unknown": "Unknown",
             "bank": "Bank card", "bad_luhn": "Bad ICCID", "iccid20": "20 digits",
             "mute": "Upside down", "pulled": "Pulled out"}

    def _short(self, name: str, profile: Any) -> str:
        if profile.msisdn and name in ("uicc", "classic", "uicc3"):
            return f"{'USIM' if profile.kind == 'uicc' else 'SIM'} {profile.msisdn[:4]}…"
        return self.SHORT.get(name, name)

    def _vsim(self, name: str) -> None:
        try:
            self.d["sim_reader"].virtual.insert(name)
        except ConnectionError as exc:
            self.say(f"no vpcd reader: {exc}")
            return
        self.say(f"card inserted: {name}")

    def _vsim_remove(self) -> None:
        self.d["sim_reader"].virtual.remove()
        self.say("card removed")

    def _sim_remove(self) -> None:
        self.d["sim_reader"].remove()
        self.say("SIM removed")

    def _device(self) -> Any:
        cash = self.d["cash"]
        return getattr(cash, "simulator", None) or cash

    def _note(self, value: int) -> None:
        ok = self._device().insert(value)
        cur = self.ctx.catalog.currency
        self.say(f"note {display(value, cur)} inserted" if ok is not False else
                 "note pushed back: the reader is not taking notes now")

    def _fake_note(self) -> None:
        device = self._device()
        if hasattr(device, "counterfeit"):
            device.counterfeit()
            device.insert(self.d["cash"].denominations[0])
        else:
            device.insert(1)
        self.say("a counterfeit note inserted")

    def _wallet(self) -> Any:
        return getattr(self.d["wallet"], "simulator", None) or self.d["wallet"]

    def _ref(self) -> str | None:
        return self.ctx.rt.state.txn.ref

    def _qr_pay(self) -> None:
        ref = self._ref()
        ok = bool(ref) and self._wallet().pay(ref)
        self.say("wallet: paid" if ok else "wallet: no QR code to pay")

    def _qr_decline(self) -> None:
        ref = self._ref()
        ok = bool(ref) and self._wallet().decline(ref)
        self.say("wallet: declined" if ok else "wallet: no QR code to decline")
