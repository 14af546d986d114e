"""`kiosk voucher find | show | reprint | void | resend`: the technician finds a customer's
voucher, hands it over (its full code, a reprinted slip, the SMS again) or voids it.

    kiosk voucher find [--number MSISDN | --ref REF | --last4 NNNN] [--limit N] [--json]
    kiosk voucher show CODE|LAST4 [--ref REF] --by NAME [--json]
    kiosk voucher reprint CODE|LAST4 [--ref REF] --by NAME [--no-print]
    kiosk voucher void CODE|LAST4 [--ref REF] --by NAME --reason TEXT
    kiosk voucher resend CODE|LAST4 [--ref REF] --by NAME
    kiosk sim sms [--port N] [--api-key KEY]

`find` lists codes masked (************1234) and numbers masked; the others name one
voucher by its 16 digits or its last four (with --ref when four digits match several) and
journal who did it and when (VoucherShown, VoucherReprinted, VoucherVoided, VoucherSent /
VoucherSmsRefused), before the full code is shown or the voucher changes. They work while
the kiosk runs (the journal takes both writers), except printing, which needs the kiosk's
printer: `reprint` prints on it only when the kiosk is stopped and the printer is a real
ESC/POS one (driver "escpos"); the slip is always written to the terminal.

Exit codes: 0 done; 1 no such voucher (`find`: none matched); 2 configuration error
(`resend`: SMS not configured); 64 wrong command line, or four digits that match several
vouchers (add --ref); 65 refused: void of a voucher used or void already, or held for a
top-up still pending; reprint or resend of a voucher that cannot pay; the gateway refused
the text; the journal is refused; 69 the SMS gateway is unavailable (try again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import events as ev
from .catalog import mask_number
from .money import fmt
from .vouchers import pretty

EX_NOT_FOUND, EX_CONFIG, EX_USAGE, EX_REFUSED, EX_UNAVAILABLE = 1, 2, 64, 65, 69


class _Exit(Exception):
    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.code = code


def _settings(args: argparse.Namespace) -> Any:
    from .config import load
    return load(getattr(args, "config", None), data_dir=getattr(args, "data_dir", None))


def _journal(s: Any) -> Any:
    from .journal import Journal
    return Journal(s.journal_path, s.kiosk_id, s.currency, create=False)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _masked_code(code: str) -> str:
    return "*" * (len(code) - 4) + code[-4:]


def _public(v: dict[str, Any]) -> dict[str, Any]:
    """A voucher row as `find` shows it: code and number masked."""
    return {"code": _masked_code(v["code"]), "code_last4": v["code"][-4:], "ref": v["ref"],
            "amount": v["amount"], "currency": v["currency"], "status": v["status"],
            "expires": v["expires"], "issued_ts": v["issued_ts"],
            "redeemed_ref": v["redeemed_ref"], "redeemed_ts": v["redeemed_ts"],
            "msisdn": mask_number(v["msisdn"], "*") if v["msisdn"] else None,
            "sms": v["sms"], "sms_ts": v["sms_ts"], "sent_count": v["sent_count"]}


def _by(args: argparse.Namespace) -> str:
    by = (args.by or "").strip()
    if not by:
        raise _Exit(f"voucher {args.voucher_command} needs --by NAME (who does it)", EX_USAGE)
    return by


def _digits(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


def _one(j: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The voucher named on the command line (16 digits, or the last 4 with --ref)."""
    digits = _digits(args.code)
    if not digits.isdigit() or len(digits) not in (4, 16):
        raise _Exit(f"{args.code!r}: give the voucher's 16 digits or its last 4", EX_USAGE)
    if len(digits) == 16:
        rows = j.find_vouchers(code=digits, ref=args.ref)
    else:
        rows = j.find_vouchers(last4=digits, ref=args.ref)
    if not rows:
        raise _Exit(f"no voucher {_masked_code(digits) if len(digits) == 16 else '...' + digits}"
                    + (f" on {args.ref}" if args.ref else ""), EX_NOT_FOUND)
    if len(rows) > 1:
        listed = "; ".join(f"{r['ref']} {fmt(r['amount'], r['currency'])} {r['status']}"
                           for r in rows[:10])
        raise _Exit(f"{len(rows)} vouchers end in {digits} ({listed}): say which with --ref REF"
                    " or give the 16 digits", EX_USAGE)
    return rows[0]


