"""The `kiosk` command.

    kiosk run [--windowed] [--config PATH] [--data-dir DIR]
    kiosk config check [PATH] [--json]
    kiosk journal list [--status open|closed] [--limit N] [--json]
    kiosk journal show REF [--json]
    kiosk journal init | check | backup [--to DIR] | restore [--from FILE] --by NAME
    kiosk diag sim [--reader REGEX] [--wait SECONDS] [--json]
    kiosk diag bill --port PATH [--accept N] [--timeout S] [--json]
    kiosk qr decode PAYLOAD [--json]      kiosk qr encode [--amount A] [--reference R] ...
    kiosk diag card --port PATH --amount MINOR_UNITS [--keep] [--json]
    kiosk journal list --unresolved [--json]
    kiosk report x|z|history|show [--by NAME] [--json]
    kiosk cashbox [status|remove|insert] [--by NAME] [--counted AMOUNT]
    kiosk sim backend [--port N]         kiosk sim wallet [--port N]
    kiosk sim pay REFERENCE [--url URL] [--late]

Exit codes: 0 ok, 1 not found / invalid, 2 configuration error, 3 report disagrees with the
journal, 64 wrong command line, 65 the journal is refused (lost, damaged, another
folder's: the message says how to restore), 75 another kiosk runs on the data folder;
`kiosk diag sim` has its own (see its --help).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from . import config as config_mod
from .config import ConfigError, Settings
from .identity import JournalRefused
from .money import fmt


def _settings(args: argparse.Namespace) -> Settings:
    return config_mod.load(args.config, data_dir=getattr(args, "data_dir", None))


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from .lock import FolderLock, KioskBusy
    try:
        FolderLock(settings.data_dir).probe()
        from .startcheck import preflight
        preflight(settings)         # JournalRefused: one line, exit 65 (main)
        return _run(args, settings)
    except KioskBusy as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 75


def _run(args: argparse.Namespace, settings: Any) -> int:
    from .logs import setup
    setup()
    # What the kiosk writes (the UI toolkit's folder and logs among it) is its own.
    os.umask(0o077)
    if args.headless:
        from . import headless
        try:
            return headless.run(settings, args.customer, args.crash_after_writes,
                                args.exit_when_settled)
        except ValueError as exc:
            print(f"kiosk: {exc}", file=sys.stderr)
            return 64
    # Kivy reads these at import time: set them before anything imports kivy.
    kivy_home = settings.data_dir / "kivy"
    kivy_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(kivy_home))
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    if not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")):
        print("kiosk: no display found (DISPLAY is not set). Run it on the kiosk's screen, "
              "or under a virtual one: xvfb-run -a kiosk run", file=sys.stderr)
        return 1
    from screens.window import configure
    configure(settings, args.windowed)
    from screens.app import run
    return run(settings, windowed=args.windowed)


def cmd_config_check(args: argparse.Namespace) -> int:
    path = args.path or args.config
    s = config_mod.load(path)
    summary = {
        "file": str(s.file), "kiosk_id": s.kiosk_id, "currency": s.currency,
        "operators": [op.id for op in s.catalog.operators],
        "products": len(s.catalog.products),
        "devices": {k: v.driver for k, v in s.devices.items()},
        "demo": s.demo, "data_dir": str(s.data_dir),
    }
    if args.json:
        _print_json({"ok": True, **summary})
    else:
        print(f"{s.file}: OK")
        print(f"  kiosk {s.kiosk_id}, currency {s.currency}, "
              f"{len(s.catalog.operators)} operators, {len(s.catalog.products)} products")
        print("  devices: " + ", ".join(f"{k}={v.driver}" for k, v in s.devices.items()))
    return 0


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_journal_list(args: argparse.Namespace) -> int:
    s = _settings(args)
    from .journal import Journal
    j = Journal(s.journal_path, s.kiosk_id, s.currency, create=False)
    if args.unresolved:
        return _list_unresolved(j, args)
    rows = j.transactions(status=args.status, limit=args.limit)
    if args.json:
        _print_json([r.to_dict() for r in rows])
        return 0
    if not rows:
        print("no transactions")
        return 0
    print(f"{'REFERENCE':<15} {'OPENED':<21} {'METHOD':<6} {'PRICE':>13} {'PAID':>13} "
          f"{'STATUS':<7} OUTCOME")
    for r in rows:
        print(f"{r.ref:<15} {_when(r.opened_ts):<21} {r.method:<6} "
              f"{fmt(r.amount, r.currency):>13} {fmt(r.paid, r.currency):>13} "
              f"{r.status:<7} {r.outcome or '-'}")
    return 0


def _how(j: Any, r: Any) -> str:
    """What happened to a transaction after a restart, in a technician's words."""
    evs = [e for e in j.events(r.ref)]
    starts = [e for e in evs if e.kind == "RecoveryStarted"]
    found = (f"found {starts[0].data['phase']} with {fmt(starts[0].data['paid'], r.currency)}"
             f" paid" if starts else "")
    if r.status == "open":
        last = [e.kind for e in evs if e.kind not in ("RecoveryStarted",)][-1:] or ["-"]
        queries = sum(1 for e in evs if e.kind == "QueryTopUp")
        waiting = f"still open, last: {last[0]}" + (f", {queries} look-ups" if queries else "")
        return "; ".join(x for x in (found, waiting) if x)
    parts = [f"closed {r.outcome}"]
    if r.credited:
        parts.append(f"credited {fmt(r.credited, r.currency)}")
    if r.voucher:
        parts.append(f"voucher {fmt(r.voucher, r.currency)}")
    if r.refunded:
        parts.append(f"card reversed {fmt(r.refunded, r.currency)}")
    return "; ".join(x for x in (found, ", ".join(parts)) if x)


