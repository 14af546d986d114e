"""What the UI benchmarks share: a real kiosk window (SDL's offscreen driver, real pixels
with Mesa) on the runtime's asyncio loop, driven by touches as a customer drives it, and
the process figures (RSS from /proc, CPU time, frames drawn).

Not a benchmark itself (the leading underscore): benchmarks/startup.py and
benchmarks/ui_soak.py import it. Kivy reads its environment once, at import: a benchmark
runs the window in a child process whose environment comes from `child_env`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NUMBER = "09171234567"
RESULT = "RESULT "          # the line a child prints its figures on, as JSON


# ---------------------------------------------------------------------- processes
def child_env(kivy_home: Path, data_dir: Path | None = None) -> dict[str, str]:
    """The environment of a child that opens a window: offscreen SDL unless a display is
    set, Kivy's arguments and log file kept out of the way."""
    env = dict(os.environ)
    env.setdefault("SDL_VIDEODRIVER", "offscreen" if not env.get("DISPLAY") else "x11")
    env["KIVY_NO_ARGS"] = "1"
    env["KIVY_LOG_MODE"] = "PYTHON"
    env["KIVY_HOME"] = str(kivy_home)
    if data_dir is not None:
        env["BENCH_DATA_DIR"] = str(data_dir)
    return env


