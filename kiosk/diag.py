"""Technician diagnostics: `kiosk diag sim`.

Exit codes of `kiosk diag sim`:
  0  a SIM was read (its ICCID is printed in full: this is the technician's tool)
  2  no card was inserted within --wait seconds
  3  the card is not a SIM, is mute (upside down?) or has no valid ICCID
  4  reader problem: PC/SC service not running, or no reader matches --reader
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from typing import Any

EXIT_OK, EXIT_NO_CARD, EXIT_NOT_SIM, EXIT_READER = 0, 2, 3, 4
EXIT_INTERRUPTED = 130                       # Ctrl-C, as shells report SIGINT


def _out(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        shown = value
        if isinstance(value, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, (list, tuple)):
            shown = ", ".join(map(str, value)) or "-"
        print(f"{key:>12}: {shown}")


def diag_sim(reader: str, wait: float, as_json: bool) -> int:
    from smartcard import scard as sc

    from drivers.sim import pcsc

    result: dict[str, Any] = {"reader": None}
    try:
        pattern = re.compile(reader)
    except re.error as exc:
        result.update(status="reader_problem", error=f"--reader is not a valid regular "
                                                     f"expression: {exc}")
        _out(result, as_json)
        return EXIT_READER
    if math.isnan(wait) or wait < 0:
        wait = 0.0
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if pcsc.u32(hr) != pcsc.S_OK:
        result.update(status="reader_problem",
                      error=f"PC/SC service not available (0x{pcsc.u32(hr):08X}): "
                            "is pcscd running?")
        _out(result, as_json)
        return EXIT_READER
    try:
        hr, readers = sc.SCardListReaders(ctx, [])
        readers = readers if pcsc.u32(hr) == pcsc.S_OK else []
        matches = [r for r in readers if pattern.search(r)]
        if not matches:
            result.update(status="reader_problem", readers=readers,
                          error=f"no reader matches {reader!r}")
            _out(result, as_json)
            return EXIT_READER
        name = result["reader"] = matches[0]
        t0 = time.monotonic()
        state = pcsc.STATE_UNAWARE
        while True:
            left = wait - (time.monotonic() - t0)
            # In short slices: Ctrl-C is only seen when the call returns (and an infinite
            # or huge --wait stays a valid DWORD). A card still wakes the call at once.
            timeout_ms = int(min(max(left, 0.0), 0.5) * 1000)
            hr, new = sc.SCardGetStatusChange(ctx, timeout_ms, [(name, state)])
            hr = pcsc.u32(hr)
            if hr == pcsc.S_OK:
                state = new[0][1] & ~pcsc.STATE_CHANGED
                if state & pcsc.STATE_PRESENT:
                    atr = bytes(new[0][2])
                    break
            elif hr != pcsc.E_TIMEOUT:
                result.update(status="reader_problem", error=f"reader error 0x{hr:08X}")
                _out(result, as_json)
                return EXIT_READER
            if time.monotonic() - t0 >= wait:
                result.update(status="no_card", waited_s=round(wait, 1))
                _out(result, as_json)
                return EXIT_NO_CARD
        present = time.monotonic()
        result.update(atr=atr.hex(" ").upper(), waited_s=round(present - t0, 3))
        if state & pcsc.STATE_MUTE:
            result.update(status="not_sim", card_type="mute",
                          error="the card does not answer (no ATR): turn it over")
            _out(result, as_json)
            return EXIT_NOT_SIM
        try:
            info = pcsc.connect_and_read(sc, ctx, name, spn=True)
        except pcsc.CardUnreadable as exc:
            result.update(status="not_sim",
                          card_type="not a SIM" if exc.reason == "not_sim" else exc.reason,
                          error=str(exc))
            _out(result, as_json)
            return EXIT_NOT_SIM
        except pcsc._ServiceLost as exc:
            result.update(status="reader_problem", error=str(exc))
            _out(result, as_json)
            return EXIT_READER
        done = time.monotonic()
        result.update(
            status="read", card_type=info.kind.value.upper(), iccid=info.iccid,
            spn=info.spn,
            readable=list(info.readable), unreadable=dict(info.unreadable),
            apdus=info.apdus, read_ms=round((done - present) * 1000, 2))
        _out(result, as_json)
        return EXIT_OK
    except KeyboardInterrupt:
        print("kiosk diag sim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sc.SCardReleaseContext(ctx)



# ---------------------------------------------------------------- kiosk diag bill
BILL_EXIT = {"ok": 0, "timeout": 2, "device": 4}


def diag_bill(port: str, accept: int, timeout: float, as_json: bool, currency: str,
              denominations: tuple[int, ...]) -> int:
    """Reset and enable the acceptor, stack up to `accept` notes, print one line per
    event, inhibit, exit. Exit codes: 0 `accept` notes stacked (or 0 asked), 2 the
    timeout came first, 4 the acceptor never became ready (port, wiring, currency)."""
    import asyncio
    import queue as queue_mod

    from drivers.bill.acceptor import Id003Acceptor
    from drivers.bill.id003 import Status
    from kiosk import events as ev
    from kiosk.money import fmt

    def line(kind: str, **data: Any) -> None:
        if as_json:
            print(json.dumps({"event": kind, **data}), flush=True)
        else:
            text = ", ".join(f"{k}={fmt(v, currency) if k == 'value' else v}"
                             for k, v in data.items())
            print(f"{time.strftime('%H:%M:%S')} {kind:<10} {text}", flush=True)

    async def run() -> str:
        acc = Id003Acceptor(port=port, denominations=denominations, currency=currency)
        events: queue_mod.Queue[ev.Record] = queue_mod.Queue()

        def commit(e: ev.Record) -> bool:
            events.put(e)
            return True

        acc.commit = commit
        await acc.start(events.put)
        stacked, ready, in_flight, closing = 0, False, False, False

        def handle(e: ev.Record) -> str | None:
            nonlocal stacked, ready, in_flight
            match e:
                case ev.DeviceStatus(ok=True):
                    ready = True
                    line("ready", detail=e.detail, version=acc.version)
                    if accept == 0:
                        return "ok"
                    if not closing:
                        acc.enable()
                case ev.DeviceStatus(ok=False):
                    line("fault" if ready else "not_ready", detail=e.detail)
                case ev.NoteEscrowed(value=v):
                    line("escrow", value=v)
                    if closing or in_flight or stacked >= accept:
                        acc.return_note(v)
                    else:
                        in_flight = True
                        acc.stack(v)
                        if stacked + 1 >= accept:
                            acc.disable()       # the last note: close the slot behind it
                case ev.NoteCredited(value=v):
                    stacked += 1
                    in_flight = False
                    line("credited", value=v, count=stacked)
                    if stacked >= accept:
                        return "ok"
                case ev.NoteReturned(value=v):
                    line("returned", value=v)
                    if in_flight:               # the note we stacked came back after all
                        in_flight = False
                        if not closing:
                            acc.enable()
                case ev.NoteRejected(reason=r):
                    line("rejected", reason=r)
                case ev.CashFault(reason=r, in_doubt=d):
                    in_flight = False
                    line("fault", reason=r, in_doubt=d)
                case ev.NoteAtPowerUp(where=w):
                    line("power_up_bill", where=w)
            return None

        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    e = await asyncio.to_thread(events.get, True, 0.2)
                except queue_mod.Empty:
                    continue
                outcome = handle(e)
                if outcome is not None:
                    return outcome
            return "timeout" if ready else "device"
        finally:
            closing = True
            if acc.ok:
                # Inhibit, then serve events until the acceptor reports DISABLED with no
                # note in it (at most 5 s): a note drawn in before the inhibit took effect
                # is given back, not left in escrow with no host to decide on it.
                acc.disable()
                polls, settle_end = acc.polls, time.monotonic() + 5.0
                while acc.ok and time.monotonic() < settle_end and not (
                        acc.polls >= polls + 2 and acc.status is Status.DISABLED
                        and acc.note is None and events.empty()):
                    try:
                        handle(await asyncio.to_thread(events.get, True, 0.05))
                    except queue_mod.Empty:
                        pass
            await acc.stop()

    try:
        outcome = asyncio.run(run())
    except KeyboardInterrupt:
        print("kiosk diag bill: interrupted", file=sys.stderr)
        return 130
    line("done", outcome=outcome)
    return BILL_EXIT[outcome]