def _run(args: argparse.Namespace, fn: Any) -> int:
    s = _settings(args)
    j = _journal(s)
    try:
        return int(fn(args, s, j))
    except _Exit as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return exc.code
    finally:
        j.close()


# ====================================================================== find
def _find(args: argparse.Namespace, s: Any, j: Any) -> int:
    msisdn = None
    if args.number is not None:
        msisdn = s.catalog.national(args.number)
        if not msisdn.isdigit():
            raise _Exit(f"--number {args.number!r}: not a phone number", EX_USAGE)
    if args.last4 is not None and not re.fullmatch(r"[0-9]{4}", args.last4):
        raise _Exit("--last4: the code's last four digits", EX_USAGE)
    rows = j.find_vouchers(msisdn=msisdn, ref=args.ref, last4=args.last4, limit=args.limit)
    if args.json:
        print(json.dumps([_public(v) for v in rows], indent=2, ensure_ascii=False))
    elif rows:
        print(f"{'CODE':<17} {'REFERENCE':<20} {'VALUE':>13} {'STATUS':<9} {'VALID UNTIL':<11} "
              f"{'ISSUED':<21} {'SMS':<8} NUMBER")
        for v in rows:
            p = _public(v)
            print(f"{p['code']:<17} {p['ref']:<20} {fmt(p['amount'], p['currency']):>13} "
                  f"{p['status']:<9} {p['expires'] or '-':<11} {_when(p['issued_ts']):<21} "
                  f"{p['sms'] or 'not sent':<8} {p['msisdn'] or '-'}")
    filtered = any(x is not None for x in (args.number, args.ref, args.last4))
    if not rows:
        if not args.json:
            print("no voucher" + (" matches" if filtered else " yet"), file=sys.stderr)
        return EX_NOT_FOUND if filtered else 0
    return 0


# ====================================================================== show
def _show(args: argparse.Namespace, s: Any, j: Any) -> int:
    by = _by(args)
    v = _one(j, args)
    # Journaled first: the full code is shown only once its showing is on record.
    j.append(v["ref"], ev.VoucherShown(v["ref"], v["code"][-4:], int(v["voucher_seq"]), by))
    if args.json:
        print(json.dumps({**_public(v), "code": v["code"], "shown_by": by}, indent=2,
                         ensure_ascii=False))
        return 0
    sms = (f"{v['sms']} {_when(v['sms_ts'])} ({v['sent_count']} accepted)" if v["sms"]
           else "not sent")
    for label, value in (
            ("voucher", f"{pretty(v['code'])}   ({v['code']})"),
            ("reference", v["ref"]), ("value", fmt(v["amount"], v["currency"])),
            ("status", v["status"] + (f" on {v['redeemed_ref']} {_when(v['redeemed_ts'])}"
                                      if v["redeemed_ref"] else "")),
            ("valid until", v["expires"] or "no expiry"), ("issued", _when(v["issued_ts"])),
            ("number", mask_number(v["msisdn"], "*") if v["msisdn"] else "-"),
            ("sms", sms)):
        print(f"{label:>11}: {value}")
    print(f"shown by {by}: journaled")
    return 0


# ====================================================================== reprint
def _printer_free(s: Any) -> str:
    """Why the slip cannot go to the kiosk's printer ("" if it can)."""
    dev = s.devices.get("printer")
    if dev is None or dev.driver != "escpos":
        return (f"no receipt printer to print on (printer driver "
                f"{dev.driver if dev else 'none'!r})")
    from .lock import FolderLock, KioskBusy
    try:
        FolderLock(s.data_dir).probe()
    except KioskBusy:
        return "the kiosk is running and its printer is in use (stop it to print)"
    return ""


