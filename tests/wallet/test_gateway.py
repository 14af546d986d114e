"""HttpWallet against a real HTTP wallet gateway (kiosk/payments/gateway_sim.py) on 127.0.0.1.

No mocks: every call crosses a socket. The QR payload the kiosk would render is decoded as a
phone would (EMVCo TLV, CRC) and must ask for exactly the ordered amount. Every fault that
leaves the answer open (connection dropped, 5xx, slower than the timeout, not JSON, a payload
for another amount) must raise WalletError quickly, because the runtime reads a raise as "QR
unavailable" / "keep polling" / "ask again", never as a state. A payment that races the close,
or arrives after it, must show up as "paid" so the kiosk can keep the money as a voucher; the
simulator's ledger shows that nothing is ever paid twice.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

from kiosk import config
from kiosk.config import ConfigError, DeviceSettings
from kiosk.payments.emvco import Field, decode
from kiosk.payments.gateway import HttpWallet, WalletError
from kiosk.payments.gateway_sim import WalletGatewaySimulator
from kiosk.payments.wallet import WalletStatus

REF = "K0001-000042"


@pytest.fixture
def sim() -> Iterator[WalletGatewaySimulator]:
    s = WalletGatewaySimulator().start()
    try:
        yield s
    finally:
        s.stop()


def make_wallet(sim: WalletGatewaySimulator, **kw: Any) -> HttpWallet:
    opts: dict[str, Any] = dict(base_url=sim.url, api_key=sim.api_key, timeout_s=0.3,
                                verify=False)
    opts.update(kw)
    return HttpWallet(**opts)


@pytest.fixture
async def wallet(sim: WalletGatewaySimulator) -> AsyncIterator[HttpWallet]:
    w = make_wallet(sim)
    yield w
    await w.aclose()


def tags(payload: str) -> dict[str, Field]:
    return {f.tag: f for f in decode(payload)}


def sub(field: Field) -> dict[str, str]:
    return {c.tag: c.value for c in field.children}


# ---------------------------------------------------------------- orders and the payload
async def test_create_order_payload_is_what_a_phone_reads(sim: WalletGatewaySimulator,
                                                          wallet: HttpWallet) -> None:
    before = time.time()
    order = await wallet.create_order(REF, 5000, 120)
    assert order.ref == REF
    assert before + 119 <= order.expires_at <= time.time() + 121
    t = tags(order.payload)                         # raises if the CRC is wrong
    assert t["00"].value == "01" and t["01"].value == "12"          # dynamic
    assert sub(t["28"]) == {"00": "ph.ppmi.p2m", "01": "KIOSKDEMO0001"}
    assert t["52"].value == "4814" and t["53"].value == "608"
    assert t["54"].value == "50.00"
    assert t["58"].value == "PH" and t["59"].value == "TOPUP KIOSK"
    assert t["60"].value == "MANILA"
    assert sub(t["62"]) == {"05": REF, "07": "K0001"}
    assert list(t)[-1] == "63"
    assert sim.pending_refs() == [REF]
    assert await wallet.status(REF) == WalletStatus("pending", 0, "")


async def test_large_amount_has_no_thousands_separator(wallet: HttpWallet) -> None:
    order = await wallet.create_order("K0001-000043", 150000, 60)
    assert tags(order.payload)["54"].value == "1500.00"


async def test_pay_then_status_paid(sim: WalletGatewaySimulator, wallet: HttpWallet) -> None:
    await wallet.create_order(REF, 5000, 60)
    assert sim.pay(REF)
    st = await wallet.status(REF)
    assert (st.state, st.amount) == ("paid", 5000)
    assert st.provider_ref.startswith("WG")
    assert sim.ledger == {REF: 5000} and sim.pay_count == {REF: 1}
    assert not sim.pay(REF) and not sim.pay(REF, late=True)        # never twice
    assert sim.pay_count == {REF: 1}
    assert sim.pending_refs() == []
    assert await wallet.status(REF) == st


async def test_decline(sim: WalletGatewaySimulator, wallet: HttpWallet) -> None:
    await wallet.create_order(REF, 5000, 60)
    assert sim.decline(REF)
    assert await wallet.status(REF) == WalletStatus("declined")
    assert not sim.pay(REF) and not sim.pay(REF, late=True)
    assert not sim.decline(REF) and not sim.decline("K0001-999999")
    assert sim.ledger == {}


async def test_expiry(sim: WalletGatewaySimulator, wallet: HttpWallet) -> None:
    await wallet.create_order(REF, 5000, 1)
    assert (await wallet.status(REF)).state == "pending"
    await asyncio.sleep(1.05)
    assert sim.pending_refs() == []
    assert await wallet.status(REF) == WalletStatus("expired")
    assert not sim.pay(REF)                         # an expired code cannot be paid
    assert (await wallet.close(REF)).state == "expired"
    assert sim.pay(REF, late=True)                  # ... unless the payment was already on its way
    assert (await wallet.status(REF)).state == "paid"
    assert sim.ledger == {REF: 5000}


async def test_close_pending(sim: WalletGatewaySimulator, wallet: HttpWallet) -> None:
    await wallet.create_order(REF, 5000, 60)
    assert await wallet.close(REF) == WalletStatus("closed")
    assert await wallet.status(REF) == WalletStatus("closed")
    assert not sim.pay(REF)
    assert sim.pending_refs() == [] and sim.ledger == {}


async def test_close_after_pay_stays_paid(sim: WalletGatewaySimulator,
                                          wallet: HttpWallet) -> None:
    """The customer paid just before the kiosk closed the order: close says paid."""
    await wallet.create_order(REF, 5000, 60)
    assert sim.pay(REF)
    st = await wallet.close(REF)
    assert (st.state, st.amount) == ("paid", 5000) and st.provider_ref
    assert (await wallet.status(REF)).state == "paid"


async def test_late_payment_after_close_is_visible(sim: WalletGatewaySimulator,
                                                   wallet: HttpWallet) -> None:
    """The close won, but the payment still arrived: status must say paid (-> voucher)."""
    await wallet.create_order(REF, 5000, 60)
    assert (await wallet.close(REF)).state == "closed"
    assert sim.pay(REF, late=True)
    st = await wallet.status(REF)
    assert (st.state, st.amount) == ("paid", 5000) and st.provider_ref
    assert (await wallet.close(REF)).state == "paid"
    assert sim.ledger == {REF: 5000} and sim.pay_count == {REF: 1}


async def test_create_is_idempotent_by_reference(sim: WalletGatewaySimulator,
                                                 wallet: HttpWallet) -> None:
    a = await wallet.create_order(REF, 5000, 60)
    b = await wallet.create_order(REF, 5000, 60)
    assert a == b
    assert len(sim.orders) == 1
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {sim.api_key}"}) as c:
        r = await c.post(sim.url + "/v1/orders", json={"reference": REF, "amount": 5000,
                                                       "currency": "PHP", "expires_in": 60})
        assert r.status_code == 200 and r.json()["qr_payload"] == a.payload


async def test_reference_reused_with_other_amount(sim: WalletGatewaySimulator,
                                                  wallet: HttpWallet) -> None:
    await wallet.create_order(REF, 5000, 60)
    with pytest.raises(WalletError, match="reference already used"):
        await wallet.create_order(REF, 9900, 60)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {sim.api_key}"}) as c:
        r = await c.post(sim.url + "/v1/orders", json={"reference": REF, "amount": 9900,
                                                       "currency": "PHP", "expires_in": 60})
        assert (r.status_code, r.json()) == (409, {"error": "reference_reused"})
    assert sim.orders[REF].amount == 5000


async def test_unknown_reference_reads_as_closed(sim: WalletGatewaySimulator,
                                                 wallet: HttpWallet) -> None:
    assert await wallet.status("K0001-999999") == WalletStatus("closed")
    assert await wallet.close("K0001-999999") == WalletStatus("closed")
    # ... but a 404 that is not the gateway's "unknown_reference" proves nothing
    w = make_wallet(sim, base_url=sim.url + "/wrong")
    try:
        with pytest.raises(WalletError, match="HTTP 404"):
            await w.status(REF)
    finally:
        await w.aclose()


async def test_bad_api_key(sim: WalletGatewaySimulator) -> None:
    w = make_wallet(sim, api_key="stolen")
    try:
        with pytest.raises(WalletError, match="API key"):
            await w.create_order(REF, 5000, 60)
        with pytest.raises(WalletError, match="HTTP 401"):
            await w.status(REF)
        assert not await w.reachable()
        assert sim.orders == {}
    finally:
        await w.aclose()


@pytest.mark.parametrize("body,error", [
    ({"reference": REF, "amount": "50.00", "currency": "PHP", "expires_in": 60},
     "invalid_amount"),
    ({"reference": REF, "amount": 0, "currency": "PHP", "expires_in": 60}, "invalid_amount"),
    ({"reference": REF, "amount": True, "currency": "PHP", "expires_in": 60},
     "invalid_amount"),
    ({"reference": "", "amount": 5000, "currency": "PHP", "expires_in": 60},
     "invalid_reference"),
    ({"reference": "K0001/42", "amount": 5000, "currency": "PHP", "expires_in": 60},
     "invalid_reference"),
    ({"reference": "R" * 26, "amount": 5000, "currency": "PHP", "expires_in": 60},
     "invalid_reference"),
    ({"reference": REF, "amount": 5000, "currency": "CNY", "expires_in": 60},
     "currency_not_supported"),
    ({"reference": REF, "amount": 5000, "currency": "PHP", "expires_in": 0},
     "invalid_expires_in"),
    ({"reference": REF, "amount": 5000, "currency": "PHP"}, "invalid_expires_in"),
    ([1, 2], "invalid_json"),
])
async def test_bad_bodies(sim: WalletGatewaySimulator, body: Any, error: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {sim.api_key}"}) as c:
        r = await c.post(sim.url + "/v1/orders", json=body)
        assert (r.status_code, r.json()) == (400, {"error": error})
        r = await c.post(sim.url + "/v1/orders", content=b"{not json",
                         headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (400, {"error": "invalid_json"})
    assert sim.orders == {}


async def test_kiosk_refuses_bad_amount_before_sending(sim: WalletGatewaySimulator,
                                                       wallet: HttpWallet) -> None:
    with pytest.raises(WalletError):
        await wallet.create_order(REF, 0, 60)
    assert sim.requests == []


# ---------------------------------------------------------------- faults
@pytest.mark.parametrize("mode", ["down", "5xx", "slow", "garbage"])
async def test_faults_raise_quickly(sim: WalletGatewaySimulator, wallet: HttpWallet,
                                    mode: str) -> None:
    await wallet.create_order(REF, 5000, 60)
    sim.set_mode(mode, delay_s=1.0)                 # slow: 1 s > timeout_s 0.3
    for call in (wallet.create_order("K0001-000050", 5000, 60), wallet.status(REF),
                 wallet.close(REF)):
        t0 = time.monotonic()
        with pytest.raises(WalletError):
            await call
        assert time.monotonic() - t0 < 0.9
    assert not await wallet.reachable()
    sim.set_mode("ok")
    assert await wallet.reachable()
    assert (await wallet.status(REF)).state in ("pending", "closed")   # slow: the close ran


@pytest.mark.parametrize("mode,why", [("wrong_amount", "amount '51.00', ordered 50.00"),
                                      ("bad_crc", "CRC mismatch")])
async def test_kiosk_never_shows_a_code_for_another_amount(
        sim: WalletGatewaySimulator, wallet: HttpWallet, mode: str, why: str) -> None:
    sim.set_mode(mode)
    with pytest.raises(WalletError, match=why):
        await wallet.create_order(REF, 5000, 60)


async def test_stop_closes_keep_alive_connections(sim: WalletGatewaySimulator,
                                                  wallet: HttpWallet) -> None:
    assert await wallet.reachable()
    await wallet.create_order(REF, 5000, 60)        # the pool keeps the connection open
    assert sim._connections
    sim.stop()
    assert sim._connections == set()
    t0 = time.monotonic()
    with pytest.raises(WalletError):
        await wallet.status(REF)
    assert time.monotonic() - t0 < 0.5
    assert not await wallet.reachable()


# ---------------------------------------------------------------- simulator option, admin
async def test_simulator_option() -> None:
    w = HttpWallet(simulator=True, currency="PHP", merchant_name="SARI-SARI LOAD",
                   merchant_city="CEBU")
    try:
        assert w.simulator is not None and w.base_url == w.simulator.url
        assert await w.reachable()
        order = await w.create_order(REF, 2000, 60)
        t = tags(order.payload)
        assert (t["59"].value, t["60"].value, t["54"].value) == ("SARI-SARI LOAD", "CEBU",
                                                                 "20.00")
        assert w.simulator.pending_refs() == [REF]
        assert w.simulator.pay(REF)
        assert (await w.status(REF)).state == "paid"
    finally:
        await w.aclose()
    with pytest.raises(httpx.ConnectError):         # aclose stopped the simulator
        httpx.get(w.simulator.url + "/_sim/state", timeout=1)


def test_base_url_required() -> None:
    with pytest.raises(ValueError, match="base_url"):
        HttpWallet()


async def test_admin_endpoints_over_http(sim: WalletGatewaySimulator,
                                         wallet: HttpWallet) -> None:
    for n in (1, 2, 3):
        await wallet.create_order(f"K0001-00000{n}", 1000 * n, 60)
    async with httpx.AsyncClient(base_url=sim.url) as c:
        assert (await c.get("/_sim/pending")).json() == {
            "pending": ["K0001-000001", "K0001-000002", "K0001-000003"]}
        r = (await c.post("/_sim/pay/K0001-000001")).json()
        assert r["paid"] is True and r["provider_ref"].startswith("WG")
        assert (await c.post("/_sim/pay/K0001-000001")).json() == {"paid": False,
                                                                   "provider_ref": ""}
        assert (await c.post("/_sim/decline/K0001-000002")).json() == {"declined": True}
        await wallet.close("K0001-000003")
        assert (await c.post("/_sim/pay/K0001-000003")).json()["paid"] is False
        assert (await c.post("/_sim/pay/K0001-000003", json={"late": True})).json()["paid"]
        assert (await c.post("/_sim/pay/K0001-999999")).status_code == 404
        assert (await c.get("/_sim/pending")).json() == {"pending": []}
        r = await c.post("/_sim/mode", json={"mode": "5xx", "delay_s": 0.5})
        assert r.json() == {"mode": "5xx", "delay_s": 0.5}
        assert (await c.post("/_sim/mode", json={"mode": "nonsense"})).status_code == 400
        state = (await c.get("/_sim/state")).json()     # admin works in any mode
        assert state["mode"] == "5xx"
        assert state["ledger"] == {"K0001-000001": 1000, "K0001-000003": 3000}
        assert state["pay_count"] == {"K0001-000001": 1, "K0001-000003": 1}
        assert [o["status"] for o in state["orders"]] == ["paid", "declined", "paid"]
        assert (await c.get("/v1/health")).status_code == 503
    with pytest.raises(WalletError, match="HTTP 503"):     # the merchant API is in 5xx
        await wallet.status("K0001-000002")
    with pytest.raises(ValueError):
        sim.set_mode("nonsense")


def test_concurrent_payments_pay_once(sim: WalletGatewaySimulator) -> None:
    """The phone and the demo panel pay at the same moment: one payment, one ledger entry."""
    r = httpx.post(sim.url + "/v1/orders", headers={"Authorization": f"Bearer {sim.api_key}"},
                   json={"reference": REF, "amount": 5000, "currency": "PHP",
                         "expires_in": 60})
    assert r.status_code == 201
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(sim.pay(REF, late=True)))
               for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results.count(True) == 1
    assert sim.ledger == {REF: 5000} and sim.pay_count == {REF: 1}


def test_missing_auth_is_401(sim: WalletGatewaySimulator) -> None:
    r = httpx.get(sim.url + "/v1/orders/" + REF)
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})


# ---------------------------------------------------------------- configuration
def test_options_pass_config_validation(sim: WalletGatewaySimulator) -> None:
    """What [wallet] driver = "http" will accept (the same rule as registry.options_of)."""
    sig = inspect.signature(HttpWallet)
    accepted = {n: p.default for n, p in sig.parameters.items()
                if p.kind is p.POSITIONAL_OR_KEYWORD}
    f = Path("kiosk.toml")
    config._check_options(f, "wallet", DeviceSettings("http", {
        "base_url": sim.url, "api_key": "k", "timeout_s": 5, "verify": False}), accepted)
    config._check_options(f, "wallet", DeviceSettings("http", {"simulator": True}), accepted)
    with pytest.raises(ConfigError, match="wallet.verify"):
        config._check_options(f, "wallet", DeviceSettings("http", {"verify": "no"}), accepted)
    with pytest.raises(ConfigError, match="unknown option"):
        config._check_options(f, "wallet", DeviceSettings("http", {"currency": "PHP"}),
                              accepted)