def _list_unresolved(j: Any, args: argparse.Namespace) -> int:
    """Open transactions, those a restart found unfinished, notes in doubt and what the
    operator must reconcile (kiosk/reconcile.py): what, and how resolved."""
    from .books import notes_in_doubt
    doubt: dict[str | None, list[tuple[int, str]]] = {}
    for ref, value, why in notes_in_doubt(j.db, args.limit):
        doubt.setdefault(ref, []).append((value, why))
    rows = {r.ref: r for r in j.unresolved()}
    for r in j.recovered(args.limit):
        rows.setdefault(r.ref, r)
    from .reconcile import to_reconcile
    flagged = to_reconcile(j.db, j.currency, args.limit)    # late credits, wallet amounts
    for ref in [*doubt, *flagged]:
        r = j.transaction(ref) if ref else None
        if r is not None:
            rows.setdefault(r.ref, r)

    def how(r: Any) -> str:
        notes = "; ".join(f"a note of {fmt(v, r.currency)} in doubt ({why}): count the box"
                          for v, why in doubt.get(r.ref, []))
        return "; ".join(x for x in (_how(j, r), notes, *flagged.get(r.ref, [])) if x)
    ordered = sorted(rows.values(), key=lambda r: r.number, reverse=True)[:args.limit]
    orphans = doubt.get(None, [])
    if args.json:
        _print_json([{**r.to_dict(), "how": how(r),
                      "notes_in_doubt": [v for v, _ in doubt.get(r.ref, [])]} for r in ordered]
                    + [{"ref": None, "notes_in_doubt": [v], "how": why} for v, why in orphans])
        return 0
    if not ordered and not orphans:
        print("nothing unresolved: no open transaction, none recovered, no note in doubt")
        return 0
    print(f"{'REFERENCE':<15} {'OPENED':<21} {'METHOD':<7} {'PAID':>13}  HOW")
    for r in ordered:
        print(f"{r.ref:<15} {_when(r.opened_ts):<21} {r.method:<7} "
              f"{fmt(r.paid, r.currency):>13}  {how(r)}")
    for v, why in orphans:
        print(f"{'-':<15} {'-':<21} {'cash':<7} {fmt(v, j.currency):>13}  a note in doubt"
              f" with no open transaction ({why}): count the box")
    return 0