async def _print_on(s: Any, lines: list[str], qr: str | None) -> None:
    from drivers import registry
    dev = s.devices["printer"]
    printer = registry.create("printer", dev.driver, **dict(dev.options))
    await printer.start(lambda e: None)
    try:
        await asyncio.wait_for(printer.print_receipt(lines, qr), 60)
    finally:
        await printer.stop()


def _reprint(args: argparse.Namespace, s: Any, j: Any) -> int:
    from drivers.base import DeviceError

    from .receipts import voucher_slip
    from .voucher_delivery import local_today
    by = _by(args)
    v = _one(j, args)
    if v["status"] in ("redeemed", "void"):
        raise _Exit(f"voucher ...{v['code'][-4:]} of {v['ref']} is {v['status']}: nothing to"
                    " reprint", EX_REFUSED)
    slip = voucher_slip(v, currency=j.currency, kiosk_id=s.kiosk_id, site=s.site,
                        support=s.support, tz=s.timezone, now=time.time(),
                        today=local_today(s))
    why = "--no-print" if args.no_print else _printer_free(s)
    printed = False
    if not why:
        try:
            asyncio.run(_print_on(s, slip.lines, slip.qr))
            printed = True
        except (DeviceError, OSError, TimeoutError) as exc:
            why = f"the printer failed: {exc}"
    j.append(v["ref"], ev.VoucherReprinted(v["ref"], v["code"][-4:], int(v["voucher_seq"]),
                                           by, printed))
    print("\n".join(slip.lines))
    print(f"reprinted by {by}: " + ("printed on the kiosk's printer" if printed
                                    else f"not printed ({why})") + "; journaled",
          file=sys.stderr)
    return 0


# ====================================================================== void
def _void(args: argparse.Namespace, s: Any, j: Any) -> int:
    by = _by(args)
    reason = (args.reason or "").strip()
    if not reason:
        raise _Exit("voucher void needs --reason TEXT (why)", EX_USAGE)
    v = _one(j, args)
    done = j.void_voucher(v["code"], by, reason)
    name = f"voucher ...{v['code'][-4:]} of {v['ref']} ({fmt(v['amount'], v['currency'])})"
    if isinstance(done, str):
        why = {"redeemed": f"used already (on {v['redeemed_ref']})", "void": "void already",
               "pending": "held for a top-up still pending: the kiosk makes it valid or void"
                          " when the provider answers",
               "unknown": "no longer in the journal"}.get(done, done)
        raise _Exit(f"{name} not voided: {why}", EX_REFUSED)
    print(f"{name} voided by {by} (was {done.was}): {reason}")
    return 0


# ====================================================================== resend
async def _send(s: Any, j: Any, v: dict[str, Any], by: str) -> tuple[str, str]:
    from .sms import HttpSmsGateway, sms_settings
    from .voucher_delivery import attempt, client_ref
    conf = sms_settings(s)
    gateway = HttpSmsGateway.from_settings(conf)
    try:
        # A new message (the customer asked again): its own key, the same for its retries.
        key = f"{client_ref(v['ref'], int(v['voucher_seq']))}.r{secrets.token_hex(4)}"
        return await attempt(gateway, j, s, conf, v, by=by, ref_key=key)
    finally:
        await gateway.aclose()


