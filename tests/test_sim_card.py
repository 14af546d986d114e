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


UICC_READ = ["00 A4 00 04 02 3F 00",      # SELECT MF (case 4 on T=0: no Le); 61xx unfetched
             "00 A4 00 04 02 2F E2",      # SELECT EF.ICCID
             "00 B0 00 00 0A"]            # READ BINARY, 10 bytes
SIM_READ = ["00 A4 00 04 02 3F 00",       # answered 6E00: not a UICC
            "A0 A4 00 00 02 3F 00", "A0 A4 00 00 02 2F E2", "A0 B0 00 00 0A"]
SPN_READ = ["A4 00 04 02 7F 20", "A4 00 04 02 6F 46", "B0 00 00 11"]   # after the CLA


@pytest.mark.parametrize(("name", "kind", "apdus"), [
    ("uicc", CardKind.UICC, UICC_READ), ("classic", CardKind.SIM, SIM_READ),
    ("uicc3", CardKind.UICC, UICC_READ), ("pin", CardKind.UICC, UICC_READ)])
def test_the_kiosk_reads_the_iccid_and_nothing_else(name: str, kind: CardKind,
                                                      apdus: list[str]) -> None:
    profile = PROFILES[name]
    rec = Recorder(VirtualCard(profile))
    info = read_sim(rec)
    assert info.kind is kind
    assert info.iccid == profile.iccid and info.iccid in DEMO_SIMS
    assert rec.sent == [bytes.fromhex(c) for c in apdus]       # exactly these, in order
    assert info.apdus == rec.card.apdus == len(apdus)
    assert info.readable == ("ICCID",) and info.unreadable == {} and info.spn is None
    assert not hasattr(info, "imsi") and not hasattr(info, "msisdn")   # never read
    assert not rec.card.verify_seen


@pytest.mark.parametrize("name", ["uicc", "classic", "uicc3"])
def test_with_the_spn_the_operator_name_is_read_too(name: str) -> None:
    profile = PROFILES[name]
    rec = Recorder(VirtualCard(profile))
    info = read_sim(rec, spn=True)
    assert info.spn == profile.spn
    assert info.readable == ("ICCID", "SPN") and info.unreadable == {}
    base = SIM_READ if profile.kind == "sim" else UICC_READ
    cla = "A0" if profile.kind == "sim" else "00"
    spn = [c.replace("A4 00 04", "A4 00 00") if cla == "A0" else c for c in SPN_READ]
    assert rec.sent == [bytes.fromhex(c) for c in base + [f"{cla} {c}" for c in spn]]
    assert 0x6F07 not in rec.card.selected() and 0x6F40 not in rec.card.selected()


def test_uicc3_has_a_ucs2_service_provider_name() -> None:
    assert read_sim(VirtualCard(PROFILES["uicc3"]).process, spn=True).spn == "吕宋移动"


@pytest.mark.parametrize("spn", [False, True])
def test_imsi_and_msisdn_are_never_selected_whatever_the_card(spn: bool) -> None:
    for name in sorted(PROFILES):
        card = VirtualCard(PROFILES[name])
        try:
            read_sim(card.process, spn=spn)
        except SimReadError:
            pass
        assert not {0x6F07, 0x7F10, 0x6F40, 0x6FAD} & set(card.selected()), name
        assert all(c[1] not in (apdu.INS_READ_RECORD, apdu.INS_VERIFY)
                   for c in card.received), name


def test_unknown_sim_without_spn() -> None:
    info = read_sim(VirtualCard(PROFILES["unknown"]).process, spn=True)
    assert info.iccid == UNKNOWN_SIM
    assert info.readable == ("ICCID",) and info.unreadable == {"SPN": "not_found"}
    assert info.spn is None


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
        if card.apdus == 2:
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
        info = read_sim(transmit, spn=True)
    except SimReadError:
        return
    finally:
        assert count <= 7 * 9           # 7 commands at most, each with 8 T=0 rounds at most
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
