"""The kiosk (`kiosk.cli.main`) with its event loop stalled, without a hook in product code.

    python -m tests.chaos.stalled_kiosk --stall journal [--at 3,7] [--seconds 3] \
        [--log FILE] -- --config X run --headless --customer cash:globe-load:5000 ...

`--stall journal`: every journal write made ON THE LOOP THREAD (`Journal.enter`, which
`append` goes through, and `Journal.open_transaction`, the write that allocates a
reference) first sleeps `--seconds`. Writes from other threads (the money gate's
connection, used by the acceptor's and the card terminal's threads) are left alone: the
gate must never wait for the loop, and the loop stalling must not stop it.

`--stall deliver`: every hand-off of a money fact from the gate to the loop
(`Runtime.deliver`, run on the loop thread by `call_soon_threadsafe`) first sleeps.

`--at 3,7` stalls only the 3rd and the 7th such call (1-based, counted per kind in this
process); without it every call is stalled. `--log FILE` gets one line per call,
"<n> <kind> <record> <stalled 0|1>", so the test knows what it stalled (and that it
stalled something at all).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: stalled_kiosk --stall journal|deliver [--at N,M] "
                         "[--seconds S] [--log FILE] -- <kiosk arguments>")
    i = argv.index("--")
    p = argparse.ArgumentParser(prog="stalled_kiosk")
    p.add_argument("--stall", action="append", choices=("journal", "deliver"), required=True)
    p.add_argument("--at", default="", help="1-based call numbers to stall (default: all)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--log", default="")
    return p.parse_args(argv[:i]), argv[i + 1:]


class _Staller:
    def __init__(self, at: str, seconds: float, log: str) -> None:
        self.at = {int(x) for x in at.split(",") if x.strip()}
        self.seconds = seconds
        self.log = open(log, "a", buffering=1, encoding="utf-8") if log else None  # noqa: SIM115
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, kind: str, what: str) -> None:
        with self.lock:
            n = self.counts[kind] = self.counts.get(kind, 0) + 1
        stall = not self.at or n in self.at
        if self.log is not None:
            self.log.write(f"{n} {kind} {what} {int(stall)}\n")
        if stall:
            time.sleep(self.seconds)


def install(kinds: list[str], staller: _Staller) -> None:
    from kiosk import journal as journal_mod
    from kiosk import runtime as runtime_mod

    if "journal" in kinds:
        enter = journal_mod.Journal.enter
        open_txn = journal_mod.Journal.open_transaction

        def stalled_enter(self: Any, ref: Any, rec: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                staller("journal", type(rec).__name__)
            return enter(self, ref, rec)

        def stalled_open(self: Any, txn: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                staller("journal", "open_transaction")
            return open_txn(self, txn)

        journal_mod.Journal.enter = stalled_enter              # type: ignore[method-assign]
        journal_mod.Journal.open_transaction = stalled_open    # type: ignore[method-assign]

    if "deliver" in kinds:
        deliver = runtime_mod.Runtime.deliver

        def stalled_deliver(self: Any, e: Any) -> None:
            staller("deliver", type(e).__name__)
            deliver(self, e)

        runtime_mod.Runtime.deliver = stalled_deliver          # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    opts, kiosk_args = _parse(list(sys.argv[1:] if argv is None else argv))
    install(opts.stall, _Staller(opts.at, opts.seconds, opts.log))
    from kiosk import cli
    return cli.main(kiosk_args)


if __name__ == "__main__":
    sys.exit(main())
