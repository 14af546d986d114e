"""Reading a SIM: the APDU sequence over any `transmit(C-APDU bytes) -> R-APDU bytes`, no I/O.

    SELECT MF 3F00, CLA 00          61xx -> UICC        (else: retry the classic form)
    SELECT MF 3F00, CLA A0          9Fxx -> classic SIM (else: NotASim, e.g. a bank card)
    SELECT 2FE2, READ BINARY 10     EF.ICCID, must decode and pass the Luhn check
    SELECT 7F20, 6F46 / 6FAD / 6F07 EF.SPN, EF.AD, EF.IMSI   (best effort)
    SELECT 7F10, 6F40, READ RECORD  EF.MSISDN record 1       (best effort)

T=0 is handled in one place, `_Session.send`: 61xx / 9Fxx -> GET RESPONSE (same CLA) with
Le = xx; 6Cxx -> the same command again with Le = xx. A SELECT whose answer is not needed
is not followed by GET RESPONSE (allowed on T=0; keeps a full read at 15 APDUs).
The PIN is never presented: files behind it are reported as "pin_required".
Transport exceptions raised by `transmit` propagate unchanged; the caller maps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from . import apdu, files
from .apdu import Apdu, ApduError, Response

Transmit = Callable[[bytes], bytes]
T = TypeVar("T")

MF, EF_ICCID = b"\x3f\x00", b"\x2f\xe2"
DF_GSM, EF_SPN, EF_AD, EF_IMSI = b"\x7f\x20", b"\x6f\x46", b"\x6f\xad", b"\x6f\x07"
DF_TELECOM, EF_MSISDN = b"\x7f\x10", b"\x6f\x40"

AD_READ_LENGTH = 4      # EF.AD is 3 bytes on phase 1 SIMs: the card answers 6C03, we resend
_MAX_T0_ROUNDS = 8      # GET RESPONSE / resend rounds for one command (a looping card stops)


class CardKind(str, Enum):
    SIM = "sim"         # classic GSM SIM, CLA A0 (TS 51.011)
    UICC = "uicc"       # UICC with USIM, CLA 00 (TS 102 221)


@dataclass(frozen=True)
class SimInfo:
    kind: CardKind
    iccid: str
    spn: str | None
    imsi: str | None
    msisdn: str | None
    ad: files.AdminData | None
    readable: tuple[str, ...]     # files read and decoded, e.g. ("ICCID", "SPN", "AD")
    unreadable: dict[str, str]    # file -> "pin_required", "not_found", "empty" (no number in
                                  # EF.MSISDN), "invalid" (undecodable) or "error" (other SW)
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

    def select(self, fid: bytes, fetch: bool = False) -> Response:
        return self.send(apdu.select(self.cla, fid, self.uicc), fetch=fetch)

    def select_mf(self) -> CardKind:
        first = self.send(apdu.select(apdu.CLA_UICC, MF, uicc=True))
        if first.ok:
            return CardKind.UICC
        self.cla, self.uicc = apdu.CLA_SIM, False
        second = self.send(apdu.select(apdu.CLA_SIM, MF, uicc=False))
        if second.ok:
            return CardKind.SIM
        raise NotASim(f"SELECT MF answered {first.sw:04X} (CLA 00) and {second.sw:04X} (CLA A0)")

    def read_binary(self, length: int) -> bytes:
        response = self.send(apdu.read_binary(self.cla, 0, length))
        _check(response)
        return response.data

    def record_length(self, select_response: bytes) -> int:
        if self.uicc:
            return _fcp_record_length(select_response)
        if len(select_response) < 15 or select_response[13] != 0x01:   # 01: linear fixed
            raise _Unreadable("invalid")
        return select_response[14]

    def read_record(self, record: int, length: int) -> bytes:
        response = self.send(apdu.read_record(self.cla, record, length))
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


def _fcp_record_length(fcp: bytes) -> int:
    """FCP template `62 L ... 82 L descriptor coding 00 record-length(2) [count]`."""
    if len(fcp) < 2 or fcp[0] != 0x62:
        raise _Unreadable("invalid")
    body, i = fcp[2:2 + fcp[1]], 0
    while i + 2 <= len(body):
        tag, length = body[i], body[i + 1]
        value = body[i + 2:i + 2 + length]
        if tag == 0x82 and len(value) >= 4 and value[0] & 0x07 == 0x02:   # linear fixed
            return int.from_bytes(value[2:4], "big")
        i += 2 + length
    raise _Unreadable("invalid")


def read_sim(transmit: Transmit) -> SimInfo:
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

    def attempt(name: str, read: Callable[[], T]) -> T | None:
        try:
            value = read()
        except _Unreadable as exc:
            unreadable[name] = exc.reason
            return None
        except ValueError:                       # FileFormatError, ApduError
            unreadable[name] = "invalid"
            return None
        readable.append(name)
        return value

    def in_df(df: bytes, names: tuple[str, ...]) -> bool:
        try:
            _check(s.select(df))
            return True
        except _Unreadable as exc:
            unreadable.update(dict.fromkeys(names, exc.reason))
        except ValueError:
            unreadable.update(dict.fromkeys(names, "invalid"))
        return False

    def ef(fid: bytes, length: int) -> bytes:
        _check(s.select(fid))
        return s.read_binary(length)

    def msisdn() -> str:
        selected = s.select(EF_MSISDN, fetch=True)
        _check(selected)
        number = files.decode_msisdn(s.read_record(1, s.record_length(selected.data)))
        if number is None:
            raise _Unreadable("empty")
        return number

    spn = ad = imsi = number = None
    if in_df(DF_GSM, ("SPN", "AD", "IMSI")):
        spn = attempt("SPN", lambda: files.decode_spn(ef(EF_SPN, files.SPN_SIZE)).name)
        ad = attempt("AD", lambda: files.decode_ad(ef(EF_AD, AD_READ_LENGTH)))
        imsi = attempt("IMSI", lambda: files.decode_imsi(ef(EF_IMSI, files.IMSI_SIZE)))
    if in_df(DF_TELECOM, ("MSISDN",)):
        number = attempt("MSISDN", msisdn)
    return SimInfo(kind=kind, iccid=iccid, spn=spn, imsi=imsi, msisdn=number, ad=ad,
                   readable=tuple(readable), unreadable=unreadable, apdus=s.apdus)
