"""Before any money is taken: the operator as the aggregator detects it, the products it
sells for that number now, a reachable backend; and the balance before and after.

ReloadlyBackend against the real HTTP simulator (kiosk/backend/http_sim.py) on 127.0.0.1,
first call by call, then through the runtime as a customer meets it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from drivers.simulated import (SimulatedBillAcceptor, SimulatedCardTerminal, SimulatedPrinter,
                               SimulatedSimReader)
from kiosk import config
from kiosk import events as ev
from kiosk.backend.base import Balance, Offer, offered
from kiosk.backend.http_sim import ReloadlySimulator
from kiosk.backend.reloadly import ReloadlyBackend, ReloadlyError
from kiosk.config import DeviceSettings
from kiosk.engine import Phase
from kiosk.payments.simulated import SimulatedWallet
from kiosk.runtime import Runtime
from tests.events import until

GLOBE, GLOBE_INTL = "09171234567", "639171234567"
SMART_INTL = "639181234321"
CATALOG = config.load_catalog(Path(config.DEFAULT_CONFIG).parent / "catalog.toml")


@pytest.fixture
def sim() -> Iterator[ReloadlySimulator]:
    s = ReloadlySimulator().start()
    try:
        yield s
    finally:
        s.stop()


def options(sim: ReloadlySimulator, **kw: Any) -> dict[str, Any]:
    return {"base_url": sim.url, "auth_url": sim.url + "/oauth/token", "client_id": "kiosk",
            "client_secret": "secret", "timeout_s": 0.5, "verify": False,
            "operator_ids": dict(sim.operator_ids), **kw}


@pytest.fixture
async def backend(sim: ReloadlySimulator) -> AsyncIterator[ReloadlyBackend]:
    b = ReloadlyBackend(**options(sim))
    yield b
    await b.aclose()


# ---------------------------------------------------------------- call by call
async def test_operator_detected_from_the_number(sim, backend) -> None:
    assert await backend.detect_operator(GLOBE_INTL) == "globe"
    assert await backend.detect_operator(SMART_INTL) == "smart"
    assert ("GET", f"/operators/auto-detect/phone/{GLOBE_INTL}/countries/PH") in sim.requests


async def test_a_ported_number_is_detected_with_its_new_operator(sim, backend) -> None:
    sim.ported[GLOBE_INTL] = "smart"
    assert await backend.detect_operator(GLOBE_INTL) == "smart"


async def test_undetected_number_leaves_it_to_the_number_plan(sim, backend) -> None:
    assert await backend.detect_operator("639001234567") is None       # 404 at the provider


async def test_an_operator_this_kiosk_does_not_sell_is_told_apart(sim) -> None:
    b = ReloadlyBackend(**options(sim, operator_ids={"smart": [2001, 2002]}))
    try:
        assert await b.detect_operator(GLOBE_INTL) == ""
        # ... and a top-up for it is refused before anything is sent.
        answer = await b.topup("K0001-000001", GLOBE_INTL, "globe", "globe-load", 2000)
        assert answer.reason == "backend.unknown_operator" and sim.attempts == {}
    finally:
        await b.aclose()


async def test_detection_failure_raises(sim, backend) -> None:
    sim.detect_down = True
    with pytest.raises(ReloadlyError):
        await backend.detect_operator(GLOBE_INTL)


async def test_offers_are_what_the_operator_sells_in_local_minor_units(sim, backend) -> None:
    offers = await backend.offers("globe")
    assert offers is not None
    air, bundles = offers
    assert (air.kind, air.range_min, air.range_max) == ("airtime", 1000, 100000)
    assert bundles.kind == "bundle" and {1500, 5000, 9900, 29900, 79900} <= set(bundles.amounts)
    assert offered(CATALOG.offers("globe"), offers) == tuple(p.id for p in
                                                             CATALOG.offers("globe"))
    # Cached: a second customer does not cost two more requests.
    n = len(sim.requests)
    await backend.offers("globe")
    assert len(sim.requests) == n


async def test_a_withdrawn_amount_takes_its_product_off_sale(sim, backend) -> None:
    sim.withdrawn[1002] = {1500}                     # the keep-my-number pack at 15.00
    ids = offered(CATALOG.offers("globe"), await backend.offers("globe"))
    assert "globe-keep" not in ids and "globe-data-3d" in ids and "globe-load" in ids
    # FIXED airtime: one amount missing takes the whole product off (no tile refused later).
    sim.withdrawn[2001] = {30000}
    ids = offered(CATALOG.offers("smart"), await backend.offers("smart"))
    assert "smart-load" not in ids and "smart-keep" in ids


def test_offer_coverage_rules() -> None:
    load_any = CATALOG.product("globe-load-any")           # RANGE 10.00-1000.00
    load = CATALOG.product("globe-load")                   # FIXED 10, 20, 50, 100, 300, 500
    keep = CATALOG.product("globe-keep")                   # validity pack 15.00
    wide = Offer("airtime", range_min=500, range_max=200000)
    narrow = Offer("airtime", range_min=2000, range_max=200000)
    assert wide.covers(load_any) and not narrow.covers(load_any)
    assert wide.covers(load) and not narrow.covers(load)
    assert not wide.covers(keep)                           # airtime is not a pack
    assert Offer("bundle", (1500,)).covers(keep) and not Offer("bundle", (1600,)).covers(keep)
    assert offered([load, keep], None) == ("globe-load", "globe-keep")
    assert offered([load, keep], []) == ()


async def test_bundle_top_up_goes_to_the_bundle_operator(sim, backend) -> None:
    answer = await backend.topup("K0001-000009", GLOBE_INTL, "globe", "globe-keep", 1500,
                                 kind="validity")
    assert answer.status.value == "successful"
    assert sim.transactions[-1]["operatorId"] == 1002
    await backend.topup("K0001-000010", GLOBE_INTL, "globe", "globe-load", 5000)
    assert sim.transactions[-1]["operatorId"] == 1001


async def test_an_amount_the_operator_does_not_sell_is_refused_by_the_provider(sim,
                                                                           backend) -> None:
    sim.withdrawn[1002] = {1500}
    answer = await backend.topup("K0001-000011", GLOBE_INTL, "globe", "globe-keep", 1500,
                                 kind="validity")
    assert (answer.status.value, answer.reason) == ("failed", "backend.invalid_amount")
    assert sim.credits == {}


async def test_balance_before_and_after_a_top_up(sim, backend) -> None:
    before = await backend.balance(GLOBE_INTL, "globe")
    assert before == Balance(1250, 300, "2026-12-05")
    await backend.topup("K0001-000012", GLOBE_INTL, "globe", "globe-load", 5000)
    assert (await backend.balance(GLOBE_INTL, "globe")).airtime == 6250
    await backend.topup("K0001-000013", GLOBE_INTL, "globe", "globe-data-3d", 5000,
                        kind="data")
    after = await backend.balance(GLOBE_INTL, "globe")
    assert after.airtime == 6250 and after.data_mb == 300 + 2048
    assert after.valid_until > before.valid_until
    # Smart offers no balance inquiry.
    assert await backend.balance(SMART_INTL, "smart") is None


# ---------------------------------------------------------------- as the customer meets it
@pytest.fixture
async def rt(sim: ReloadlySimulator, tmp_path: Path) -> AsyncIterator[Runtime]:
    s = config.load(data_dir=tmp_path)
    s = replace(s, devices={**s.devices, "backend": DeviceSettings("reloadly", options(sim))},
                backend_timeout_s=1, query_interval_s=0.05)
    devices = {"sim_reader": SimulatedSimReader(delay_s=0.01),
               "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0.01),
               "card": SimulatedCardTerminal(delay_s=0.01),
               "printer": SimulatedPrinter(delay_s=0.01),
               "wallet": SimulatedWallet(s.currency, delay_s=0.01)}
    runtime = Runtime(s, devices=devices)
    await runtime.start()
    yield runtime
    await runtime.stop()


async def to_products(rt: Runtime, number: str = GLOBE) -> None:
    for e in (ev.Start(), ev.NumberEntered(number), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")


async def test_customer_sees_balance_and_only_what_is_sold(sim, rt) -> None:
    sim.withdrawn[1002] = {1500}
    await to_products(rt)
    s = rt.state
    assert s.phase is Phase.CHOOSE_PRODUCT and s.notice == ""
    assert s.balance == Balance(1250, 300, "2026-12-05")
    assert "globe-keep" not in s.offered and "globe-load" in s.offered
    rt.post(ev.ChooseProduct("globe-keep", 1500))
    assert rt.state.phase is Phase.CHOOSE_PRODUCT and rt.state.notice == "product.unavailable"


async def test_ported_number_is_sold_its_new_operators_products(sim, rt) -> None:
    sim.ported[GLOBE_INTL] = "smart"
    await to_products(rt)
    assert rt.state.txn.operator == "smart"
    rt.post(ev.ChooseProduct("smart-load", 2000))
    rt.post(ev.ChoosePayment("cash"))
    assert rt.state.phase is Phase.PAY_CASH
    cash = rt.devices["cash"]
    await until(lambda: cash.enabled, "the acceptor")
    cash.insert(2000)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    ref = rt.state.txn.ref
    assert rt.state.txn.outcome.value == "success" and sim.credits == {ref: 2000}
    assert sim.transactions[-1]["operatorId"] == 2001         # Smart's airtime operator


@pytest.mark.parametrize("fault", ["detect_down", "stopped"])
async def test_backend_down_means_no_payment_is_offered(sim, rt, fault) -> None:
    if fault == "detect_down":
        sim.detect_down = True
    else:
        sim.stop()
    await to_products(rt)
    s = rt.state
    assert s.offered == () and s.notice == "backend.unavailable"
    assert not s.device_ok("backend") and s.methods == ()
    rt.post(ev.ChooseProduct("globe-load", 2000))
    rt.post(ev.ChoosePayment("cash"))
    assert rt.state.phase is Phase.CHOOSE_PRODUCT and rt.state.txn.ref is None
    assert not rt.devices["cash"].enabled and rt.journal.transactions() == []


async def test_new_balance_is_shown_after_the_top_up(sim, rt) -> None:
    await to_products(rt)
    rt.post(ev.ChooseProduct("globe-load", 5000))
    rt.post(ev.ChoosePayment("cash"))
    cash = rt.devices["cash"]
    await until(lambda: cash.enabled, "the acceptor")
    cash.insert(5000)
    await until(lambda: rt.state.balance_after is not None, "the new balance")
    assert rt.state.balance_after.airtime == 1250 + 5000
    ref = rt.state.txn.ref
    assert sim.credits == {ref: 5000}
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.credited) == ("success", 5000, 5000)
