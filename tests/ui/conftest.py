"""A real kiosk window for the UI tests, on a real X server (Xvfb, 1920x1920, so that the
window can take the size of every panel: 1280x800, 1920x1080, 1080x1920, ...) rendered by
Mesa; one window per test session, driven by touches and key presses.

Every test gets the kiosk back on the attract screen with every simulated device in its
default mood; screenshots go to tests/_artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
import pytest_asyncio

ARTIFACTS = Path(__file__).resolve().parent.parent / "_artifacts" / "screenshots"
_STATE = Path(tempfile.mkdtemp(prefix="kiosk-ui-"))

# Kivy reads its environment once, at import: set it before anything imports kivy.
os.environ["KIVY_NO_ARGS"] = "1"
os.environ["KIVY_HOME"] = str(_STATE / "kivy")
os.environ["KIVY_LOG_MODE"] = "PYTHON"
os.environ["KIVY_METRICS_DENSITY"] = "1"

FAST = 0.05    # simulated device latency in the tests (seconds)


class Kiosk:
    """Drives the real window as a customer (touches) and as the demo panel's user."""

    def __init__(self, app: Any, rt: Any) -> None:
        self.app, self.rt = app, rt
        self.shots: list[Path] = []

    @property
    def phase(self) -> str:
        return self.rt.state.phase.value

    def widget(self, action: str) -> Any:
        from kivy.core.window import Window
        for root in Window.children:          # modal dialogs sit above the app's root
            for w in root.walk():
                if getattr(w, "action", None) == action and w.get_root_window() is not None:
                    return w
        return None

    async def tap(self, action: str) -> None:
        from kivy.tests.common import UnitTestTouch
        if action.startswith("demo_note_"):
            await self.note_reader_ready()
        if action.startswith("demo_") and self.app.demo is not None:
            self.app.demo.reveal(action)          # the panel's other page, if it is there
        await self.wait_for(lambda: self.widget(action), f"a button '{action}'")
        await self.frames(1)
        # Screens rebuild their buttons on every state change: touch the one on screen now.
        w = await self.wait_for(lambda: self.widget(action), f"a button '{action}'")
        assert not w.disabled, f"button '{action}' is disabled"
        touch = UnitTestTouch(*w.to_window(*w.center))
        touch.touch_down()
        touch.touch_up()
        await self.frames(1)

    async def note_reader_ready(self) -> None:
        """A customer pushes a note in when the reader takes it: the ID-003 device must be
        idle (enabled, not still stacking the last note)."""
        from drivers.bill.id003 import Status
        sim = self.rt.devices["cash"].simulator
        await self.wait_for(lambda: sim.status() is Status.IDLING, "the note reader idle")

    async def type_digits(self, digits: str) -> None:
        for d in digits:
            await self.tap(f"key_{d}")

    async def frames(self, n: int = 2) -> None:
        from kivy.clock import Clock
        target = Clock.frames_displayed + n
        deadline = time.monotonic() + 5
        while Clock.frames_displayed < target and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def wait_for(self, pred: Callable[[], Any], what: str, timeout: float = 8.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} "
                                     f"(phase {self.phase}, notice {self.rt.state.notice!r})")
            await asyncio.sleep(0.02)

    async def wait_phase(self, phase: str, timeout: float = 8.0) -> None:
        await self.wait_for(lambda: self.phase == phase, f"phase {phase}", timeout)

    async def shot(self, name: str) -> Path:
        from kivy.core.window import Window
        await self.frames(3)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # Window.screenshot appends a counter to the name: render to a temporary name.
        made = Window.screenshot(name=str(ARTIFACTS / f"{name}_.png"))
        Path(made).replace(path)
        self.shots.append(path)
        return path

    async def resize(self, width: int, height: int) -> None:
        """The panel the kiosk runs on: the window takes this size and the app lays its
        screens out again."""
        from kivy.core.window import Window
        Window.size = (width, height)
        await self.wait_for(lambda: tuple(Window.size) == (width, height), "the new size")
        await self.wait_for(lambda: self.app.fit == self.app._wanted_fit(),
                            f"the new layout ({self.app.fit} {self.app._wanted_fit()})")
        await self.frames(3)

    def layout_problems(self) -> list[str]:
        """What a customer would see as broken: a widget outside the window (cropped), a
        text wider or taller than its widget (cut or spilling), a button too small to touch."""
        from kivy.core.window import Window
        from kivy.metrics import dp
        from kivy.uix.label import Label
        from kivy.uix.modalview import ModalView
        from kivy.uix.screenmanager import ScreenManager
        from kivy.uix.widget import Widget
        out = []
        tol = 2
        for root in Window.children:
            for w in root.walk():
                if w.get_root_window() is None or w.opacity == 0 or w.width <= 1:
                    continue
                if getattr(w, "parent", None) is not None and w.parent.opacity == 0:
                    continue
                name = f"{type(w).__name__}({(getattr(w, 'text', '') or '')[:30]!r})"
                x, y = w.to_window(w.x, w.y)
                if x < -tol or y < -tol or x + w.width > Window.width + tol or \
                        y + w.height > Window.height + tol:
                    out.append(f"{name} outside the window at {int(x)},{int(y)} "
                               f"{int(w.width)}x{int(w.height)}")
                parent = w.parent
                if (isinstance(parent, Widget) and parent is not Window
                        and not isinstance(parent, (ModalView, ScreenManager))
                        and w.height > 1):
                    px, py = parent.to_window(parent.x, parent.y)
                    if x < px - tol or y < py - tol or x + w.width > px + parent.width + tol \
                            or y + w.height > py + parent.height + tol:
                        out.append(f"{name} spills out of its {type(parent).__name__} "
                                   f"({int(x)},{int(y)} {int(w.width)}x{int(w.height)} in "
                                   f"{int(px)},{int(py)} {int(parent.width)}x"
                                   f"{int(parent.height)})")
                if isinstance(w, Label) and w.text:
                    tw, th = w.texture_size
                    if tw > w.width + tol or th > w.height + tol:
                        out.append(f"{name} text {int(tw)}x{int(th)} in {int(w.width)}x"
                                   f"{int(w.height)}")
                if getattr(w, "action", "") and not w.action.startswith("demo_") and \
                        min(w.width, w.height) < dp(44):
                    out.append(f"{name} only {int(w.width)}x{int(w.height)} to touch")
        return out

    def texts(self) -> str:
        """Every text on screen (the current screen, the top bar and any dialog)."""
        from kivy.core.window import Window
        out = []
        for root in Window.children:
            for w in root.walk():
                if getattr(w, "text", None) and w.get_root_window() is not None:
                    out.append(w.text)
        return "\n".join(out)