def cmd_journal_show(args: argparse.Namespace) -> int:
    s = _settings(args)
    from .journal import Journal
    from .logs import mask
    j = Journal(s.journal_path, s.kiosk_id, s.currency, create=False)
    row = j.transaction(args.ref)
    if row is None:
        print(f"kiosk: no transaction {args.ref}", file=sys.stderr)
        return 1
    evs = j.events(args.ref)
    vouchers = [{**v, "code": "*" * 12 + v["code"][-4:]} for v in j.vouchers(args.ref)]
    if args.json:
        _print_json({"transaction": row.to_dict(),
                     "events": [{"seq": e.seq, "ts": e.ts, "kind": e.kind,
                                 "data": json.loads(mask(json.dumps(e.data)))} for e in evs],
                     "vouchers": vouchers})
        return 0
    d = row.to_dict()
    for key in ("ref", "status", "outcome", "msisdn", "operator", "product_id", "method"):
        print(f"{key:>10}: {d[key]}")
    for key in ("amount", "paid", "credited", "voucher", "refunded"):
        print(f"{key:>10}: {fmt(d[key], row.currency)}")
    print(f"{'opened':>10}: {_when(row.opened_ts)}\n{'closed':>10}: {_when(row.closed_ts)}")
    for v in vouchers:
        print(f"{'voucher':>10}: {v['code']} {fmt(v['amount'], v['currency'])} {v['status']}")
    print("events:")
    for e in evs:
        data = mask(", ".join(f"{k}={v}" for k, v in e.data.items() if k != "ref"))
        print(f"  {e.seq:>6} {_when(e.ts)} {e.kind:<20} {data}")
    return 0


def cmd_diag_sim(args: argparse.Namespace) -> int:
    from .diag import diag_sim
    return diag_sim(args.reader, args.wait, args.json)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 64 (EX_USAGE), so they never look like a command's own result
    (2 is "configuration error" here and "no card" for `diag sim`)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def cmd_diag_bill(args: argparse.Namespace) -> int:
    from .diag import diag_bill
    s = _settings(args)
    return diag_bill(args.port, args.accept, args.timeout, args.json, s.currency,
                     s.cash_denominations)


def cmd_diag_card(args: argparse.Namespace) -> int:
    from drivers.card_terminal.selftest import diag_card
    s = _settings(args)
    if args.amount <= 0:
        print("kiosk: --amount must be a positive number of minor units", file=sys.stderr)
        return 64
    opts = s.devices["card"].options if s.devices["card"].driver == "zvt" else {}
    return diag_card(args.port, args.amount, args.keep, args.json, s.currency,
                     str(opts.get("password", "000000")))


def cmd_qr_decode(args: argparse.Namespace) -> int:
    from .payments import emvco
    try:
        fields = emvco.decode(args.payload)
    except emvco.QrPayloadError as exc:
        if args.json:
            _print_json({"valid": False, "error": str(exc)})
        print(f"kiosk: invalid EMVCo payload: {exc}", file=sys.stderr)
        return 1
    tree = emvco.describe(fields)
    if args.json:
        _print_json({"valid": True, "crc_valid": True, "fields": tree})
        return 0

    def show(items: list[dict[str, Any]], depth: int = 0) -> None:
        for it in items:
            pad = "  " * depth
            name = f"  ({it['name']})" if it["name"] else ""
            if "fields" in it:
                print(f"{pad}{it['tag']}{name}")
                show(it["fields"], depth + 1)
            else:
                print(f"{pad}{it['tag']} = {it['value']}{name}")
    show(tree)
    print("CRC valid")
    return 0


