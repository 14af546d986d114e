"""UI soak: the real window driven through many top-ups, its memory and CPU over time,
against an empty Kivy window on the same GL stack.

    .venv/bin/python benchmarks/ui_soak.py [--count 500] [--every 50] [--idle-s 10]
                                           [--hold-s 10] [--diag] [--smoke]

Two child processes, one after the other, on the same driver (SDL offscreen unless a
DISPLAY is set; Mesa's llvmpipe without a GPU) and window size (config/kiosk.toml):

1. the floor: an empty Kivy App; its RSS once settled and its idle CPU over --idle-s;
2. the kiosk on the default config (every device simulated, demo panel shown), the same
   wiring as `kiosk run`, driven by touches: the attract screen idle for --idle-s; the
   processing screen held for --hold-s (the simulated provider answers late); then
   --count top-ups, cash (with the receipt on screen), QR and card in turn, with RSS
   (VmRSS), the process's CPU share of one core, the main thread's share (Kivy, the loop,
   the engine) and the frames drawn per second printed every --every top-ups; at the end
   the attract screen idle again.

Printed at the end: medians of the soak's reports, the growth between the first and the
last report, and the ratios to the empty window. `--diag` adds, at each report, the live
widgets by class, Kivy's cache categories and the canvas instructions of QR codes.
`--smoke`: one top-up of each kind, 0.5 s idle and hold (tests/test_benchmarks_smoke.py).
No figure is asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _ui


# ---------------------------------------------------------------------- diagnostics
def diag_lines(k: Any) -> list[str]:
    """Where the memory goes: widgets alive, Kivy's caches, QR instructions."""
    from kivy.cache import Cache
    from kivy.uix.widget import Widget
    gc.collect()
    counts: dict[str, int] = {}
    textures = 0
    for o in gc.get_objects():
        if isinstance(o, Widget):
            name = type(o).__name__
            counts[name] = counts.get(name, 0) + 1
            if getattr(o, "texture", None) is not None:
                textures += 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
    lines = [f"    widgets alive: {sum(counts.values())} ("
             + ", ".join(f"{n} {c}" for n, c in top) + f"); with a texture: {textures}"]
    cats = []
    for cat in sorted(Cache._categories):
        objs = Cache._objects.get(cat, {})
        limit = Cache._categories[cat].get("limit")
        cats.append(f"{cat} {len(objs)}/{limit if limit is not None else '-'}")
    lines.append("    Kivy cache: " + ", ".join(cats))
    from screens.widgets import QrCode
    qrs = [o for o in gc.get_objects() if isinstance(o, QrCode)]
    lines.append("    QR codes: " + ", ".join(
        f"{len(q.canvas.children)} instructions" for q in qrs))
    return lines


# ---------------------------------------------------------------------- the kiosk (child)
async def hold_processing(k: Any, hold_s: float) -> dict[str, float]:
    """One cash top-up whose provider answers after hold_s + 1 s: the CPU and frames while
    the processing screen is up (from the first frame drawn on it, for hold_s)."""
    aggregator = k.rt.devices["backend"].simulator
    aggregator.topup_delay_s = hold_s + 1.0
    try:
        topup = asyncio.ensure_future(k.cash_topup(receipt=False))
        await k.wait_for(lambda: k.phase == "fulfilling" or topup.done(), "the processing screen")
        if topup.done():
            topup.result()
            raise RuntimeError("the processing screen was never shown")
        await k.frames(2)
        figures = await _ui.measure_idle(hold_s, k.flips)
        await topup
    finally:
        aggregator.topup_delay_s = 0.0
    return figures


async def kiosk_main(a: argparse.Namespace) -> dict[str, Any]:
    import logging
    logging.getLogger().setLevel(logging.WARNING)
    data_dir = Path(os.environ["BENCH_DATA_DIR"])
    k = await _ui.start_kiosk(_ui.bench_settings(data_dir))
    out: dict[str, Any] = {}
    try:
        await asyncio.sleep(a.settle)
        out["attract_rss_mb"] = _ui.rss_mb()
        out["attract_idle"] = await _ui.measure_idle(a.idle_s, k.flips)
        if a.hold_s > 0:
            out["processing"] = await hold_processing(k, a.hold_s)
            out["after_hold_rss_mb"] = _ui.rss_mb()
        reports: list[dict[str, Any]] = []
        meter = _ui.CpuMeter(k.flips)
        for i in range(a.count):
            await k.topup(i)
            if (i + 1) % a.every == 0 or i + 1 == a.count:
                r = _ui.CpuMeter.shares(meter.sample())
                r.update(n=i + 1, rss_mb=_ui.rss_mb(), per_topup_s=r["wall_s"] /
                         (i + 1 - (reports[-1]["n"] if reports else 0)))
                reports.append(r)
                print(f"  {r['n']:5d} top-ups: RSS {r['rss_mb']:6.1f} MB, CPU process "
                      f"{r['process_cpu']:5.1%} main thread {r['main_cpu']:5.1%}, "
                      f"{r['flips_per_s']:4.1f} frames/s, {r['per_topup_s']:.2f} s per top-up",
                      flush=True)
                if a.diag:
                    print("\n".join(diag_lines(k)), flush=True)
                meter.reset()
        out["reports"] = reports
        await asyncio.sleep(a.settle)
        out["end_rss_mb"] = _ui.rss_mb()
        out["end_idle"] = await _ui.measure_idle(a.idle_s, k.flips)
        out["peak_rss_mb"] = _ui.peak_rss_mb()
        if a.diag:
            print("\n".join(diag_lines(k)), flush=True)
    finally:
        await k.stop()
    return out


