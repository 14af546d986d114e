"""Start-up benchmark: process start -> first frame of the attract screen, and the peak
RSS of the running UI (after one cash top-up through every screen). Runs the kiosk app in a
fresh process each time (offscreen SDL unless a DISPLAY is set) on the default config with
its simulated devices.

    .venv/bin/python benchmarks/startup.py [--runs 7] [--settle 3] [--hold 1.5] [--smoke]

The walk is driven by touches (benchmarks/_ui.py) and waits on what the kiosk does (its
phase, the number checked), never on fixed sleeps, so a slower machine or a slower
simulated service only makes it slower; every wait is bounded, and so is each run. The
simulated provider answers the top-up after --hold seconds, which keeps the processing
screen up that long: its animation once leaked ~500 MB/s. The time the screen was really
shown is printed, so a hold that stopped working is seen.

The floor is an empty Kivy window on the same driver, window size and GL stack.
Goals kept by later work: <= 1.5 s cold start, <= 150 MB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _ui


def set_existing(obj: Any, name: str, value: Any) -> None:
    """Set a knob of a simulator, failing loudly when it no longer exists (a setting that
    silently did nothing is how this benchmark's hold once stopped holding)."""
    if not hasattr(obj, name):
        raise AttributeError(f"{type(obj).__name__} has no {name!r}: the benchmark is out of "
                             "date with the simulator")
    setattr(obj, name, value)


async def walk_through_screens(k: Any, hold_s: float) -> float:
    """One cash top-up through every screen, the receipt shown; the processing screen held
    `hold_s`. Returns how long the processing screen was up."""
    shown: dict[str, float] = {}

    def on_state(s: Any) -> None:
        now = time.monotonic()
        if s.phase.value == "fulfilling":
            shown.setdefault("from", now)
        elif "from" in shown and "to" not in shown:
            shown["to"] = now

    k.rt.subscribe(on_state)
    aggregator = k.rt.devices["backend"].simulator
    set_existing(aggregator, "topup_delay_s", hold_s)
    try:
        await asyncio.wait_for(k.cash_topup(receipt=True), 60 + hold_s)
    finally:
        set_existing(aggregator, "topup_delay_s", 0.0)
    return shown.get("to", 0.0) - shown.get("from", 0.0)


def child(settle: float, hold_s: float) -> None:
    """The measured process: the same wiring as `kiosk run`, then report and exit."""

    async def main() -> dict[str, float]:
        k = await _ui.start_kiosk(_ui.bench_settings(Path(os.environ["BENCH_DATA_DIR"])))
        try:
            first = k.app.first_frame_at
            held = await walk_through_screens(k, hold_s)
            await asyncio.sleep(settle)          # the UI keeps running: idle animations, ticks
            return {"first_frame": first, "held_s": held, "rss_mb": _ui.rss_mb(),
                    "peak_rss_mb": _ui.peak_rss_mb()}
        finally:
            await k.stop()

    _ui.print_result(asyncio.run(main()))


def parent(runs: int, settle: float, hold_s: float) -> int:
    starts, rss, held = [], [], []
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        for i in range(runs):
            env = _ui.child_env(Path(tmp) / "kivy", Path(tmp) / f"var{i}")
            t0 = time.monotonic()      # CLOCK_MONOTONIC: the same clock in the child
            res = _ui.run_child([__file__, "--child", "--settle", str(settle),
                                 "--hold", str(hold_s)], env, timeout=120 + hold_s)
            starts.append(res["first_frame"] - t0)
            rss.append(res["peak_rss_mb"])
            held.append(res["held_s"])
            print(f"run {i + 1}: first frame {starts[-1]:.3f} s, peak RSS {rss[-1]:.1f} MB "
                  f"(processing screen up {held[-1]:.1f} s)", flush=True)
        env = _ui.child_env(Path(tmp) / "kivy", Path(tmp) / "var-empty")
        floor = _ui.run_child([__file__, "--empty", "--settle", str(settle)], env,
                              timeout=120)["peak_rss_mb"]
    med = statistics.median(rss)
    print(f"start-up (process start -> first frame): median {statistics.median(starts):.3f} s, "
          f"min {min(starts):.3f} s, max {max(starts):.3f} s over {runs} runs")
    print(f"peak RSS of the running UI: median {med:.1f} MB, max {max(rss):.1f} MB "
          f"(processing screen held {statistics.median(held):.1f} s)")
    print(f"floor (an empty Kivy window on the same GL stack and window size): {floor:.1f} MB;"
          f" the kiosk UI adds {med - floor:.1f} MB (x{med / floor:.2f})")
    print(f"goals: <= 1.5 s -> {'met' if statistics.median(starts) <= 1.5 else 'MISSED'}; "
          f"<= 150 MB -> {'met' if max(rss) <= 150 else 'MISSED'}")
    if min(held) < hold_s * 0.8:
        print(f"the processing screen was up {min(held):.2f} s, not the {hold_s} s asked: "
              "the hold does not work", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--hold", type=float, default=1.5,
                    help="seconds the processing screen stays up (the provider's delay)")
    ap.add_argument("--smoke", action="store_true", help="one short run (a test that it runs)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--empty", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.settle, args.hold = 1, 0.3, 0.5
    if args.empty:
        _ui.empty_window_child(idle_s=0.1, settle_s=args.settle)
        return 0
    if args.child:
        child(args.settle, args.hold)
        return 0
    return parent(args.runs, args.settle, args.hold)


if __name__ == "__main__":
    sys.exit(main())
