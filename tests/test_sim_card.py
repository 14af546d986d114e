"""The SIM read procedure against the virtual card, in process (no PC/SC)."""

from __future__ import annotations

from functools import reduce
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sim import apdu
from drivers.sim.card import BadIccidRead, CardKind, NotASim, SimReadError, read_sim
from drivers.sim.virtual import ATR_BANK, ATR_SIM, ATR_UICC, PROFILES, VirtualCard
from kiosk.backend.simulated import DEMO_SIMS, UNKNOWN_SIM


class Recorder:
    """transmit() over a VirtualCard, keeping every C-APDU sent."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def __call__(self, capdu: bytes) -> bytes:
        self.sent.append(capdu)
        return self.card.process(capdu)


@pytest.mark.parametrize(("name", "kind"), [("uicc", CardKind.UICC), ("classic", CardKind.SIM),
                                            ("uicc3", CardKind.UICC)])
def test_demo_sims_read_everything(name: str, kind: CardKind) -> None:
    profile = PROFILES[name]
    rec = Recorder(VirtualCard(profile))
    info = read_sim(rec)
    assert info.kind is kind
    assert info.iccid == profile.iccid and info.iccid in DEMO_SIMS
    assert info.msisdn == profile.msisdn == DEMO_SIMS[info.iccid]
    assert info.spn == profile.spn
    assert info.imsi == profile.imsi
    assert info.ad is not None
    assert info.ad.mnc_length == (2 if kind is CardKind.UICC else None)   # 3-byte AD on SIM
    assert info.readable == ("ICCID", "SPN", "AD", "IMSI", "MSISDN")
    assert info.unreadable == {}
    assert info.apdus == len(rec.sent) == rec.card.apdus <= 20
    assert not rec.card.verify_seen


def test_uicc3_has_a_ucs2_service_provider_name() -> None:
    assert read_sim(VirtualCard(PROFILES["uicc3"]).process).spn == "吕宋移动"


def test_uicc_sequence_starts_with_select_mf_and_get_response() -> None:
    rec = Recorder(VirtualCard(PROFILES["uicc"]))
    read_sim(rec)
    assert rec.sent[0] == bytes.fromhex("00 A4 00 04 02 3F 00")      # case 4 on T=0: no Le
    assert rec.sent[1][:4] == bytes.fromhex("00 C0 00 00")
    assert rec.sent[3:4] == [bytes.fromhex("00 B0 00 00 0A")]           # after SELECT 2FE2


def test_classic_sim_is_found_by_retrying_with_cla_a0() -> None:
    rec = Recorder(VirtualCard(PROFILES["classic"]))
    info = read_sim(rec)
    assert info.kind is CardKind.SIM
    assert rec.sent[0][0] == 0x00 and rec.card.process(rec.sent[0]) == b"\x6e\x00"
    assert rec.sent[1] == bytes.fromhex("A0 A4 00 00 02 3F 00")
    assert rec.sent[2][:4] == bytes.fromhex("A0 C0 00 00")               # after 9Fxx
    assert all(c[0] == 0xA0 for c in rec.sent[1:])


def test_three_byte_ad_is_read_again_with_the_le_the_card_wants() -> None:
    rec = Recorder(VirtualCard(PROFILES["classic"]))
    read_sim(rec)
    i = rec.sent.index(bytes.fromhex("A0 B0 00 00 04"))
    assert rec.sent[i + 1] == bytes.fromhex("A0 B0 00 00 03")


def test_msisdn_record_length_comes_from_the_select_response() -> None:
    for name, cla in (("uicc", "00"), ("classic", "A0")):
        rec = Recorder(VirtualCard(PROFILES[name]))
        read_sim(rec)
        assert bytes.fromhex(f"{cla} B2 01 04 18") in rec.sent          # 10 alpha + 14 = 24


def test_pin_protected_files_are_reported_never_verified() -> None:
    rec = Recorder(VirtualCard(PROFILES["pin"]))
    info = read_sim(rec)
    assert info.iccid in DEMO_SIMS
    assert info.readable == ("ICCID", "SPN", "AD")
    assert info.unreadable == {"IMSI": "pin_required", "MSISDN": "pin_required"}
    assert info.imsi is None and info.msisdn is None
    assert not rec.card.verify_seen
    assert all(c[1] != apdu.INS_VERIFY for c in rec.sent)


def test_unknown_sim_without_spn_or_number() -> None:
    info = read_sim(VirtualCard(PROFILES["unknown"]).process)
    assert info.iccid == UNKNOWN_SIM
    assert info.unreadable == {"SPN": "not_found", "MSISDN": "empty"}
    assert info.spn is None and info.msisdn is None and info.imsi is not None


def test_bank_card_is_not_a_sim() -> None:
    rec = Recorder(VirtualCard(PROFILES["bank"]))
    with pytest.raises(NotASim) as exc:
        read_sim(rec)
    assert exc.value.reason == "not_sim"
    assert "6A82" in str(exc.value) and "6E00" in str(exc.value)
    assert len(rec.sent) == 2


def test_bad_luhn_is_a_bad_iccid() -> None:
    with pytest.raises(BadIccidRead) as exc:
        read_sim(VirtualCard(PROFILES["bad_luhn"]).process)
    assert exc.value.reason == "bad_iccid"
    assert isinstance(exc.value, SimReadError)


def test_twenty_digit_iccid() -> None:
    info = read_sim(VirtualCard(PROFILES["iccid20"]).process)
    assert info.iccid == "89630100000000000007" and len(info.iccid) == 20


def test_mute_card_is_not_a_sim() -> None:
    with pytest.raises(NotASim):
        read_sim(VirtualCard(PROFILES["mute"]).process)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_no_profile_gets_a_verify_and_counts_stay_small(name: str) -> None:
    rec = Recorder(VirtualCard(PROFILES[name]))
    try:
        read_sim(rec)
    except SimReadError:
        pass
    assert not rec.card.verify_seen
    assert all(len(c) < 2 or c[1] != apdu.INS_VERIFY for c in rec.sent)
    assert 1 <= len(rec.sent) <= 20


def test_injected_wrong_le_is_answered_by_a_resend() -> None:
    card = VirtualCard(PROFILES["uicc"])
    sent: list[bytes] = []
    injected = []

    def transmit(capdu: bytes) -> bytes:
        sent.append(capdu)
        if capdu[1] == apdu.INS_READ_BINARY and not injected:
            injected.append(capdu)
            return b"\x6c\x0a"                     # "wrong length, I have 10 bytes"
        return card.process(capdu)

    info = read_sim(transmit)
    assert info.iccid == PROFILES["uicc"].iccid
    i = sent.index(injected[0])
    assert sent[i + 1] == injected[0][:4] + b"\x0a"
    assert info.apdus == len(sent)


def test_transport_errors_propagate_unchanged() -> None:
    class Pulled(Exception):
        pass

    card = VirtualCard(PROFILES["uicc"])

    def transmit(capdu: bytes) -> bytes:
        if card.apdus == 3:
            raise Pulled("card removed")
        return card.process(capdu)

    with pytest.raises(Pulled):
        read_sim(transmit)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_garbage_answers_give_a_sim_read_error_or_an_info(data: st.DataObject) -> None:
    answers = st.one_of(st.binary(max_size=30),
                        st.sampled_from([b"\x90\x00", b"\x61\x10", b"\x9f\x16", b"\x6c\x05",
                                         b"\x6e\x00", b"\x69\x82", b"\x6a\x82"]))
    count = 0

    def transmit(capdu: bytes) -> bytes:
        nonlocal count
        count += 1
        return data.draw(answers)

    try:
        info = read_sim(transmit)
    except SimReadError:
        return
    finally:
        assert count <= 14 * 9          # 14 commands at most, each with 8 T=0 rounds at most
    assert info.apdus == count


# --- the virtual card itself ------------------------------------------------------------------

def test_atrs_are_well_formed() -> None:
    assert ATR_UICC[0] == ATR_SIM[0] == ATR_BANK[0] == 0x3B
    assert reduce(lambda a, b: a ^ b, ATR_UICC[1:]) == 0                 # TCK
    assert len(ATR_SIM) == 2 + 2 + (ATR_SIM[1] & 0x0F)                  # TA1 TB1 + history
    assert PROFILES["mute"].atr == b""


def test_virtual_card_status_words() -> None:
    uicc, sim = VirtualCard(PROFILES["uicc"]), VirtualCard(PROFILES["classic"])
    assert uicc.process(bytes.fromhex("A0 A4 00 00 02 3F 00")) == b"\x6e\x00"
    assert sim.process(bytes.fromhex("00 A4 00 04 02 3F 00")) == b"\x6e\x00"
    assert uicc.process(bytes.fromhex("00 CA 00 00 00")) == b"\x6d\x00"   # unknown INS
    assert uicc.process(b"\x00\xa4") == b"\x67\x00"                       # malformed
    assert uicc.process(bytes.fromhex("00 A4 00 04 05 3F 00")) == b"\x67\x00"
    assert uicc.process(bytes.fromhex("00 B0 00 00 0A")) == b"\x69\x86"   # no EF selected
    assert uicc.process(bytes.fromhex("00 A4 00 04 02 2F E2"))[0] == 0x61
    assert uicc.process(bytes.fromhex("00 B0 00 00 00")) == b"\x6c\x0a"   # Le 0 = 256
    assert uicc.process(bytes.fromhex("00 B0 00 00 0B")) == b"\x6c\x0a"
    assert uicc.process(bytes.fromhex("00 B0 00 04 0A")) == b"\x6c\x06"   # from offset 4
    assert uicc.process(bytes.fromhex("00 B0 00 00 0A"))[-2:] == b"\x90\x00"
    assert uicc.process(bytes.fromhex("00 A4 00 04 02 6F 07")) == b"\x6a\x82"  # not in MF
    assert sim.process(bytes.fromhex("A0 A4 00 00 02 6F 07")) == b"\x94\x04"
    assert not uicc.verify_seen
    assert uicc.process(bytes.fromhex("00 20 00 01 08 31 32 33 34 FF FF FF FF")) == b"\x6d\x00"
    assert uicc.verify_seen


def test_virtual_card_select_responses() -> None:
    uicc, sim = VirtualCard(PROFILES["uicc"]), VirtualCard(PROFILES["classic"])
    for cmd in ("00 A4 00 04 02 7F 10", "00 A4 00 04 02 6F 40"):
        sw = uicc.process(bytes.fromhex(cmd))
    assert sw[0] == 0x61
    assert uicc.process(bytes.fromhex("00 C0 00 00 FF")) == bytes((0x6C, sw[1]))
    fcp = uicc.process(bytes([0x00, 0xC0, 0x00, 0x00, sw[1]]))
    assert fcp[0] == 0x62 and fcp[-2:] == b"\x90\x00"
    assert bytes.fromhex("82 05 42 21 00 18 01") in fcp and bytes.fromhex("83 02 6F 40") in fcp
    for cmd in ("A0 A4 00 00 02 7F 10", "A0 A4 00 00 02 6F 40"):
        sw = sim.process(bytes.fromhex(cmd))
    assert sw[0] == 0x9F
    response = sim.process(bytes([0xA0, 0xC0, 0x00, 0x00, sw[1]]))
    assert response[6] == 0x04 and response[13] == 0x01 and response[14] == 24
    assert sim.process(bytes.fromhex("A0 B2 01 04 10")) == b"\x6c\x18"
    assert sim.process(bytes.fromhex("A0 B2 02 04 18")) == b"\x94\x02"


@given(st.sampled_from(sorted(PROFILES)), st.lists(st.binary(max_size=12), max_size=6))
def test_virtual_card_answers_anything(name: str, commands: list[bytes]) -> None:
    card = VirtualCard(PROFILES[name])
    for capdu in [bytes.fromhex("00 A4 00 04 02 2F E2")] + commands:
        answer = card.process(capdu)
        assert len(answer) >= 2 or name == "mute"
    assert card.apdus == len(commands) + 1