def cmd_qr_encode(args: argparse.Namespace) -> int:
    from .money import CURRENCIES, Money, MoneyError
    from .payments import emvco
    s = _settings(args)
    try:
        amount = Money.parse(args.amount, s.currency).decimal_text().replace(",", "") \
            if args.amount else None
    except MoneyError as exc:
        print(f"kiosk: --amount: {exc}", file=sys.stderr)
        return 1
    try:
        print(emvco.merchant_payload(
            scheme_tag=args.scheme_tag, scheme_id=args.scheme_id, merchant_id=args.merchant_id,
            mcc=args.mcc, currency_numeric=CURRENCIES[s.currency][0], amount_text=amount,
            country=args.country, name=args.name or s.merchant_name,
            city=args.city or s.merchant_city, reference=args.reference,
            terminal=s.kiosk_id))
    except emvco.QrPayloadError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_sim_backend(args: argparse.Namespace) -> int:
    from .backend.http_sim import ReloadlySimulator
    sim = ReloadlySimulator(port=args.port, client_id=args.client_id,
                            client_secret=args.client_secret).start()
    print(f"top-up backend simulator on {sim.url} (client {args.client_id}); "
          f"faults: POST {sim.url}/_sim/mode; Ctrl-C stops it", flush=True)
    return _serve_until_stopped(sim)


def _journal(args: argparse.Namespace) -> tuple[Settings, Any]:
    s = _settings(args)
    from .journal import Journal
    return s, Journal(s.journal_path, s.kiosk_id, s.currency, create=False)


def _show_report(rep: Any, s: Settings, as_json: bool) -> int:
    from . import reports
    if as_json:
        _print_json(rep.to_dict())
    else:
        print(reports.format_report(rep, tz=s.timezone))
    if rep.discrepancies:
        print(f"kiosk: {len(rep.discrepancies)} discrepancies between the report and the "
              f"journal (listed in the report)", file=sys.stderr)
        return 3
    return 0


def cmd_report_x(args: argparse.Namespace) -> int:
    from . import reports
    s, j = _journal(args)
    return _show_report(reports.x_report(j, catalog=s.catalog), s, args.json)


def cmd_report_z(args: argparse.Namespace) -> int:
    from . import reports
    s, j = _journal(args)
    code = _show_report(reports.z_report(j, args.by, catalog=s.catalog), s, args.json)
    if s.backup.folder is not None:             # a second copy of every closed period
        from . import backup
        try:
            backup.take(s.journal_path, s.backup.folder, s.kiosk_id, s.backup.keep)
        except backup.BackupError as exc:
            print(f"kiosk: warning: the Z report is closed, but {exc}", file=sys.stderr)
    return code


def cmd_report_history(args: argparse.Namespace) -> int:
    from . import reports
    _s, j = _journal(args)
    reps = reports.history(j, args.limit)
    if args.json:
        _print_json([r.to_dict() for r in reps])
        return 0
    if not reps:
        print("no Z report yet")
        return 0
    print(f"{'Z':>4} {'CLOSED':<21} {'BY':<12} {'MONEY IN':>14}")
    for r in reps:
        print(f"{r.number:>4} {_when(r.to_ts):<21} {r.closed_by or '-':<12} "
              f"{fmt(r.money_in, r.currency):>14}")
    return 0


def cmd_report_show(args: argparse.Namespace) -> int:
    from . import reports
    s, j = _journal(args)
    rep = reports.report(j, args.number)
    if rep is None:
        print(f"kiosk: no Z report #{args.number}", file=sys.stderr)
        return 1
    return _show_report(rep, s, args.json)


def cmd_cashbox(args: argparse.Namespace) -> int:
    """The cash box: what is in it; a technician removing or inserting it (journaled)."""
    from . import events as ev
    from . import reports
    from .money import parse_minor
    if args.action in ("remove", "insert") and not args.by:
        print(f"kiosk: cashbox {args.action} needs --by NAME (who did it)", file=sys.stderr)
        return 64
    s, j = _journal(args)
    if args.action == "remove":
        counted = None
        if args.counted is not None:
            try:
                counted = parse_minor(args.counted, s.currency)
            except ValueError as exc:
                print(f"kiosk: --counted: {exc}", file=sys.stderr)
                return 64
        box = reports.cash_box(j)
        j.append(None, ev.CashBoxRemoved(args.by, counted))
        print(f"cash box removed by {args.by}: expected {fmt(box.total, s.currency)}"
              + (f", counted {fmt(counted, s.currency)}, difference "
                 f"{fmt(counted - box.total, s.currency)}" if counted is not None else ""))
        return 0
    if args.action == "insert":
        j.append(None, ev.CashBoxInserted(args.by))
        print(f"empty cash box inserted by {args.by}: counters start from zero")
        return 0
    box = reports.cash_box(j)
    if args.json:
        from dataclasses import asdict
        _print_json(asdict(box))
        return 0
    print(f"cash box: {fmt(box.total, s.currency)} in {box.count} notes"
          + (" (REMOVED: no box in the kiosk)" if box.removed_pending else ""))
    for value, n in sorted(box.notes.items()):
        print(f"  {fmt(value, s.currency):>14} x {n}")
    return 0


