"""JCM ID-003, the serial protocol of JCM banknote acceptors, as a pure module (no I/O).

Frame, the same both ways (9600 baud, 8E1)::

    +------+-----+-----+-----------+------+------+
    | SYNC | LNG | CMD | DATA ...  | CRCL | CRCH |
    | FC   | n   | 1 B | n - 5 B   | 1 B  | 1 B  |
    +------+-----+-----+-----------+------+------+
      LNG = the whole frame length, SYNC to CRCH (5 + len(DATA))
      CRC = CRC-16/KERMIT over SYNC .. DATA, low byte first

The host polls with STATUS_REQUEST and the device answers with a status frame; operation
commands (RESET, STACK, RETURN, HOLD, WAIT) are answered ACK (0x50); setting commands
(0xC0-0xC5) are echoed with the same code and data; getters (0x80-0x8A) are answered with the
same code and the value. The host's own ACK (after VEND_VALID) gets no answer. A command the
device cannot take in its present state is answered INVALID_COMMAND (0x4B).

Sources checked (public code; no JCM document was available): lamassu-machine
lib/id003/id003rs232.js, AlexObukhoff/TerminalClient ID003CashAcceptorConstants.h and
ID003CashAcceptor.cpp, max7019/Id003-.Net-driver RejectingError.cs / DeviceError.cs,
Portalum/Portalum.Id003, and a Rust crate for JCM devices (RejectCode). Where they disagree
the choice is noted next to the table concerned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from ..crc import crc16_kermit  # the frame CRC (tests reach it as id003.crc16_kermit)

SYNC = 0xFC
HEADER = 3                      # SYNC LNG CMD
OVERHEAD = 5                    # SYNC LNG CMD + 2 CRC bytes
MAX_FRAME = 250                 # longer LNG values are treated as line noise


class ProtocolError(ValueError):
    """Bytes or values that are not valid ID-003 (the device misbehaved, or we misused it)."""


# ---------------------------------------------------------------------------- codes
class Command(IntEnum):
    """What the host sends."""
    STATUS_REQUEST = 0x11
    RESET = 0x40
    STACK_1 = 0x41                  # VEND_VALID when the note passes the stacker lever
    STACK_2 = 0x42                  # VEND_VALID when the note is fully in the stacker
    RETURN = 0x43
    HOLD = 0x44
    WAIT = 0x45
    ACK = 0x50
    # settings: echoed back by the device
    ENABLE_DENOMINATIONS = 0xC0     # 2-byte mask, bit = 1 inhibits that denomination
    SECURITY = 0xC1
    COMMUNICATION_MODE = 0xC2
    INHIBIT = 0xC3                  # 01 inhibit (no notes) / 00 accept
    DIRECTION = 0xC4
    OPTIONAL_FUNCTION = 0xC5
    # getters: setting code - 0x40, answered with the same code + value
    GET_ENABLE_DENOMINATIONS = 0x80
    GET_SECURITY = 0x81
    GET_COMMUNICATION_MODE = 0x82
    GET_INHIBIT = 0x83
    GET_DIRECTION = 0x84
    GET_OPTIONAL_FUNCTION = 0x85
    GET_VERSION = 0x88
    GET_BOOT_VERSION = 0x89
    GET_CURRENCY = 0x8A


ACK = 0x50                          # the device's answer to an operation command
ANSWERED_WITH_ACK = frozenset({Command.RESET, Command.STACK_1, Command.STACK_2,
                               Command.RETURN, Command.HOLD, Command.WAIT})
# Data length of each setting (Portalum and lamassu send C0/C1/C5 with 2 bytes, C2/C3/C4 with 1).
SETTING_LENGTHS: dict[int, int] = {
    Command.ENABLE_DENOMINATIONS: 2, Command.SECURITY: 2, Command.COMMUNICATION_MODE: 1,
    Command.INHIBIT: 1, Command.DIRECTION: 1, Command.OPTIONAL_FUNCTION: 2}
GETTER_OFFSET = 0x40                # GET_x = x - 0x40
INHIBIT_ON = b"\x01"
INHIBIT_OFF = b"\x00"


class Status(IntEnum):
    """What the device answers to STATUS_REQUEST."""
    IDLING = 0x11
    ACCEPTING = 0x12
    ESCROW = 0x13                   # + 1 byte: escrow (denomination) code 0x61..
    STACKING = 0x14
    VEND_VALID = 0x15               # the credit point: the host must ACK
    STACKED = 0x16
    REJECTING = 0x17                # + 1 byte: reject reason 0x71..0x7E
    RETURNING = 0x18
    HOLDING = 0x19
    DISABLED = 0x1A
    INITIALIZE = 0x1B
    POWER_UP = 0x40
    POWER_UP_BILL_IN_ACCEPTOR = 0x41
    POWER_UP_BILL_IN_STACKER = 0x42
    STACKER_FULL = 0x43
    STACKER_OPEN = 0x44
    ACCEPTOR_JAM = 0x45
    STACKER_JAM = 0x46
    PAUSE = 0x47
    CHEATED = 0x48
    FAILURE = 0x49                  # + 1 byte: failure code
    COMMUNICATION_ERROR = 0x4A
    INVALID_COMMAND = 0x4B


_DATA_BYTES = {Status.ESCROW: 1, Status.REJECTING: 1, Status.FAILURE: 1}

# Transient = the device leaves it by itself within seconds, or on the host's routine answer
# (VEND_VALID ends when the host ACKs, which a driver always does). A driver times these out.
# Not transient: ESCROW and HOLDING (they wait for the host's decision), the power-up states
# (they wait for RESET), IDLING/DISABLED and the faults. lamassu's list is narrower
# (accepting, stacking, stacked, rejecting, returning); PAUSE (a second note pushed in while
# stacking), INITIALIZE and VEND_VALID are added here because each can get stuck in the field.
TRANSIENT = frozenset({Status.ACCEPTING, Status.STACKING, Status.VEND_VALID, Status.STACKED,
                       Status.REJECTING, Status.RETURNING, Status.PAUSE, Status.INITIALIZE})
POWER_UP_STATES = frozenset({Status.POWER_UP, Status.POWER_UP_BILL_IN_ACCEPTOR,
                             Status.POWER_UP_BILL_IN_STACKER})
FAULTS = frozenset({Status.STACKER_FULL, Status.STACKER_OPEN, Status.ACCEPTOR_JAM,
                    Status.STACKER_JAM, Status.CHEATED, Status.FAILURE})

# Reject reasons. Sources disagree on several codes: 0x76 is "denomination discrimination"
# in lamassu and max7019 but "inhibited note" in the Rust crate; 0x7A is "unknown" (lamassu,
# max7019) vs "return requested by host" (Rust); 0x7B "operation error" vs "transport error
# from the stacker"; 0x7C "residual bills at the stacker" vs "transport fraud". We follow
# lamassu + max7019 (two real deployments agree), and 0x79 is the inhibit reason everywhere.
REJECT_REASONS: dict[int, str] = {
    0x71: "insertion",                  # insertion error
    0x72: "magnetic_pattern",           # magnetic pattern error
    0x73: "residual_bill_at_head",      # return action due to residual bills at the head
    0x74: "calibration",                # calibration / magnification error
    0x75: "conveying",                  # conveying error
    0x76: "discrimination",             # discrimination error for the bill denomination
    0x77: "photo_pattern_1",
    0x78: "photo_level",
    0x79: "inhibit",                    # denomination inhibited, or wrong insertion direction
    0x7A: "unknown",
    0x7B: "operation",
    0x7C: "residual_bill_at_stacker",
    0x7D: "length",
    0x7E: "photo_pattern_2",
}
REJECT_CODES: dict[str, int] = {name: code for code, name in REJECT_REASONS.items()}

# Failure codes after 0x49 (TerminalClient and max7019 agree where both list a code;
# 0xA7, 0xAC, 0xAD are from TerminalClient only).
FAILURE_CODES: dict[int, str] = {
    0xA2: "stack_motor", 0xA5: "transport_motor_speed", 0xA6: "transport_motor",
    0xA7: "aligning_motor", 0xAB: "cash_box_not_ready", 0xAC: "optical_sensor",
    0xAD: "magnetic_sensor", 0xAF: "validator_head_removed", 0xB0: "boot_rom",
    0xB1: "external_rom", 0xB2: "rom", 0xB3: "external_rom_writing",
}

ESCROW_CODE_FIRST = 0x61            # escrow code of denomination slot 0 (mask bit 0)
MASK_SLOTS = 16                     # the 2-byte mask of ENABLE_DENOMINATIONS


# ---------------------------------------------------------------------------- framing
def encode(cmd: int, data: bytes = b"") -> bytes:
    """One frame: FC LNG CMD DATA CRCL CRCH."""
    if not 0 <= cmd <= 0xFF:
        raise ProtocolError(f"command {cmd!r} is not a byte")
    if len(data) > MAX_FRAME - OVERHEAD:
        raise ProtocolError(f"{len(data)} data bytes do not fit in a frame")
    body = bytes((SYNC, OVERHEAD + len(data), cmd)) + bytes(data)
    return body + crc16_kermit(body).to_bytes(2, "little")


@dataclass(frozen=True)
class Frame:
    cmd: int
    data: bytes = b""

    def to_bytes(self) -> bytes:
        return encode(self.cmd, self.data)


class Decoder:
    """Cuts a byte stream into valid frames, resynchronising on SYNC after anything wrong.

    Bytes before a SYNC are garbage; a LNG below 5 or above `max_length`, or a bad CRC,
    drops that SYNC byte and the scan resumes at the next FC. A frame whose LNG promises
    more bytes than have arrived is waited for, unless a complete frame with a valid CRC
    already starts at a later FC: then the first FC was line noise (otherwise one stray
    `FC F0` would swallow the next 240 bytes, i.e. dozens of polls). The price: a long
    frame still arriving whose DATA holds a whole valid frame is cut at that inner frame;
    no ID-003 answer (ASCII version, currency table) plausibly does. Never raises.
    """

    def __init__(self, max_length: int = MAX_FRAME) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self.garbage_bytes = 0
        self.bad_crc = 0
        self.bad_length = 0

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        while buf:
            start = buf.find(SYNC)
            if start < 0:
                self.garbage_bytes += len(buf)
                buf.clear()
                break
            if start:
                self.garbage_bytes += start
                del buf[:start]
            if len(buf) < 2:
                break
            length = buf[1]
            if not OVERHEAD <= length <= self.max_length:
                self.bad_length += 1
                del buf[:1]
                continue
            if len(buf) < length:
                later = self._complete_frame_after_start()
                if later is None:
                    break
                self.garbage_bytes += later
                del buf[:later]
                continue
            if self._crc_ok(0, length):
                frames.append(Frame(buf[2], bytes(buf[HEADER:length - 2])))
                del buf[:length]
            else:
                self.bad_crc += 1
                del buf[:1]
        return frames

    def _crc_ok(self, at: int, length: int) -> bool:
        buf = self._buf
        crc = crc16_kermit(bytes(buf[at:at + length - 2]))
        return crc == buf[at + length - 2] | buf[at + length - 1] << 8

    def _complete_frame_after_start(self) -> int | None:
        buf = self._buf
        at = buf.find(SYNC, 1)
        while at > 0:
            if at + 1 < len(buf):
                length = buf[at + 1]
                if (OVERHEAD <= length <= self.max_length and at + length <= len(buf)
                        and self._crc_ok(at, length)):
                    return at
            at = buf.find(SYNC, at + 1)
        return None


# ---------------------------------------------------------------------------- statuses
@dataclass(frozen=True)
class StatusReport:
    status: Status
    denomination: int | None = None     # escrow code (ESCROW only); see parse_currency_table
    reject_code: int | None = None      # REJECTING only
    reject_reason: str | None = None    # REJECT_REASONS name, "unknown_0x.." if not listed
    failure_code: int | None = None     # FAILURE only

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT

    @property
    def reason(self) -> str | None:
        """Same as reject_reason."""
        return self.reject_reason


def is_status(code: int) -> bool:
    return code in Status._value2member_map_


def parse_status(frame: Frame) -> StatusReport:
    """The answer to STATUS_REQUEST, typed. Raises ProtocolError on a non-status code or a
    data length the status does not have (ESCROW, REJECTING, FAILURE carry 1 byte, the others
    none; barcode-ticket escrow, with its ticket data, is not supported)."""
    if not is_status(frame.cmd):
        raise ProtocolError(f"0x{frame.cmd:02X} is not a status")
    status = Status(frame.cmd)
    want = _DATA_BYTES.get(status, 0)
    if len(frame.data) != want:
        raise ProtocolError(f"{status.name} carries {want} data bytes, got {frame.data.hex()}")
    if status is Status.ESCROW:
        # The code is not range-checked: the driver looks it up in the currency table and
        # returns a note it does not know, rather than stalling on an exception.
        return StatusReport(status, denomination=frame.data[0])
    if status is Status.REJECTING:
        code = frame.data[0]
        return StatusReport(status, reject_code=code,
                            reject_reason=REJECT_REASONS.get(code, f"unknown_0x{code:02x}"))
    if status is Status.FAILURE:
        return StatusReport(status, failure_code=frame.data[0])
    return StatusReport(status)


# ---------------------------------------------------------------------------- currency
@dataclass(frozen=True)
class Denomination:
    """One entry of the GET_CURRENCY (0x8A) answer: value = base x 10^exponent MAJOR units."""
    code: int                   # escrow code, as reported with ESCROW
    country: int                # JCM country code (vendor-specific, not ISO 4217)
    base: int
    exponent: int

    @property
    def value(self) -> int:
        return self.base * 10 ** self.exponent

    def minor(self, currency: int | str) -> int:
        return to_minor(self.value, currency)


# ISO 4217 minor-unit exponents of currencies a kiosk might take notes in.
CURRENCY_EXPONENTS = {"PHP": 2, "USD": 2, "EUR": 2, "IDR": 2, "MYR": 2, "THB": 2,
                      "INR": 2, "VND": 0, "JPY": 0, "KRW": 0}


def to_minor(major: int, currency: int | str) -> int:
    """Major units to minor units; `currency` is the exponent or an ISO 4217 code
    (PHP: exponent 2, 20 pesos -> 2000 centavos)."""
    if isinstance(currency, str):
        if currency not in CURRENCY_EXPONENTS:
            raise ProtocolError(f"minor-unit exponent of {currency!r} unknown")
        currency = CURRENCY_EXPONENTS[currency]
    return major * 10 ** currency


def parse_currency_table(data: bytes) -> dict[int, Denomination]:
    """Entries of 4 bytes [escrow code, country code, base value, exponent], by escrow code.

    Layout as read by lamassu (`_denominations`) and TerminalClient (`loadParTable`), which
    agree. Unassigned slots (base 0) are skipped, like lamassu. A trailing partial entry is
    ignored, like TerminalClient (lamassu's comment mentions two trailing bytes on some
    firmware). A repeated escrow code raises ProtocolError.
    """
    table: dict[int, Denomination] = {}
    for at in range(0, len(data) - len(data) % 4, 4):
        code, country, base, exponent = data[at:at + 4]
        if base == 0:
            continue
        if code in table:
            raise ProtocolError(f"escrow code 0x{code:02X} assigned twice")
        table[code] = Denomination(code, country, base, exponent)
    return table


def encode_currency_table(values: Mapping[int, int], country: int,
                          currency_exponent: int = 0) -> bytes:
    """The GET_CURRENCY data for {escrow code: value in MINOR units} (the simulator's side).

    The value is written with the smallest exponent that fits its base in a byte
    (PHP 1000 -> base 100, exponent 1).
    """
    out = bytearray()
    for code, minor in sorted(values.items()):
        major, rest = divmod(minor, 10 ** currency_exponent)
        if rest or major <= 0:
            raise ProtocolError(f"{minor} minor units is not a whole, positive note")
        exponent = 0
        while major > 0xFF and major % 10 == 0:
            major //= 10
            exponent += 1
        if major > 0xFF or not 0 <= code <= 0xFF or not 0 <= country <= 0xFF:
            raise ProtocolError(f"0x{code:02X} = {minor} cannot be encoded")
        out += bytes((code, country, major, exponent))
    return bytes(out)


def denomination_mask(enabled_codes: Iterable[int]) -> bytes:
    """The ENABLE_DENOMINATIONS (0xC0) data: a bit per escrow code from 0x61, byte 0 bit 0
    first (as TerminalClient's applyParTable); 1 = inhibited, so every code not listed in
    `enabled_codes` is inhibited."""
    mask = (1 << MASK_SLOTS) - 1
    for code in enabled_codes:
        slot = code - ESCROW_CODE_FIRST
        if not 0 <= slot < MASK_SLOTS:
            raise ProtocolError(f"escrow code 0x{code:02X} has no bit in the mask")
        mask &= ~(1 << slot)
    return mask.to_bytes(2, "little")


def inhibited_codes(mask: bytes) -> frozenset[int]:
    """The escrow codes a 2-byte ENABLE_DENOMINATIONS mask inhibits."""
    if len(mask) != 2:
        raise ProtocolError(f"the denomination mask has 2 bytes, got {mask.hex()}")
    bits = int.from_bytes(mask, "little")
    return frozenset(ESCROW_CODE_FIRST + slot for slot in range(MASK_SLOTS) if bits >> slot & 1)