def run_child(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run `python <args>`, pass its progress lines through as they come and return the JSON
    of its RESULT line; killed after `timeout` s; its error output shown when it fails."""
    import tempfile
    import threading
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                                stderr=err, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        result = None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(RESULT):
                    result = json.loads(line[len(RESULT):])
                else:
                    print(line, end="", flush=True)
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0 or result is None:
            err.seek(0)
            sys.stderr.write(err.read()[-4000:])
            raise RuntimeError(f"{' '.join(args[:2])}: exit {proc.returncode}"
                               + (" (killed: over its time limit)" if proc.returncode == -9 else "")
                               + ("" if result else ", no result line"))
        return result


def print_result(figures: dict[str, Any]) -> None:
    print(RESULT + json.dumps(figures), flush=True)


def rss_mb() -> float:
    """Resident set size now (VmRSS), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Flips:
    """Counts the frames the window really drew (buffer flips), not the clock's ticks:
    Kivy redraws only when a canvas changed."""

    def __init__(self) -> None:
        from kivy.core.window import Window
        self.n = 0
        Window.bind(on_flip=self._flip)

    def _flip(self, *_: Any) -> None:
        self.n += 1


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds so far by group of threads: the main thread, Mesa's llvmpipe rasterizer
    threads ("GL"), each Python thread by name (device drivers, simulators, HTTP
    servers), and the rest ("other": SDL, libraries). Clock-tick resolution (10 ms)."""
    import re
    import threading
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: re.sub(r"[-_ ]\d+$", "", t.name) for t in threading.enumerate()}
    main = threading.main_thread().native_id
    out: dict[str, float] = {}
    for task in os.scandir("/proc/self/task"):
        try:
            with open(f"{task.path}/stat") as f:
                stat = f.read()
        except OSError:
            continue                          # the thread ended meanwhile
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick     # utime + stime
        tid = int(task.name)
        group = ("main" if tid == main else "GL" if comm.startswith("llvmpipe")
                 else names.get(tid) or "other")
        out[group] = out.get(group, 0.0) + cpu
    return out


@dataclass
class CpuSample:
    wall_s: float
    process_s: float      # CPU of every thread of the process (user + system)
    main_s: float         # CPU of the main thread: Kivy, the asyncio loop, the engine
    flips: int
    threads: dict[str, float]     # CPU by group of threads (thread_cpu_s)


class CpuMeter:
    """CPU share of one core over a stretch of wall time: process and main thread."""

    def __init__(self, flips: Flips | None = None) -> None:
        self.flips = flips
        self.reset()

    def reset(self) -> None:
        self.t0, self.p0, self.m0 = time.monotonic(), time.process_time(), time.thread_time()
        self.f0 = self.flips.n if self.flips else 0
        self.th0 = thread_cpu_s()

    def sample(self) -> CpuSample:
        """Since the last reset (call from the main thread)."""
        th = thread_cpu_s()
        return CpuSample(time.monotonic() - self.t0, time.process_time() - self.p0,
                         time.thread_time() - self.m0,
                         (self.flips.n if self.flips else 0) - self.f0,
                         {k: v - self.th0.get(k, 0.0) for k, v in th.items()})

    @staticmethod
    def shares(s: CpuSample) -> dict[str, Any]:
        w = max(s.wall_s, 1e-9)
        return {"process_cpu": s.process_s / w, "main_cpu": s.main_s / w,
                "flips_per_s": s.flips / w, "wall_s": s.wall_s,
                "threads": {k: round(v / w, 4) for k, v in
                            sorted(s.threads.items(), key=lambda kv: -kv[1]) if v > 0}}


async def measure_idle(seconds: float, flips: Flips | None) -> dict[str, Any]:
    """CPU share while nothing happens (the loop keeps running)."""
    meter = CpuMeter(flips)
    await asyncio.sleep(seconds)
    return CpuMeter.shares(meter.sample())


def gl_renderer() -> str:
    """'llvmpipe (LLVM 15.0.6, 256 bits), 4.5 (Compatibility Profile) Mesa 22.3.6'."""
    from kivy.graphics.opengl import GL_RENDERER, GL_VERSION, glGetString

    def text(name: int) -> str:
        value = glGetString(name)
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return f"{text(GL_RENDERER)}, {text(GL_VERSION)}"


# ---------------------------------------------------------------------- the empty window
def empty_window_child(idle_s: float, settle_s: float) -> None:
    """The floor: an empty Kivy App (one Widget) on the same driver, window size and GL
    stack as the kiosk, measured the same way: RSS after it settled, idle CPU."""
    from kiosk import config
    settings = config.load(data_dir=os.environ.get("BENCH_DATA_DIR") or None)
    from screens.window import configure
    configure(settings, windowed=True)
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.uix.widget import Widget

    figures: dict[str, Any] = {}

    class Empty(App):
        def build(self) -> Widget:
            return Widget()

    async def main() -> None:
        app = Empty()
        task = asyncio.ensure_future(app.async_run(async_lib="asyncio"))
        deadline = time.monotonic() + 60
        while Clock.frames_displayed < 2:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the empty window never drew a frame")
            await asyncio.sleep(0.01)
        flips = Flips()
        figures["gl"] = gl_renderer()
        await asyncio.sleep(settle_s)
        figures["rss_mb"] = rss_mb()
        figures["idle"] = await measure_idle(idle_s, flips)
        figures["rss_after_idle_mb"] = rss_mb()
        figures["peak_rss_mb"] = peak_rss_mb()
        app.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    print_result(figures)


# ---------------------------------------------------------------------- the kiosk window
async def start_kiosk(settings: Any, fast_card: bool = True) -> Kiosk:
    """The same wiring as `kiosk run` (runtime, then the app on its loop), once the note
    acceptor is ready and the window drew its first frames."""
    from screens.window import configure
    configure(settings, windowed=True)
    from kivy.clock import Clock

    from kiosk.runtime import Runtime
    from screens.app import KioskApp

    rt = Runtime(settings)
    if fast_card and hasattr(rt.devices["card"], "simulator"):
        rt.devices["card"].simulator.step_s = 0.05   # the ZVT terminal's pace between messages
    await rt.start()
    app = KioskApp(rt)
    task = asyncio.ensure_future(app.async_run(async_lib="asyncio"))
    k = Kiosk(app, rt, task)
    deadline = time.monotonic() + 60
    while Clock.frames_displayed < 2 or app.first_frame_at is None:
        if task.done():
            raise RuntimeError(f"the app stopped: {task.exception()}")
        if time.monotonic() > deadline:
            raise RuntimeError("the kiosk window never drew a frame")
        await asyncio.sleep(0.005)
    await k.wait_for(lambda: rt.state.device_ok("cash") and rt.devices["cash"].ok is True,
                     "the note acceptor ready", 20)
    return k


def bench_settings(data_dir: Path, **changes: Any) -> Any:
    """The default configuration (every device simulated, demo panel shown) on `data_dir`;
    the provider's status look-ups without a pause (nothing is slow in the simulator)."""
    from kiosk import config
    settings = config.load(data_dir=data_dir)
    return replace(settings, **changes) if changes else settings


class Kiosk:
    """Drives the real window as a customer (touches) and as the demo panel's user."""

    def __init__(self, app: Any, rt: Any, task: asyncio.Future[Any]) -> None:
        self.app, self.rt, self.task = app, rt, task
        self.flips = Flips()
        self._tapped: dict[str, weakref.ref[Any]] = {}    # action -> the button last touched

    @property
    def phase(self) -> str:
        return str(self.rt.state.phase.value)

    async def stop(self) -> None:
        self.app.stop()
        await asyncio.wait_for(self.task, 10)
        await self.rt.stop()

    def widget(self, action: str) -> Any:
        from kivy.core.window import Window
        for root in Window.children:           # modal dialogs sit above the app's root
            for w in root.walk():
                if getattr(w, "action", None) == action and w.get_root_window() is not None:
                    return w
        return None

    async def wait_for(self, pred: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if self.task.done():
                raise RuntimeError(f"the app stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what} (phase {self.phase}, "
                                   f"notice {self.rt.state.notice!r})")
            await asyncio.sleep(0.01)

    async def wait_phase(self, phase: str, timeout: float = 15.0) -> None:
        await self.wait_for(lambda: self.phase == phase, f"phase {phase}", timeout)

    async def frames(self, n: int = 1) -> None:
        from kivy.clock import Clock
        target = Clock.frames_displayed + n
        await self.wait_for(lambda: Clock.frames_displayed >= target, f"{n} frames", 5)

    async def tap(self, action: str) -> None:
        """Touch the button `action` on screen now (screens rebuild theirs on updates)."""
        from kivy.tests.common import UnitTestTouch
        if action.startswith("demo_") and self.app.demo is not None:
            self.app.demo.reveal(action)           # the panel's other page, if it is there
        deadline = time.monotonic() + 15
        last = self._tapped.get(action)
        w: Any = await self.wait_for(lambda: self.widget(action), f"a button '{action}'")
        while last is None or last() is not w:
            # A new button (screens rebuild theirs on updates) is laid out at the next
            # frame: touch it once it is the same button after a frame.
            last = weakref.ref(w)
            await self.frames(1)
            w = await self.wait_for(lambda: self.widget(action), f"a button '{action}'")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the button '{action}' never stayed for a frame")
        assert w is not None
        if w.disabled:
            await self.wait_for(lambda: not w.disabled or self.widget(action) is not w,
                                f"the button '{action}' enabled")
            return await self.tap(action)
        sm = getattr(self.app, "sm", None)          # touches are dropped while screens switch
        if sm is not None and sm.transition.is_active:
            await self.wait_for(lambda: not sm.transition.is_active, "the screen switched")
            return await self.tap(action)
        self._tapped[action] = last               # (not kept alive by the driver)
        touch = UnitTestTouch(*w.to_window(*w.center))
        touch.touch_down()
        touch.touch_up()
        await self.frames(1)

    async def type_digits(self, digits: str) -> None:
        for d in digits:
            await self.tap(f"key_{d}")

    # ------------------------------------------------------------------ top-ups
    async def to_products(self, number: str = NUMBER) -> None:
        await self.wait_phase("idle")
        await self.tap("start")
        await self.wait_phase("identify")
        await self.type_digits(number)
        await self.tap("number_ok")
        await self.wait_phase("confirm_number")
        await self.tap("number_yes")
        await self.wait_phase("choose_product")
        await self.wait_for(lambda: self.rt.state.offered is not None, "the number checked")

    async def choose(self, product: str, method: str) -> None:
        await self.tap(f"product_{product}")
        await self.wait_phase("choose_payment")
        await self.tap(f"pay_{method}")
        await self.wait_for(lambda: self.rt.state.txn.ref, "a reference")

    async def finish(self, receipt: bool = False) -> None:
        await self.wait_phase("result", 30)
        await self.wait_for(lambda: self.rt.state.receipt_printed is not None,
                            "the receipt printed")
        if receipt:
            await self.tap("show_receipt")
            await self.wait_phase("receipt")
            await self.frames(1)
        await self.tap("finish")
        await self.wait_phase("idle")
        self.tidy_simulators()

    async def cash_topup(self, receipt: bool = True) -> None:
        """₱20 load paid with one ₱20 note, the receipt shown on screen."""
        from drivers.bill.id003 import Status
        await self.to_products()
        await self.choose("globe-load_2000", "cash")
        sim = self.rt.devices["cash"].simulator
        await self.wait_for(lambda: sim.status() is Status.IDLING, "the note reader idle")
        await self.tap("demo_note_2000")
        await self.finish(receipt)

    async def qr_topup(self) -> None:
        """₱50 load paid by a wallet app scanning the QR code on screen."""
        await self.to_products()
        await self.choose("globe-load_5000", "qr")
        await self.wait_for(lambda: self.rt.state.qr_payload, "the QR code")
        await self.frames(1)
        await self.tap("demo_qr_pay")
        await self.finish()

    async def card_topup(self) -> None:
        """₱100 load paid on the ZVT card terminal (approved)."""
        await self.to_products()
        await self.choose("globe-load_10000", "card")
        await self.finish()

    TOPUPS = ("cash", "qr", "card")

    async def topup(self, i: int) -> str:
        """The i-th top-up of a run: cash, QR and card in turn."""
        method = self.TOPUPS[i % len(self.TOPUPS)]
        await getattr(self, f"{method}_topup")()
        return method

    def tidy_simulators(self) -> None:
        """What only the simulators keep (the paper, their request logs) goes, as it would
        leave a real machine: the process's growth is then the kiosk's own."""
        d = self.rt.devices
        printer = getattr(d["printer"], "simulator", None)
        if printer is not None:
            with printer._lock:
                printer.printout.receipts.clear()
        for name in ("backend", "wallet"):
            sim = getattr(d[name], "simulator", None)
            for attr in ("requests", "transactions"):
                log = getattr(sim, attr, None)
                if isinstance(log, list):
                    del log[:]
