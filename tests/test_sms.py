"""The SMS gateway client against the gateway simulator over HTTP on 127.0.0.1: accepted
messages come back with an id, a repeated client reference is one message, a refusal is
final, anything else is "try again" - and the texts a customer gets for a voucher."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kiosk.config import load
from kiosk.sms import HttpSmsGateway, SmsRefused, SmsSettings, SmsUnavailable, e164, sms_settings
from kiosk.sms_sim import SmsGatewaySimulator
from kiosk.voucher_delivery import voucher_text

NUMBER = "+639171234567"


@pytest.fixture
def sim() -> Iterator[SmsGatewaySimulator]:
    s = SmsGatewaySimulator().start()
    yield s
    s.stop()


def gateway(sim: SmsGatewaySimulator, **kw: object) -> HttpSmsGateway:
    return HttpSmsGateway(sim.url, str(kw.pop("api_key", sim.api_key)), timeout_s=1.0)


async def test_a_message_is_accepted_once_per_client_reference(
        sim: SmsGatewaySimulator) -> None:
    g = gateway(sim)
    try:
        first = await g.send(NUMBER, "hello", "K0001-X-000001.v7")
        again = await g.send(NUMBER, "hello", "K0001-X-000001.v7")     # a lost reply, asked again
        other = await g.send(NUMBER, "hello", "K0001-X-000001.v8")
    finally:
        await g.aclose()
    assert first == again != other and first.startswith("SM")
    assert sim.texts_to(NUMBER) == ["hello", "hello"] and sim.attempts == 3
    assert [m.client_ref for m in sim.messages] == ["K0001-X-000001.v7", "K0001-X-000001.v8"]
    assert sim.messages[0].sender == "TOPUP"


@pytest.mark.parametrize("mode", ["down", "5xx"])
async def test_a_gateway_down_is_try_again_and_sends_nothing(sim: SmsGatewaySimulator,
                                                             mode: str) -> None:
    sim.set_mode(mode)
    g = gateway(sim)
    try:
        with pytest.raises(SmsUnavailable):
            await g.send(NUMBER, "hello", "r1")
    finally:
        await g.aclose()
    assert sim.messages == [] and sim.attempts == 1


async def test_no_gateway_at_all_is_try_again() -> None:
    with SmsGatewaySimulator() as s:
        url = s.url                               # a port nobody listens on any more
    g = HttpSmsGateway(url, "k", timeout_s=0.5)
    try:
        with pytest.raises(SmsUnavailable):
            await g.send(NUMBER, "hello", "r1")
        assert not await g.reachable()
    finally:
        await g.aclose()


async def test_a_refused_key_is_try_again_not_final(sim: SmsGatewaySimulator) -> None:
    g = gateway(sim, api_key="wrong")
    try:
        with pytest.raises(SmsUnavailable, match="401"):
            await g.send(NUMBER, "hello", "r1")
    finally:
        await g.aclose()


async def test_a_refusal_is_final_with_its_reason(sim: SmsGatewaySimulator) -> None:
    g = gateway(sim)
    try:
        with pytest.raises(SmsRefused) as err:
            await g.send("+12", "hello", "r1")           # not a number
        assert err.value.reason == "invalid_number"
        sim.set_mode("refuse")
        with pytest.raises(SmsRefused):
            await g.send(NUMBER, "hello", "r2")
        assert await g.reachable()
    finally:
        await g.aclose()
    assert sim.messages == []


async def test_a_reply_lost_after_sending_then_asked_again_is_one_message(
        sim: SmsGatewaySimulator) -> None:
    sim.set_mode("lost")
    g = gateway(sim)
    try:
        with pytest.raises(SmsUnavailable):
            await g.send(NUMBER, "hello", "r1")
        sim.set_mode("ok")
        gid = await g.send(NUMBER, "hello", "r1")
    finally:
        await g.aclose()
    assert [m.id for m in sim.messages] == [gid]


def test_the_admin_api_shows_the_messages_and_sets_faults(sim: SmsGatewaySimulator) -> None:
    r = httpx.post(sim.url + "/_sim/mode", json={"mode": "5xx"})
    assert r.json() == {"mode": "5xx"} and sim.mode == "5xx"
    assert httpx.post(sim.url + "/_sim/mode", json={"mode": "nope"}).status_code == 400
    sim.set_mode("ok")
    r = httpx.post(sim.url + "/v1/messages", headers={"Authorization": f"Bearer {sim.api_key}"},
                   json={"to": NUMBER, "from": "TOPUP", "text": "hi", "client_ref": "a"})
    assert r.status_code == 201
    body = httpx.get(sim.url + "/_sim/messages").json()
    assert [m["text"] for m in body["messages"]] == ["hi"] and body["attempts"] == 1


def test_numbers_in_international_form() -> None:
    assert e164("63", "0", "09171234567") == NUMBER
    assert e164("63", "0", "639171234567") == NUMBER
    assert e164("63", "0", "") is None and e164("63", "0", "12345") is None


def test_settings_missing_mean_sms_off() -> None:
    s = load()
    conf = sms_settings(s)
    if getattr(s, "sms", None) is None:
        assert conf == SmsSettings() and not conf.enabled
    assert sms_settings(type("S", (), {"sms": {"driver": "http", "base_url": "http://x"}})()
                        ).enabled
    with pytest.raises(ValueError):
        HttpSmsGateway("", "k")
    with pytest.raises(ValueError):
        HttpSmsGateway("http://x", "k", sender="a sender with spaces")


def test_the_voucher_text_has_the_code_value_expiry_reference_and_help() -> None:
    v = {"code": "1234567890123452", "amount": 5000, "currency": "PHP",
         "expires": "2027-05-20", "ref": "K0001-7KQ2-000042"}
    text = voucher_text(v, currency="PHP", support="Hotline 8888-0000")
    assert text == ("Your top-up voucher 1234 5678 9012 3452 is worth PHP 50.00, valid until"
                    " 2027-05-20. Pay with it at any of our kiosks. Ref. K0001-7KQ2-000042."
                    " Help: Hotline 8888-0000")
    zh = voucher_text(v, currency="PHP", support="", lang="zh_CN")
    assert "1234 5678 9012 3452" in zh and "2027-05-20" in zh and "K0001-7KQ2-000042" in zh
    assert "代金券" in zh and "Help" not in zh
    never = voucher_text({**v, "expires": ""}, currency="PHP", support="")
    assert "valid until" not in never and "PHP 50.00" in never
