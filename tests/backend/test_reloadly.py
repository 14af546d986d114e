"""ReloadlyBackend against a real HTTP server (kiosk/backend/http_sim.py) on 127.0.0.1.

Every fault that leaves the outcome open (5xx, a body that is not JSON, a reply slower than
the timeout, a connection closed after the credit was committed) must raise, so that the
runtime reads UNKNOWN and looks the reference up; the look-up then finds the one credit. The
simulator does not de-duplicate replayed references, so its ledger shows whether the kiosk
ever sent a top-up twice.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from drivers.registry import options_of
from drivers.simulated import (SimulatedBillAcceptor, SimulatedCardTerminal, SimulatedPrinter,
                               SimulatedSimReader)
from kiosk import config
from kiosk import events as ev
from kiosk.backend.base import TopUpStatus
from kiosk.backend.http_sim import ReloadlySimulator
from kiosk.backend.reloadly import ReloadlyBackend, ReloadlyError
from kiosk.backend.simulated import DEMO_SIMS, UNKNOWN_SIM
from kiosk.config import ConfigError, DeviceSettings
from kiosk.payments.simulated import SimulatedWallet
from kiosk.runtime import Runtime

GLOBE = "09171234567"
INTL = "639171234567"


@pytest.fixture
def sim() -> Iterator[ReloadlySimulator]:
    s = ReloadlySimulator().start()
    try:
        yield s
    finally:
        s.stop()


def make_backend(sim: ReloadlySimulator, **kw: Any) -> ReloadlyBackend:
    opts: dict[str, Any] = dict(base_url=sim.url, auth_url=sim.url + "/oauth/token",
                                client_id="kiosk", client_secret="secret", timeout_s=0.5,
                                verify=False)
    opts.update(kw)
    return ReloadlyBackend(**opts)


@pytest.fixture
async def backend(sim: ReloadlySimulator) -> AsyncIterator[ReloadlyBackend]:
    b = make_backend(sim)
    yield b
    await b.aclose()


async def topup(b: ReloadlyBackend, ref: str, amount: int = 5000) -> Any:
    return await b.topup(ref, INTL, "globe", "globe-load", amount)


# ---------------------------------------------------------------- direct calls
async def test_success(sim: ReloadlySimulator, backend: ReloadlyBackend) -> None:
    a = await topup(backend, "K0001-000001", 5000)
    assert a.status is TopUpStatus.SUCCESSFUL
    assert a.operator_ref.startswith("OP")
    assert sim.credits == {"K0001-000001": 5000}
    t = sim.transactions[0]
    assert t["customIdentifier"] == "K0001-000001"
    assert t["recipientPhone"] == INTL and t["countryCode"] == "PH"
    assert t["requestedAmount"] == 50.0
    s = await backend.status("K0001-000001")
    assert (s.status, s.operator_ref) == (TopUpStatus.SUCCESSFUL, a.operator_ref)


async def test_operator_ids_map_and_unknown_operator(sim: ReloadlySimulator) -> None:
    b = make_backend(sim, operator_ids={"globe": 341})
    try:
        assert (await topup(b, "R1")).status is TopUpStatus.SUCCESSFUL
        assert sim.transactions[-1]["operatorId"] == 341
        a = await b.topup("R2", "639181234321", "smart", "smart-load", 2000)
        assert (a.status, a.reason) == (TopUpStatus.FAILED, "backend.unknown_operator")
        assert "R2" not in sim.attempts                 # refused before anything was sent
    finally:
        await b.aclose()


async def test_token_cached_and_refreshed_once_after_401(sim: ReloadlySimulator,
                                                         backend: ReloadlyBackend) -> None:
    await topup(backend, "R1")
    await backend.status("R1")
    assert await backend.reachable()
    assert sim.token_requests == 1 and backend.token_fetches == 1
    sim.expire_tokens()
    assert (await topup(backend, "R2")).status is TopUpStatus.SUCCESSFUL
    assert sim.token_requests == 2
    assert sim.attempts["R2"] == 1                      # the 401 was not processed
    assert sim.credit_count == {"R1": 1, "R2": 1}
    await backend.status("R2")
    assert sim.token_requests == 2


async def test_wrong_credentials_raise(sim: ReloadlySimulator) -> None:
    b = make_backend(sim, client_secret="nope")
    try:
        with pytest.raises(Exception):
            await topup(b, "R1")
        assert sim.attempts == {}
        assert not await b.reachable()
    finally:
        await b.aclose()


@pytest.mark.parametrize("mode,reason", [
    ("fail", "backend.rejected"),
    ("refunded", "backend.rejected"),
    ("insufficient_balance", "backend.insufficient_balance"),
    ("recently_recharged", "backend.recently_recharged"),
])
async def test_business_failures(sim: ReloadlySimulator, backend: ReloadlyBackend,
                                 mode: str, reason: str) -> None:
    sim.set_mode(mode)
    a = await topup(backend, "R1")
    assert (a.status, a.reason) == (TopUpStatus.FAILED, reason)
    assert sim.credits == {}


@pytest.mark.parametrize("code,reason", [
    ("INVALID_AMOUNT_FOR_OPERATOR", "backend.invalid_amount"),
    ("COULD_NOT_AUTO_DETECT_OPERATOR", "backend.unknown_operator"),
    ("SOMETHING_NEW", "backend.rejected"),
])
async def test_error_codes(sim: ReloadlySimulator, backend: ReloadlyBackend,
                           code: str, reason: str) -> None:
    sim.set_mode("error", error_code=code)
    a = await topup(backend, "R1")
    assert (a.status, a.reason) == (TopUpStatus.FAILED, reason)


async def test_provider_internal_error_is_not_final(sim: ReloadlySimulator,
                                                    backend: ReloadlyBackend) -> None:
    sim.set_mode("error", error_code="PROVIDER_INTERNAL_ERROR")
    with pytest.raises(Exception):
        await topup(backend, "R1")
    assert (await backend.status("R1")).status is TopUpStatus.NOT_FOUND


async def test_status_of_failed_topup(sim: ReloadlySimulator, backend: ReloadlyBackend) -> None:
    sim.set_mode("refunded")
    await topup(backend, "R1")
    s = await backend.status("R1")
    assert (s.status, s.reason) == (TopUpStatus.FAILED, "backend.rejected")


@pytest.mark.parametrize("mode", ["5xx", "garbage", "slow", "timeout_after_commit"])
async def test_no_answer_raises_then_status_finds_the_credit(
        sim: ReloadlySimulator, backend: ReloadlyBackend, mode: str) -> None:
    sim.set_mode(mode, delay_s=1.5)                    # slow: 1.5 s > timeout_s 0.5
    with pytest.raises(Exception):
        await topup(backend, "R1", 2000)
    s = await backend.status("R1")
    assert s.status is TopUpStatus.SUCCESSFUL and s.operator_ref
    assert sim.credits == {"R1": 2000}
    assert sim.credit_count == {"R1": 1} and sim.attempts == {"R1": 1}


async def test_runtime_reads_a_raise_as_unknown(sim: ReloadlySimulator,
                                                backend: ReloadlyBackend) -> None:
    """The same guard the runtime puts around the call: wait_for + any exception."""
    sim.set_mode("timeout_after_commit")
    try:
        await asyncio.wait_for(topup(backend, "R1"), 1)
        outcome = "answered"
    except Exception:   # noqa: BLE001
        outcome = "unknown"
    assert outcome == "unknown"


async def test_processing_then_successful(sim: ReloadlySimulator,
                                          backend: ReloadlyBackend) -> None:
    sim.set_mode("processing", processing_lookups=2)
    assert (await topup(backend, "R1")).status is TopUpStatus.UNKNOWN
    assert (await backend.status("R1")).status is TopUpStatus.UNKNOWN
    assert (await backend.status("R1")).status is TopUpStatus.UNKNOWN
    s = await backend.status("R1")
    assert s.status is TopUpStatus.SUCCESSFUL and s.operator_ref
    assert sim.credit_count == {"R1": 1}


async def test_status_of_unknown_ref(backend: ReloadlyBackend) -> None:
    assert (await backend.status("K0001-999999")).status is TopUpStatus.NOT_FOUND


async def test_simulator_does_not_dedupe_by_default(sim: ReloadlySimulator,
                                                    backend: ReloadlyBackend) -> None:
    await topup(backend, "R1", 1000)
    await topup(backend, "R1", 1000)
    assert sim.credits == {"R1": 2000} and sim.credit_count == {"R1": 2}
    sim.set_mode("succeed", dedupe=True)
    await topup(backend, "R2", 1000)
    await topup(backend, "R2", 1000)
    assert sim.credit_count["R2"] == 1 and sim.attempts["R2"] == 2


async def test_lookup_subscriber(backend: ReloadlyBackend) -> None:
    iccid, number = next(iter(DEMO_SIMS.items()))
    assert await backend.lookup_subscriber(iccid) == number
    assert await backend.lookup_subscriber(UNKNOWN_SIM) is None


async def test_reachable(sim: ReloadlySimulator, backend: ReloadlyBackend) -> None:
    assert await backend.reachable()
    sim.stop()
    assert not await backend.reachable()
    with pytest.raises(Exception):
        await backend.status("R1")


def test_admin_endpoint_sets_faults(sim: ReloadlySimulator) -> None:
    req = urllib.request.Request(sim.url + "/_sim/mode", method="POST",
                                 data=json.dumps({"mode": "fail"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=2) as r:
        assert json.load(r) == {"mode": "fail"}
    assert sim.mode == "fail"
    with pytest.raises(ValueError):
        sim.set_mode("nonsense")
    with urllib.request.urlopen(sim.url + "/_sim/state", timeout=2) as r:
        assert json.load(r)["mode"] == "fail"


# ---------------------------------------------------------------- configuration
def backend_options(sim: ReloadlySimulator) -> dict[str, Any]:
    return {"base_url": sim.url, "auth_url": sim.url + "/oauth/token", "client_id": "kiosk",
            "client_secret": "secret", "timeout_s": 0.5, "verify": False,
            "operator_ids": dict(sim.operator_ids)}


def test_options_pass_config_validation(sim: ReloadlySimulator) -> None:
    accepted = options_of("backend", "reloadly")
    config._check_options(Path("kiosk.toml"), "backend",
                          DeviceSettings("reloadly", backend_options(sim)), accepted)
    config._check_options(Path("kiosk.toml"), "backend",
                          DeviceSettings("reloadly", {"timeout_s": 5}), accepted)
    with pytest.raises(ConfigError, match="backend.timeout_s"):
        config._check_options(Path("kiosk.toml"), "backend",
                              DeviceSettings("reloadly", {"timeout_s": "5"}), accepted)
    with pytest.raises(ConfigError, match="unknown option"):
        config._check_options(Path("kiosk.toml"), "backend",
                              DeviceSettings("reloadly", {"api_key": "x"}), accepted)


# ---------------------------------------------------------------- end to end
async def until(cond: Callable[[], Any], what: str, timeout: float = 8.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def rt(sim: ReloadlySimulator, tmp_path: Path) -> AsyncIterator[Runtime]:
    s = config.load(data_dir=tmp_path)
    s = replace(s, devices={**s.devices,
                            "backend": DeviceSettings("reloadly", backend_options(sim))},
                backend_timeout_s=1, query_interval_s=0.05)
    devices = {"sim_reader": SimulatedSimReader(delay_s=0.01),
               "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0.01),
               "card": SimulatedCardTerminal(delay_s=0.01),
               "printer": SimulatedPrinter(delay_s=0.01),
               "wallet": SimulatedWallet(s.currency, delay_s=0.01)}
    runtime = Runtime(s, devices=devices)           # the backend comes from the registry
    assert isinstance(runtime.backend, ReloadlyBackend)
    await runtime.start()
    yield runtime
    await runtime.stop()
    await runtime.backend.aclose()


async def buy_with_cash(rt: Runtime, amount: int) -> str:
    for e in (ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    for e in (ev.ChooseProduct("globe-load", amount), ev.ChoosePayment("cash")):
        rt.post(e)
    ref = rt.state.txn.ref
    assert ref is not None
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    await until(lambda: cash.enabled and cash.escrow is None, "the acceptor")
    assert cash.insert(amount)
    await until(lambda: (r := rt.journal.transaction(ref)) is not None
                and r.status == "closed", "the transaction to close")
    return ref


async def test_e2e_reply_lost_after_commit_is_credited_once(sim: ReloadlySimulator,
                                                            rt: Runtime) -> None:
    sim.set_mode("timeout_after_commit")
    ref = await buy_with_cash(rt, 5000)
    r = rt.journal.transaction(ref)
    assert r is not None
    assert (r.outcome, r.paid, r.credited, r.voucher) == ("success", 5000, 5000, 0)
    assert sim.credits == {ref: 5000}
    assert sim.credit_count == {ref: 1} and sim.attempts == {ref: 1}
    assert sim.transactions[0]["operatorId"] == 1001
    kinds = [e.kind for e in rt.journal.events(ref)]
    assert kinds.index("TopUp") < kinds.index("TopUpUnknown") < kinds.index("TopUpSucceeded")


async def test_e2e_failure_gives_a_voucher(sim: ReloadlySimulator, rt: Runtime) -> None:
    sim.set_mode("recently_recharged")
    ref = await buy_with_cash(rt, 5000)
    r = rt.journal.transaction(ref)
    assert r is not None
    assert (r.outcome, r.paid, r.credited, r.voucher) == ("failed_voucher", 5000, 0, 5000)
    assert sim.credits == {} and sim.attempts == {ref: 1}
    vs = rt.journal.vouchers(ref)
    assert [(v["amount"], v["status"]) for v in vs] == [(5000, "active")]
    assert rt.state.txn.failure == "backend.recently_recharged"


async def test_e2e_sim_lookup_through_http(sim: ReloadlySimulator, rt: Runtime) -> None:
    from kiosk.engine import Phase
    iccid = next(k for k, v in DEMO_SIMS.items() if v == GLOBE)
    rt.post(ev.Start())
    rt.devices["sim_reader"].insert(iccid)
    await until(lambda: rt.state.phase is Phase.CONFIRM_NUMBER, "the subscriber look-up")
    assert rt.state.txn.msisdn == GLOBE and rt.state.txn.number_source == "sim"
    assert ("GET", f"/subscribers/{iccid}") in sim.requests


def test_config_file_selects_reloadly(tmp_path: Path) -> None:
    src = Path(config.DEFAULT_CONFIG).parent
    for name in ("kiosk.toml", "catalog.toml"):
        (tmp_path / name).write_text((src / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "reloadly.toml").write_text(
        'base = "kiosk.toml"\n'
        '[backend]\ndriver = "reloadly"\ntimeout_s = 15\n'
        'base_url = "https://topups-sandbox.reloadly.com"\nclient_id = "id"\n'
        'client_secret = "s"\n[backend.operator_ids]\nglobe = 341\n', encoding="utf-8")
    s = config.load(tmp_path / "reloadly.toml", data_dir=tmp_path)
    dev = s.devices["backend"]
    assert dev.driver == "reloadly" and s.backend_timeout_s == 15
    assert dev.options["operator_ids"] == {"globe": 341}
    assert "timeout_s" not in dev.options           # the kiosk's timeout, not the driver's
    (tmp_path / "bad.toml").write_text(
        'base = "kiosk.toml"\n[backend]\ndriver = "reloadly"\nverify = "no"\n',
        encoding="utf-8")
    with pytest.raises(ConfigError, match="backend.verify"):
        config.load(tmp_path / "bad.toml", data_dir=tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), True, -5, "50"])
def test_a_bad_amount_from_the_provider_is_its_own_error(sim: ReloadlySimulator,
                                                        bad: Any) -> None:
    """JSON allows NaN and Infinity: an offer with one (or a bool, a negative, a string) is a
    ReloadlyError naming the operator, never a ValueError or OverflowError from int()."""
    b = make_backend(sim)
    for offer in ({"denominationType": "RANGE", "localMinAmount": bad, "localMaxAmount": 100},
                  {"denominationType": "FIXED", "localFixedAmounts": [50, bad]}):
        with pytest.raises(ReloadlyError, match="operator 7: bad amount"):
            b._offer(offer, 7)
