"""Reading a SIM: the APDU sequence over any `transmit(C-APDU bytes) -> R-APDU bytes`, no I/O.

    SELECT MF 3F00, CLA 00          61xx -> UICC        (else: retry the classic form)
    SELECT MF 3F00, CLA A0          9Fxx -> classic SIM (else: NotASim, e.g. a bank card)
    SELECT 2FE2, READ BINARY 10     EF.ICCID, must decode and pass the Luhn check
    SELECT 7F20, 6F46, READ BINARY  EF.SPN, only with `spn=True` (best effort)

Only what is used is read: the kiosk identifies the SIM by its ICCID (the backend gives the
number); the technician's `kiosk diag sim` also shows the operator name (EF.SPN, readable
without PIN, nothing personal). EF.IMSI and EF.MSISDN, the subscriber's identity and
number, are never selected: 3 APDUs on a UICC, 4 on a classic SIM (6 and 7 with the SPN).

T=0 is handled in one place, `_Session.send`: 61xx / 9Fxx -> GET RESPONSE (same CLA) with
Le = xx; 6Cxx -> the same command again with Le = xx. A SELECT whose answer is not needed
(none is, here) is not followed by GET RESPONSE (allowed on T=0).
The PIN is never presented. Transport exceptions raised by `transmit` propagate unchanged;
the caller maps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from . import apdu, files
from .apdu import Apdu, ApduError, Response

Transmit = Callable[[bytes], bytes]

MF, EF_ICCID = b"\x3f\x00", b"\x2f\xe2"
DF_GSM, EF_SPN = b"\x7f\x20", b"\x6f\x46"

_MAX_T0_ROUNDS = 8      # GET RESPONSE / resend rounds for one command (a looping card stops)


class CardKind(str, Enum):
    SIM = "sim"         # classic GSM SIM, CLA A0 (TS 51.011)
    UICC = "uicc"       # UICC with USIM, CLA 00 (TS 102 221)


@dataclass(frozen=True)
class SimInfo:
    kind: CardKind
    iccid: str
    spn: str | None               # None: not asked for, or not on the card
    readable: tuple[str, ...]     # files read and decoded: ("ICCID",) or ("ICCID", "SPN")
    unreadable: dict[str, str]    # file -> "pin_required", "not_found", "invalid"
                                  # (undecodable) or "error" (other SW)
    apdus: int                    # C-APDUs sent, GET RESPONSE and resends included


class SimReadError(Exception):
    reason = "unreadable"


class NotASim(SimReadError):
    """No SIM file system answers (a bank card, a dead card, no readable EF.ICCID)."""
    reason = "not_sim"


class BadIccidRead(SimReadError):
    """EF.ICCID was read but is not a valid ICCID (bad digits, length, prefix or Luhn)."""
    reason = "bad_iccid"


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Session:
    def __init__(self, transmit: Transmit) -> None:
        self.transmit = transmit
        self.apdus = 0
        self.cla = apdu.CLA_UICC
        self.uicc = True

    def _exchange(self, command: Apdu) -> Response:
        self.apdus += 1
        return apdu.parse_response(self.transmit(command.to_bytes()))

    def send(self, command: Apdu, fetch: bool = True) -> Response:
        """One command with T=0 handling. `fetch=False` leaves a 61xx / 9Fxx answer unfetched
        and reports it as 90 00 without data."""
        response = self._exchange(command)
        data = b""
        for _ in range(_MAX_T0_ROUNDS):
            if (le := response.correct_le) is not None:
                response = self._exchange(command.with_le(le))
            elif (available := response.available) is not None:
                if not fetch:
                    return Response(data, 0x90, 0x00)
                data += response.data
                command = apdu.get_response(command.cla, available)
                response = self._exchange(command)
            else:
                break
        return Response(data + response.data, response.sw1, response.sw2)

    def select(self, fid: bytes) -> Response:
        """SELECT, its FCP / select response left unfetched: nothing here needs it."""
        return self.send(apdu.select(self.cla, fid, self.uicc), fetch=False)

    def select_mf(self) -> CardKind:
        first = self.send(apdu.select(apdu.CLA_UICC, MF, uicc=True), fetch=False)
        if first.ok:
            return CardKind.UICC
        self.cla, self.uicc = apdu.CLA_SIM, False
        second = self.send(apdu.select(apdu.CLA_SIM, MF, uicc=False), fetch=False)
        if second.ok:
            return CardKind.SIM
        raise NotASim(f"SELECT MF answered {first.sw:04X} (CLA 00) and {second.sw:04X} (CLA A0)")

    def read_binary(self, length: int) -> bytes:
        response = self.send(apdu.read_binary(self.cla, 0, length))
        _check(response)
        return response.data


def _check(response: Response) -> None:
    if response.ok:
        return
    if response.pin_required:
        raise _Unreadable("pin_required")
    if response.not_found:
        raise _Unreadable("not_found")
    raise _Unreadable("error")


def read_sim(transmit: Transmit, spn: bool = False) -> SimInfo:
    """The card's kind and ICCID (NotASim, BadIccidRead if none), and its SPN if asked."""
    s = _Session(transmit)
    try:
        kind = s.select_mf()
    except ApduError as exc:
        raise NotASim(f"SELECT MF: {exc}") from None
    try:
        _check(s.select(EF_ICCID))
        raw_iccid = s.read_binary(files.ICCID_SIZE)
    except (_Unreadable, ApduError) as exc:
        raise NotASim(f"EF.ICCID not readable: {exc}") from None
    try:
        iccid = files.check_iccid(files.decode_iccid(raw_iccid))
    except ValueError as exc:                    # FileFormatError or BadIccid
        raise BadIccidRead(str(exc)) from None

    readable = ["ICCID"]
    unreadable: dict[str, str] = {}
    name = None
    if spn:
        try:
            _check(s.select(DF_GSM))
            _check(s.select(EF_SPN))
            name = files.decode_spn(s.read_binary(files.SPN_SIZE)).name
            readable.append("SPN")
        except _Unreadable as exc:
            unreadable["SPN"] = exc.reason
        except ValueError:                       # FileFormatError, ApduError
            unreadable["SPN"] = "invalid"
    return SimInfo(kind=kind, iccid=iccid, spn=name, readable=tuple(readable),
                   unreadable=unreadable, apdus=s.apdus)
