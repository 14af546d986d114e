"""Every benchmark still runs: each benchmarks/*.py with `--smoke` (tiny sizes) as a
subprocess, with a time limit; it must exit 0 and print its figure lines. No figure is
checked (the machines are shared and noisy): a benchmark that hangs, crashes or drives
something that no longer exists is what fails here, not a slow one.

They run in two lanes side by side (most of their time is waiting: on frames, devices,
child processes): the UI soak, the longest, in one; the others, one after the other, in
the other. The whole test takes about 30 s on an idle 2-core machine, and stays under a
minute beside the UI tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

# benchmark -> the lines its figures are printed on (a substring each must contain).
FIGURES: dict[str, tuple[str, ...]] = {
    "bill_latency": ("ID-003 note latency", "Result: OK"),
    "journal_guard": ("open + integrity check:", "durable write:", "online copy:"),
    "recovery": ("recover()", "all settled"),
    "reports": ("report x, no Z yet", "report z", "longest write wait"),
    "sim_read": ("insertions read", "PRESENT -> ICCID decoded", "insert -> SimIdentified"),
    "soak": ("transactions in", "conservation: 0 violations", "RSS:"),
    "startup": ("start-up (process start -> first frame)", "peak RSS of the running UI",
                "floor (an empty Kivy window"),
    "ui_soak": ("top-ups: RSS", "empty Kivy window:", "attract screen, start:",
                "processing screen held:", "idle CPU, attract / empty window"),
}
LONGEST = "ui_soak"                    # a lane of its own
LIMIT_S = 90                           # per benchmark; the whole test aims at < 60 s


def run(name: str) -> tuple[str, subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # SDL's offscreen window, whatever display the UI tests' fixtures may have set up.
    env["SDL_VIDEODRIVER"] = "offscreen"
    for var in ("DISPLAY", "KIVY_METRICS_DENSITY"):
        env.pop(var, None)
    with tempfile.TemporaryDirectory(prefix=f"smoke-{name}-") as tmp:
        env["KIVY_HOME"] = str(Path(tmp) / "kivy")     # Kivy's log files: not in ~/.kivy
        env["TMPDIR"] = tmp                             # what a benchmark leaves goes too
        t0 = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke"],
                                  check=False,
                                  cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=LIMIT_S)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            proc = subprocess.CompletedProcess(exc.cmd, -9, out, err + "\n(time limit)")
        return name, proc, time.monotonic() - t0


def test_every_benchmark_is_known() -> None:
    found = {p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")}
    assert found == set(FIGURES), "a benchmark without its figure lines here (or gone)"


def test_every_benchmark_runs_with_smoke_sizes() -> None:
    others = ["startup", *sorted(set(FIGURES) - {LONGEST, "startup"})]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        longest = pool.submit(run, LONGEST)
        other_lane = pool.submit(lambda: [run(n) for n in others])
        results = [longest.result(), *other_lane.result()]
    took = time.monotonic() - t0
    failures = []
    for name, proc, secs in results:
        missing = [f for f in FIGURES[name] if f not in proc.stdout]
        if proc.returncode != 0 or missing:
            failures.append(f"benchmarks/{name}.py --smoke: exit {proc.returncode} after "
                            f"{secs:.1f} s, figure lines missing: {missing}\n"
                            f"--- stdout (end)\n{proc.stdout[-2000:]}\n"
                            f"--- stderr (end)\n{proc.stderr[-3000:]}")
    assert not failures, "\n\n".join(failures)
    print(f"{len(results)} benchmarks in {took:.1f} s: "
          + ", ".join(f"{n} {s:.1f} s" for n, _p, s in results))


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_smoke_flag_is_documented(name: str) -> None:
    """`--smoke` is in each benchmark's usage line, so that it is found."""
    text = (BENCHMARKS / f"{name}.py").read_text(encoding="utf-8")
    assert "--smoke" in text.split('"""')[1], f"{name}: --smoke not in its docstring"