def _serve_until_stopped(sim: Any) -> int:
    import signal
    import threading
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def cmd_sim_wallet(args: argparse.Namespace) -> int:
    from .payments.gateway_sim import WalletGatewaySimulator
    sim = WalletGatewaySimulator(port=args.port, api_key=args.api_key).start()
    print(f"wallet gateway simulator on {sim.url} (API key {args.api_key}); a customer pays "
          f"with: kiosk sim pay REFERENCE --url {sim.url}; Ctrl-C stops it", flush=True)
    return _serve_until_stopped(sim)


def cmd_sim_pay(args: argparse.Namespace) -> int:
    """The customer's phone pays an order at the wallet gateway simulator."""
    import httpx
    url = args.url.rstrip("/") + f"/_sim/pay/{args.reference}"
    try:
        r = httpx.post(url, json={"late": args.late}, timeout=5)
    except httpx.HTTPError as exc:
        print(f"kiosk: wallet gateway simulator not reachable at {args.url}: {exc}",
              file=sys.stderr)
        return 1
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 404:
        print(f"kiosk: no order {args.reference} at {args.url}", file=sys.stderr)
        return 1
    if not body.get("paid"):
        print(f"kiosk: order {args.reference} was not paid (not pending; --late pays a "
              f"closed or expired one)", file=sys.stderr)
        return 1
    print(f"paid {args.reference}: {body.get('provider_ref', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kiosk", description="Self-service prepaid top-up kiosk.")
    p.add_argument("--config", type=Path, default=None,
                   help="kiosk.toml to use (default: config/kiosk.toml of the installation)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the kiosk UI (full screen unless --windowed)")
    r.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    r.add_argument("--data-dir", type=Path, help="journal and state folder (overrides config)")
    r.add_argument("--headless", action="store_true",
                   help="no screen: resume unfinished transactions, serve a scripted customer")
    r.add_argument("--customer", help="headless: METHOD:PRODUCT:AMOUNT[:NUMBER[:VOUCHER]], "
                                      "e.g. cash:globe-load:5000")
    r.add_argument("--exit-when-settled", action="store_true",
                   help="headless: exit once nothing is unfinished (prints a JSON summary)")
    r.add_argument("--crash-after-writes", type=int, default=0, metavar="N",
                   help="fault injection for the crash harness: SIGKILL after the journal's "
                        "N-th durable write")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    cc = csub.add_parser("check", help="load and validate a configuration; exit 2 if broken")
    cc.add_argument("path", nargs="?", type=Path, help="kiosk.toml (default: --config)")
    cc.add_argument("--json", action="store_true")
    cc.set_defaults(func=cmd_config_check)

    j = sub.add_parser("journal", help="read the money journal")
    jsub = j.add_subparsers(dest="journal_command", required=True)
    jl = jsub.add_parser("list", help="recent transactions, newest first")
    jl.add_argument("--status", choices=("open", "closed"))
    jl.add_argument("--limit", type=int, default=50)
    jl.add_argument("--unresolved", action="store_true",
                    help="open transactions and those a restart found unfinished, with how "
                         "each was resolved")
    jl.add_argument("--data-dir", type=Path)
    jl.add_argument("--json", action="store_true")
    jl.set_defaults(func=cmd_journal_list)
    js = jsub.add_parser("show", help="one transaction with every journaled event")
    js.add_argument("ref")
    js.add_argument("--data-dir", type=Path)
    js.add_argument("--json", action="store_true")
    js.set_defaults(func=cmd_journal_show)
    jcommon = argparse.ArgumentParser(add_help=False)
    jcommon.add_argument("--data-dir", type=Path, help="journal and state folder")
    from .cli_journal import register as register_journal
    register_journal(jsub, jcommon)

    d = sub.add_parser("diag", help="technician diagnostics of the devices")
    dsub = d.add_subparsers(dest="diag_command", required=True)
    ds = dsub.add_parser(
        "sim", help="wait for a card in the PC/SC reader and read it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Wait for a card, then print its type (SIM / UICC / not a SIM / mute), "
                    "ICCID (in full), SPN, what was readable without PIN, and timings.",
        epilog="exit codes:\n  0  a SIM was read\n  2  no card within --wait seconds\n"
               "  3  no ICCID from the card: not a SIM, mute (upside down), invalid ICCID,\n"
               "     pulled out while being read\n"
               "  4  reader problem (no PC/SC service, no matching reader, bad --reader)\n"
               "  64 wrong command line   130 interrupted (Ctrl-C)")
    ds.add_argument("--reader", default=".*", help="regular expression for the reader name")
    ds.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a card")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(func=cmd_diag_sim)
    db = dsub.add_parser(
        "bill", help="reset the ID-003 note acceptor, take notes, print every event",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reset and enable the acceptor on PORT, print one line per event "
                    "(escrow with value, credited, returned, rejected with reason, fault), "
                    "stack up to N notes, then inhibit it and exit. The denominations and "
                    "currency come from the configuration.",
        epilog="exit codes:\n  0  N notes stacked (with --accept 0: the acceptor is ready)\n"
               "  2  the timeout came before N notes\n"
               "  4  the acceptor never became ready (port, cable, currency table)\n"
               "  64 wrong command line   130 interrupted (Ctrl-C)")
    db.add_argument("--port", required=True, help="serial port, e.g. /dev/kiosk-acceptor")
    db.add_argument("--accept", type=int, default=1, help="notes to stack (default 1)")
    db.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    db.add_argument("--json", action="store_true", help="JSON lines")
    db.set_defaults(func=cmd_diag_bill)

    dc = dsub.add_parser(
        "card", help="self-test of a ZVT card terminal: pay with a real card, then reverse",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Register with the terminal on PORT, authorise AMOUNT (minor units) "
                    "with a card, print the terminal's texts as they come, its receipt lines "
                    "and the result, then reverse the test payment unless --keep.",
        epilog="exit codes:\n  0  paid (and reversed unless --keep)\n"
               "  2  declined or aborted at the terminal\n"
               "  3  paid but the reversal failed (reverse it from the terminal's menu)\n"
               "  4  terminal unreachable, port problem or result unknown\n"
               "  5  approved but never completed by the terminal: reversed, the card is"
               " not charged\n"
               "  64 wrong command line")
    dc.add_argument("--port", required=True, help="serial port, e.g. /dev/kiosk-card")
    dc.add_argument("--amount", type=int, required=True, help="minor units, e.g. 100 = 1.00")
    dc.add_argument("--keep", action="store_true", help="do not reverse the test payment")
    dc.add_argument("--json", action="store_true", help="one JSON document")
    dc.set_defaults(func=cmd_diag_card)

    rp = sub.add_parser("report", help="cash and sales reports (X: snapshot, Z: close the "
                                       "period); exit 3 if the figures disagree with the "
                                       "journal")
    rsub = rp.add_subparsers(dest="report_command", required=True)
    rx = rsub.add_parser("x", help="the current period, nothing is closed")
    rx.add_argument("--json", action="store_true")
    rx.add_argument("--data-dir", type=Path)
    rx.set_defaults(func=cmd_report_x)
    rz = rsub.add_parser("z", help="close the period: counters start again, history kept")
    rz.add_argument("--by", required=True, help="who closes it (technician login)")
    rz.add_argument("--json", action="store_true")
    rz.add_argument("--data-dir", type=Path)
    rz.set_defaults(func=cmd_report_z)
    rh = rsub.add_parser("history", help="past Z reports, newest first")
    rh.add_argument("--limit", type=int, default=20)
    rh.add_argument("--json", action="store_true")
    rh.add_argument("--data-dir", type=Path)
    rh.set_defaults(func=cmd_report_history)
    rs = rsub.add_parser("show", help="one past Z report")
    rs.add_argument("number", type=int)
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--data-dir", type=Path)
    rs.set_defaults(func=cmd_report_show)

    cb = sub.add_parser("cashbox", help="the cash box: status, or journal its removal / "
                                        "insertion")
    cb.add_argument("action", nargs="?", choices=("status", "remove", "insert"),
                    default="status")
    cb.add_argument("--by", help="who (required for remove / insert)")
    cb.add_argument("--counted", help='what was counted on removal, e.g. "1500.00"')
    cb.add_argument("--json", action="store_true")
    cb.add_argument("--data-dir", type=Path)
    cb.set_defaults(func=cmd_cashbox)

    q = sub.add_parser("qr", help="EMVCo merchant-presented QR payloads")
    qsub = q.add_subparsers(dest="qr_command", required=True)
    qd = qsub.add_parser("decode", help="print the tags (templates expanded), check the CRC; "
                                        "exit 1 if the payload is invalid")
    qd.add_argument("payload")
    qd.add_argument("--json", action="store_true")
    qd.set_defaults(func=cmd_qr_decode)
    qe = qsub.add_parser("encode", help="print a payload (dynamic with --amount, else static)")
    qe.add_argument("--amount", help='in major units, e.g. "99.00" (currency from the config)')
    qe.add_argument("--reference", help="reference label (tag 62/05)")
    qe.add_argument("--scheme-tag", type=int, default=28, help="merchant account tag 26-51")
    qe.add_argument("--scheme-id", default="ph.ppmi.p2m", help="its globally unique id")
    qe.add_argument("--merchant-id", default="KIOSKDEMO0001")
    qe.add_argument("--mcc", default="4814", help="merchant category code")
    qe.add_argument("--country", default="PH")
    qe.add_argument("--name", help="merchant name (default: config wallet.merchant_name)")
    qe.add_argument("--city", help="merchant city (default: config wallet.merchant_city)")
    qe.set_defaults(func=cmd_qr_encode)

    sm = sub.add_parser("sim", help="run a simulated service on 127.0.0.1")
    smsub = sm.add_subparsers(dest="sim_command", required=True)
    sb = smsub.add_parser("backend", help="HTTP top-up aggregator (Reloadly-shaped), with "
                                          "faults on demand and its own ledger")
    sb.add_argument("--port", type=int, default=8077)
    sb.add_argument("--client-id", default="kiosk")
    sb.add_argument("--client-secret", default="secret")
    sb.set_defaults(func=cmd_sim_backend)
    sw = smsub.add_parser("wallet", help="HTTP wallet gateway (dynamic EMVCo QR orders), a "
                                         "customer pays with `kiosk sim pay`")
    sw.add_argument("--port", type=int, default=8078)
    sw.add_argument("--api-key", default="kiosk-demo-key")
    sw.set_defaults(func=cmd_sim_wallet)
    sp = smsub.add_parser("pay", help="the customer's phone pays an order at the wallet "
                                      "gateway simulator; exit 1 if it was not paid")
    sp.add_argument("reference", help="the kiosk's transaction reference, e.g. K0001-000042")
    sp.add_argument("--url", default="http://127.0.0.1:8078")
    sp.add_argument("--late", action="store_true",
                    help="pay even a closed or expired order (a payment arriving late)")
    sp.set_defaults(func=cmd_sim_pay)
    from .cli_voucher import register as register_voucher
    register_voucher(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except JournalRefused as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 65
    except OSError as exc:
        from . import disk
        if not disk.is_full(exc):
            raise
        where = Path(exc.filename) if exc.filename else \
            getattr(args, "data_dir", None) or Path.cwd()
        print(f"kiosk: {disk.full_message(Path(where), exc)}", file=sys.stderr)
        return 65
    except ConfigError as exc:
        if getattr(args, "json", False):
            _print_json({"ok": False, "file": exc.file, "key": exc.key, "reason": exc.reason})
        print(f"kiosk: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