def kiosk_child(a: argparse.Namespace) -> None:
    _ui.print_result(asyncio.run(kiosk_main(a)))


# ---------------------------------------------------------------------- the parent
def cpu(d: dict[str, Any]) -> str:
    return (f"process {d['process_cpu']:6.1%}, main thread {d['main_cpu']:6.1%}, "
            f"{d['flips_per_s']:4.1f} frames/s")


def by_thread(d: dict[str, Any]) -> str:
    top = list(d.get("threads", {}).items())[:6]
    return "                          by thread: " + (", ".join(
        f"{name} {share:.1%}" for name, share in top) or "-")


def ratio(a: float, b: float) -> str:
    return f"x{a / b:.2f}" if b > 0 else "x-"


def parent(a: argparse.Namespace) -> int:
    flags = ["--idle-s", str(a.idle_s), "--settle", str(a.settle)]
    with tempfile.TemporaryDirectory(prefix="ui-soak-") as tmp:
        env = _ui.child_env(Path(tmp) / "kivy", Path(tmp) / "var")
        print(f"UI soak: {a.count} top-ups (cash, QR, card in turn), SDL "
              f"{env['SDL_VIDEODRIVER']}; the empty window first", flush=True)
        empty = _ui.run_child([__file__, "--empty-child", *flags], env, timeout=120)
        kiosk = _ui.run_child([__file__, "--kiosk-child", *flags, "--count", str(a.count),
                               "--every", str(a.every), "--hold-s", str(a.hold_s)]
                              + (["--diag"] if a.diag else []),
                              env, timeout=120 + 4 * a.idle_s + a.hold_s + 30 * a.count)
    reports = kiosk["reports"]
    floor = empty["rss_mb"]
    rss = [r["rss_mb"] for r in reports]
    print()
    print(f"GL: {empty['gl']}; {os.cpu_count()} CPUs")
    print(f"empty Kivy window:        RSS {floor:6.1f} MB; idle {cpu(empty['idle'])}")
    print(by_thread(empty["idle"]))
    print(f"attract screen, start:    RSS {kiosk['attract_rss_mb']:6.1f} MB "
          f"({ratio(kiosk['attract_rss_mb'], floor)}); idle {cpu(kiosk['attract_idle'])}")
    print(by_thread(kiosk["attract_idle"]))
    if "processing" in kiosk:
        print(f"processing screen held:   {cpu(kiosk['processing'])} "
              f"over {kiosk['processing']['wall_s']:.1f} s")
        print(by_thread(kiosk["processing"]))
    print(f"soak, {len(reports)} reports:  RSS median {statistics.median(rss):6.1f} MB "
          f"({ratio(statistics.median(rss), floor)}), first {rss[0]:.1f}, last {rss[-1]:.1f} "
          f"(growth {rss[-1] - rss[0]:+.1f} MB), peak {kiosk['peak_rss_mb']:.1f} MB")
    print(f"                          CPU median: process "
          f"{statistics.median(r['process_cpu'] for r in reports):.1%}, main thread "
          f"{statistics.median(r['main_cpu'] for r in reports):.1%}; "
          f"{statistics.median(r['per_topup_s'] for r in reports):.2f} s per top-up")
    print(f"attract screen, end:      RSS {kiosk['end_rss_mb']:6.1f} MB "
          f"({ratio(kiosk['end_rss_mb'], floor)}); idle {cpu(kiosk['end_idle'])}")
    print(by_thread(kiosk["end_idle"]))
    e, s, f = empty["idle"], kiosk["attract_idle"], kiosk["end_idle"]
    print(f"idle CPU, attract / empty window: process {ratio(s['process_cpu'], e['process_cpu'])}"
          f" at start, {ratio(f['process_cpu'], e['process_cpu'])} at the end; main thread "
          f"{ratio(s['main_cpu'], e['main_cpu'])}, {ratio(f['main_cpu'], e['main_cpu'])}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=500, help="top-ups (default 500)")
    ap.add_argument("--every", type=int, default=50, help="a report every N top-ups")
    ap.add_argument("--idle-s", type=float, default=10.0,
                    help="idle CPU measured over this long (default 10)")
    ap.add_argument("--hold-s", type=float, default=10.0,
                    help="the processing screen held this long (0: not measured)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds left to settle before each idle measure")
    ap.add_argument("--diag", action="store_true",
                    help="widgets alive, Kivy caches and QR instructions at every report")
    ap.add_argument("--smoke", action="store_true",
                    help="a handful of top-ups, short idle and hold (a test that it runs)")
    ap.add_argument("--empty-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kiosk-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.smoke:
        a.count, a.every, a.idle_s, a.hold_s, a.settle = 3, 3, 0.5, 0.5, 0.2
    if a.count < 1 or a.every < 1:
        ap.error("need --count >= 1 and --every >= 1")
    if a.empty_child:
        _ui.empty_window_child(a.idle_s, a.settle)
        return 0
    if a.kiosk_child:
        kiosk_child(a)
        return 0
    return parent(a)


if __name__ == "__main__":
    sys.exit(main())