def _resend(args: argparse.Namespace, s: Any, j: Any) -> int:
    from .sms import sms_settings
    from .voucher_delivery import local_today
    by = _by(args)
    v = _one(j, args)
    name = f"voucher ...{v['code'][-4:]} of {v['ref']}"
    if v["status"] != "active":
        raise _Exit(f"{name} is {v['status']}: it cannot pay, nothing to send", EX_REFUSED)
    if v["expires"] and v["expires"] < local_today(s):
        raise _Exit(f"{name} expired on {v['expires']}: nothing to send", EX_REFUSED)
    conf = sms_settings(s)
    if not conf.enabled:
        raise _Exit("SMS is not configured ([sms] driver = \"http\" and base_url)", EX_CONFIG)
    if conf.simulator:
        raise _Exit("sms.simulator: the simulated gateway lives inside the running kiosk;"
                    " nothing to send to from here", EX_CONFIG)
    try:
        outcome, detail = asyncio.run(_send(s, j, v, by))
    except ValueError as exc:
        raise _Exit(f"configuration error: {exc}", EX_CONFIG) from exc
    number = mask_number(v["msisdn"], "*") if v["msisdn"] else "-"
    if outcome == "sent":
        print(f"{name} sent by SMS to {number} ({detail}), asked by {by}; journaled")
        return 0
    if outcome == "unavailable":
        raise _Exit(f"{name} not sent: the SMS gateway is unavailable ({detail}); try again",
                    EX_UNAVAILABLE)
    if outcome == "refused":
        raise _Exit(f"{name} not sent: the SMS gateway refused it ({detail}); journaled",
                    EX_REFUSED)
    raise _Exit(f"{name} not sent: its transaction has no usable phone number", EX_REFUSED)


# ====================================================================== sim sms
def cmd_sim_sms(args: argparse.Namespace) -> int:
    from .cli import _serve_until_stopped
    from .sms_sim import SmsGatewaySimulator
    sim = SmsGatewaySimulator(port=args.port, api_key=args.api_key).start()
    print(f"SMS gateway simulator on {sim.url} (API key {args.api_key}); messages: GET "
          f"{sim.url}/_sim/messages; faults: POST {sim.url}/_sim/mode; Ctrl-C stops it",
          flush=True)
    return int(_serve_until_stopped(sim))


def _subcommands(parser: argparse.ArgumentParser) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def register(sub: Any) -> None:
    """Add `kiosk voucher ...` (and `kiosk sim sms` when `kiosk sim` exists)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="journal and state folder")
    one = argparse.ArgumentParser(add_help=False, parents=[common])
    one.add_argument("code", help="the voucher's 16 digits, or its last 4")
    one.add_argument("--ref", help="the voucher's transaction reference (when 4 digits match"
                                   " several)")
    one.add_argument("--by", required=True, help="who does it (journaled)")

    v = sub.add_parser("voucher", help="find a customer's voucher, show, reprint, void or"
                                       " resend it (journaled)")
    vsub = v.add_subparsers(dest="voucher_command", required=True)
    f = vsub.add_parser("find", parents=[common], help="vouchers by number, reference or last"
                                                       " four digits (codes masked)")
    which = f.add_mutually_exclusive_group()
    which.add_argument("--number", help="the customer's mobile number")
    which.add_argument("--ref", help="the transaction reference")
    which.add_argument("--last4", help="the code's last four digits")
    f.add_argument("--limit", type=int, default=50)
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=lambda a: _run(a, _find))
    sh = vsub.add_parser("show", parents=[one], help="the full code, for the technician to"
                                                     " hand to the customer (journaled)")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=lambda a: _run(a, _show))
    rp = vsub.add_parser("reprint", parents=[one], help="the voucher's slip: to the terminal,"
                                                        " and the printer if the kiosk is"
                                                        " stopped (journaled)")
    rp.add_argument("--no-print", action="store_true", help="the terminal only")
    rp.set_defaults(func=lambda a: _run(a, _reprint))
    vd = vsub.add_parser("void", parents=[one], help="void an active voucher: it can no"
                                                     " longer pay (journaled, with its"
                                                     " posting)")
    vd.add_argument("--reason", required=True, help="why (journaled)")
    vd.set_defaults(func=lambda a: _run(a, _void))
    rs = vsub.add_parser("resend", parents=[one], help="send the voucher's SMS to its"
                                                       " customer again (journaled)")
    rs.set_defaults(func=lambda a: _run(a, _resend))

    sim = sub.choices.get("sim")
    simsub = _subcommands(sim) if sim is not None else None
    if simsub is not None:
        ss = simsub.add_parser("sms", help="HTTP SMS gateway that records the messages (the"
                                           " kiosk's [sms] base_url)")
        ss.add_argument("--port", type=int, default=8079)
        ss.add_argument("--api-key", default="kiosk-sms-key")
        ss.set_defaults(func=cmd_sim_sms)
