"""APDUs for SIM cards (ISO 7816-4, 3GPP TS 51.011 / TS 102 221), bytes in and out, no I/O.

Command APDU (C-APDU) as sent over T=0 (the protocol of SIM cards)::

    CLA INS P1 P2                 case 1: no data, no response data
    CLA INS P1 P2 Le              case 2: response data expected (Le 00 means 256)
    CLA INS P1 P2 Lc data...      case 3: command data
    CLA INS P1 P2 Lc data...      case 4: data both ways; on T=0 the Le is NOT sent, the card
                                  answers 61xx (UICC) / 9Fxx (SIM) and the data is fetched
                                  with GET RESPONSE

Response APDU (R-APDU)::

    data... SW1 SW2               SW1 SW2 = status word, 90 00 = success

CLA is 00 for a UICC (3G/4G card, TS 102 221) and A0 for a classic GSM SIM (TS 51.011).
"""

from __future__ import annotations

from dataclasses import dataclass

INS_VERIFY = 0x20              # never sent by the kiosk
INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_READ_RECORD = 0xB2
INS_GET_RESPONSE = 0xC0

CLA_UICC = 0x00
CLA_SIM = 0xA0

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_NOT_SATISFIED = 0x6982       # UICC: PIN needed
SW_SECURITY_NOT_SATISFIED_SIM = 0x9804   # SIM: access condition not fulfilled (CHV1)
SW_FILE_NOT_FOUND = 0x6A82
SW_FILE_NOT_FOUND_SIM = 0x9404
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_WRONG_PARAMETERS = 0x6B00
SW_INCOMPATIBLE_FILE = 0x6981
SW_NO_CURRENT_EF = 0x6986
SW_NO_DATA_AVAILABLE = 0x6985
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_NO_DIAGNOSIS = 0x6F00

SW1_DATA_AVAILABLE = 0x61      # UICC: xx response bytes available -> GET RESPONSE
SW1_DATA_AVAILABLE_SIM = 0x9F  # SIM: same meaning
SW1_WRONG_LE = 0x6C            # wrong Le: resend the same command with Le = xx
SW1_PROACTIVE = 0x91           # SIM toolkit command pending: the command itself succeeded

NOT_FOUND = frozenset({SW_FILE_NOT_FOUND, SW_FILE_NOT_FOUND_SIM})
PIN_REQUIRED = frozenset({SW_SECURITY_NOT_SATISFIED, SW_SECURITY_NOT_SATISFIED_SIM})


class ApduError(ValueError):
    """Bytes that are not a valid APDU (or a command that cannot be encoded)."""


def _short(n: int) -> int:
    """Le/Lc/SW xx byte: 00 stands for 256."""
    return n or 256


@dataclass(frozen=True)
class Apdu:
    """A command APDU. `le` is the expected response length (1..256), None for none."""
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        if not all(0 <= b <= 0xFF for b in (self.cla, self.ins, self.p1, self.p2)):
            raise ApduError("CLA, INS, P1 and P2 are single bytes")
        if len(self.data) > 255:
            raise ApduError("command data longer than 255 bytes (short APDU)")
        if self.le is not None and not 1 <= self.le <= 256:
            raise ApduError(f"Le {self.le} outside 1..256")

    def to_bytes(self) -> bytes:
        """T=0 form: a command with data carries no Le (case 4 is sent as case 3)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            return header + bytes((len(self.data),)) + self.data
        if self.le is not None:
            return header + bytes((self.le % 256,))
        return header

    def with_le(self, le: int) -> Apdu:
        return Apdu(self.cla, self.ins, self.p1, self.p2, self.data, le)


def parse_command(raw: bytes) -> Apdu:
    """Decode a short C-APDU (the card's side). A trailing Le after the data is accepted."""
    if len(raw) < 4:
        raise ApduError(f"C-APDU of {len(raw)} bytes, at least 4 needed")
    cla, ins, p1, p2 = raw[:4]
    if len(raw) == 4:
        return Apdu(cla, ins, p1, p2)
    if len(raw) == 5:
        return Apdu(cla, ins, p1, p2, le=_short(raw[4]))
    lc = raw[4]
    if lc == 0 or len(raw) not in (5 + lc, 6 + lc):
        raise ApduError(f"Lc {lc} does not match a C-APDU of {len(raw)} bytes")
    le = _short(raw[5 + lc]) if len(raw) == 6 + lc else None
    return Apdu(cla, ins, p1, p2, bytes(raw[5:5 + lc]), le)


def select(cla: int, fid: bytes, uicc: bool) -> Apdu:
    """SELECT by file id: `CLA A4 P1 P2 02 FID`.

    UICC: P1 00 (select by id), P2 04 (return the FCP template). SIM: P1 P2 00 00.
    """
    if len(fid) != 2:
        raise ApduError("a file id is 2 bytes")
    return Apdu(cla, INS_SELECT, 0x00, 0x04 if uicc else 0x00, bytes(fid))


def read_binary(cla: int, offset: int, length: int) -> Apdu:
    """READ BINARY: `CLA B0 offset-high offset-low Le` (offset up to 7FFF)."""
    if not 0 <= offset <= 0x7FFF:
        raise ApduError(f"offset {offset} outside 0..7FFF")
    return Apdu(cla, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)


def read_record(cla: int, record: int, length: int) -> Apdu:
    """READ RECORD, absolute mode: `CLA B2 record 04 Le` (records count from 1)."""
    if not 1 <= record <= 254:
        raise ApduError(f"record {record} outside 1..254")
    return Apdu(cla, INS_READ_RECORD, record, 0x04, le=length)


def get_response(cla: int, length: int) -> Apdu:
    """GET RESPONSE: `CLA C0 00 00 Le`, after 61xx / 9Fxx."""
    return Apdu(cla, INS_GET_RESPONSE, 0x00, 0x00, le=length)


@dataclass(frozen=True)
class Response:
    """A response APDU: data, then the status word SW1 SW2."""
    data: bytes
    sw1: int
    sw2: int

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        """90 00, or 91 xx (done, and a SIM toolkit command is pending)."""
        return self.sw == SW_OK or self.sw1 == SW1_PROACTIVE

    @property
    def available(self) -> int | None:
        """61 xx / 9F xx: the number of response bytes to fetch with GET RESPONSE."""
        if self.sw1 in (SW1_DATA_AVAILABLE, SW1_DATA_AVAILABLE_SIM):
            return _short(self.sw2)
        return None

    @property
    def correct_le(self) -> int | None:
        """6C xx: the Le the card wants; resend the same command with it."""
        return _short(self.sw2) if self.sw1 == SW1_WRONG_LE else None

    @property
    def not_found(self) -> bool:
        return self.sw in NOT_FOUND

    @property
    def pin_required(self) -> bool:
        return self.sw in PIN_REQUIRED

    def to_bytes(self) -> bytes:
        return bytes(self.data) + bytes((self.sw1, self.sw2))


def parse_response(raw: bytes) -> Response:
    if len(raw) < 2:
        raise ApduError(f"R-APDU of {len(raw)} bytes, at least SW1 SW2 needed")
    return Response(bytes(raw[:-2]), raw[-2], raw[-1])


def status(sw: int, data: bytes = b"") -> bytes:
    """An R-APDU from a status word (the card's side)."""
    return bytes(data) + sw.to_bytes(2, "big")