@pytest.fixture(scope="session")
def xserver() -> Any:
    """A private Xvfb display, big enough for a portrait 1080x1920 panel. (SDL's offscreen
    driver keeps the size the window was created with: a resized window drew partly.)"""
    import shutil
    import subprocess
    assert shutil.which("Xvfb"), "Xvfb is missing: `make setup` installs it (package xvfb)"
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-screen", "0", "1920x1920x24", "-nolisten", "tcp",
                             "-displayfd", str(write)], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    assert number, "Xvfb did not start"
    old = {k: os.environ.get(k) for k in ("DISPLAY", "SDL_VIDEODRIVER")}
    os.environ.update(DISPLAY=f":{number}", SDL_VIDEODRIVER="x11")
    yield f":{number}"
    proc.terminate()
    proc.wait(10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kiosk_session(pcscd_rig: Any, xserver: str) -> Any:
    from kiosk import config
    settings = config.load(data_dir=_STATE / "var")
    # The SIM is read through the real PC/SC stack: the session's private pcscd and its
    # vpcd reader, into which the demo panel pushes virtual cards. This kiosk keeps
    # watching that reader until the session ends, so tests/pcsc (which drive the same
    # reader with drivers of their own) must run before tests/ui, as pytest's path
    # order has them; a second vpcd reader in the same pcscd did not work.
    sim_reader = config.DeviceSettings("pcsc", {
        "reader": "^" + pcscd_rig.reader_name + "$", "poll_ms": 300,
        "demo_vpcd_port": pcscd_rig.port})
    settings = replace(settings, query_interval_s=0.05, backend_timeout_s=2,
                       devices={**settings.devices, "sim_reader": sim_reader})
    from screens.window import configure
    configure(settings, windowed=True)
    from kivy.clock import Clock

    from kiosk.runtime import Runtime
    from screens.app import KioskApp

    rt = Runtime(settings)
    rt.devices["card"].simulator.step_s = FAST    # the ZVT terminal's pace between messages
    await rt.start()
    deadline = time.monotonic() + 10              # the ID-003 acceptor resets at start
    while not rt.state.device_ok("cash") or rt.devices["cash"].ok is not True:
        assert time.monotonic() < deadline, "the note acceptor never became ready"
        await asyncio.sleep(0.05)
    app = KioskApp(rt)
    task = asyncio.ensure_future(app.async_run(async_lib="asyncio"))
    deadline = time.monotonic() + 20
    while Clock.frames_displayed < 2:
        assert time.monotonic() < deadline, "the kiosk window never drew a frame"
        assert not task.done(), f"the app stopped: {task.exception() if task.done() else ''}"
        await asyncio.sleep(0.02)
    yield Kiosk(app, rt)
    app.stop()
    await asyncio.wait_for(task, 10)
    await rt.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def kiosk(kiosk_session: Kiosk) -> Any:
    k = kiosk_session
    rt = k.rt
    d = rt.devices
    aggregator = d["backend"].simulator          # the HTTP aggregator simulator
    aggregator.set_mode("succeed")
    aggregator.subscriber_delay_s = aggregator.topup_delay_s = 0.0
    d["card"].simulator.next_outcome = "approve"
    d["card"].simulator.reversal_works = True
    d["printer"].simulator.paper = "ok"         # the ESC/POS printer behind its pty
    d["printer"].simulator.cover_open = False
    d["sim_reader"].virtual.remove()
    if k.app.demo is not None:
        k.app.demo.refresh()                  # its toggles show the devices' real moods
    settings = rt.settings
    yield k
    # Back to the attract screen for the next test, whatever this one left behind.
    rt.settings = settings
    from kiosk import events as ev
    for _ in range(4):          # a cancel may end on a result screen: then Done
        if rt.state.phase.value == "idle":
            break
        for e in (ev.Cancel(), ev.Done()):
            rt.post(e)
        try:
            await k.wait_phase("idle", 3)
        except AssertionError:
            pass
    rt.warning_until = None
    await k.frames(2)
