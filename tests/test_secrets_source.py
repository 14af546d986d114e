"""Provider secrets come from systemd credentials, a private secrets file or the environment;
kiosk.toml still works for the demo, with a warning. A value never reaches a log or error."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers import registry
from kiosk import composition
from kiosk.config import DEFAULT_CONFIG, ConfigError, Settings, load
from kiosk.payments.gateway_sim import WalletGatewaySimulator
from kiosk.secrets_source import SPECS, Secret

ALL_VARS = ["CREDENTIALS_DIRECTORY"] + [s.env for s in SPECS]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)


def _config(tmp_path: Path, extra: str = "", kiosk: str = "", backend: str = "") -> Path:
    """A production-like variant of the shipped config: real provider drivers; `kiosk`,
    `backend` and `extra` (the [wallet] table) add lines to those tables."""
    for name in ("kiosk.toml", "catalog.toml"):
        shutil.copy(DEFAULT_CONFIG.parent / name, tmp_path / name)
    path = tmp_path / "prod.toml"
    path.write_text('base = "kiosk.toml"\n'
                    f"[kiosk]\n{kiosk}"
                    '[backend]\ndriver = "reloadly"\nsimulator = false\n'
                    f'base_url = "https://topups.example"\n{backend}'
                    '[wallet]\ndriver = "http"\nsimulator = false\n'
                    'base_url = "https://wallet.example"\n' + extra, encoding="utf-8")
    return path


def _secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: bytes) -> Path:
    creds = tmp_path / "credentials"
    creds.mkdir()
    for name, data in files.items():
        (creds / name).write_bytes(data)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    return creds


def _secrets(s: Settings) -> tuple[str, str, str]:
    b, w = s.devices["backend"].options, s.devices["wallet"].options
    return b.get("client_id", ""), b.get("client_secret", ""), w.get("api_key", "")


def test_from_the_systemd_credentials_directory(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    _credentials(tmp_path, monkeypatch, reloadly_client_id=b"kiosk-7\n",
                 reloadly_client_secret=b"cred-s3cret", wallet_api_key=b"cred-key\r\n")
    with caplog.at_level(logging.WARNING):
        s = load(_config(tmp_path), data_dir=tmp_path / "var")
    assert _secrets(s) == ("kiosk-7", "cred-s3cret", "cred-key")
    assert caplog.records == []                      # nothing in kiosk.toml: no warning


def test_from_a_private_secrets_file(tmp_path: Path) -> None:
    _secrets_file(tmp_path, 'reloadly_client_id = "file-id"\n'
                            'reloadly_client_secret = "file-s3cret"\n'
                            'wallet_api_key = "file-key"\n', 0o600)
    s = load(_config(tmp_path, kiosk='secrets_file = "secrets.toml"\n'))
    assert _secrets(s) == ("file-id", "file-s3cret", "file-key")


def test_a_read_only_secrets_file_is_strict_enough(tmp_path: Path) -> None:
    _secrets_file(tmp_path, 'wallet_api_key = "file-key"\n', 0o400)
    s = load(_config(tmp_path, kiosk='secrets_file = "secrets.toml"\n'))
    assert _secrets(s)[2] == "file-key"


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660, 0o666, 0o610])
def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _secrets_file(tmp_path, 'wallet_api_key = "file-key"\n', mode)
    with pytest.raises(ConfigError) as info:
        load(_config(tmp_path, kiosk='secrets_file = "secrets.toml"\n'))
    assert info.value.file == str(path)
    assert f"mode {mode:04o}" in info.value.reason and "0600" in info.value.reason
    assert "file-key" not in str(info.value)


def test_a_secrets_file_owned_by_someone_else_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _secrets_file(tmp_path, 'wallet_api_key = "file-key"\n')
    if os.geteuid() == 0:
        os.chown(path, 54321, -1)               # root can give the file away
    else:                                       # others: the kiosk runs as another user
        me = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    owner = os.stat(path).st_uid
    with pytest.raises(ConfigError) as info:
        load(_config(tmp_path, kiosk='secrets_file = "secrets.toml"\n'))
    assert info.value.reason.startswith(f"owned by uid {owner}:")
    assert "file-key" not in str(info.value)


@pytest.mark.parametrize(("text", "key", "reason"), [
    ('wallet_apikey = "x-secret"\n', "wallet_apikey", "unknown secret"),
    ("wallet_api_key = 12345\n", "wallet_api_key", "must be a string"),
    ('wallet_api_key = ""\n', "wallet_api_key", "non-empty"),
    ('wallet_api_key = "x-secret\\n"\n', "wallet_api_key", "control characters"),
    ('wallet_api_key = "x-secret\n', "", "not valid TOML"),
])
def test_a_bad_secrets_file_names_the_key_but_not_the_value(tmp_path: Path, text: str,
                                                            key: str, reason: str) -> None:
    _secrets_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(_config(tmp_path, kiosk='secrets_file = "secrets.toml"\n'))
    assert info.value.key == key and reason in info.value.reason
    assert "x-secret" not in str(info.value) and "12345" not in str(info.value)


def test_a_missing_secrets_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(_config(tmp_path, kiosk='secrets_file = "nope.toml"\n'))


def test_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_RELOADLY_CLIENT_ID", "env-id")
    monkeypatch.setenv("KIOSK_RELOADLY_CLIENT_SECRET", "env-s3cret")
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "env-key")
    assert _secrets(load(_config(tmp_path))) == ("env-id", "env-s3cret", "env-key")


def test_an_empty_variable_counts_as_unset(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "")
    s = load(_config(tmp_path, extra='api_key = "toml-key"\n'))
    assert _secrets(s)[2] == "toml-key"


def test_a_variable_with_a_control_character_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_RELOADLY_CLIENT_SECRET", "env-s3cret\nX-Injected: 1")
    with pytest.raises(ConfigError) as info:
        load(_config(tmp_path))
    assert info.value.key == "KIOSK_RELOADLY_CLIENT_SECRET"
    assert "s3cret" not in str(info.value)


def test_the_order_credentials_file_environment_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    creds = _credentials(tmp_path, monkeypatch, wallet_api_key=b"1-cred")
    _secrets_file(tmp_path, 'wallet_api_key = "2-file"\n')
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "3-env")
    path = _config(tmp_path, kiosk='secrets_file = "secrets.toml"\n',
                   extra='api_key = "4-toml"\n')
    with caplog.at_level(logging.WARNING, logger="kiosk.config"):
        assert _secrets(load(path))[2] == "1-cred"
    assert "ignored" in caplog.text
    (creds / "wallet_api_key").unlink()
    assert _secrets(load(path))[2] == "2-file"
    path.write_text(path.read_text().replace('secrets_file = "secrets.toml"\n', ""))
    assert _secrets(load(path))[2] == "3-env"
    monkeypatch.delenv("KIOSK_WALLET_API_KEY")
    assert _secrets(load(path))[2] == "4-toml"


def test_a_secret_in_kiosk_toml_works_with_a_warning_that_hides_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _config(tmp_path, extra='api_key = "toml-key-123"\n',
                   backend='client_secret = "toml-s3cret-456"\n')
    with caplog.at_level(logging.WARNING, logger="kiosk.config"):
        s = load(path)
    assert _secrets(s)[1:] == ("toml-s3cret-456", "toml-key-123")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert any("backend.client_secret" in m and "KIOSK_RELOADLY_CLIENT_SECRET" in m
               for m in warned)
    assert any("wallet.api_key" in m and "KIOSK_WALLET_API_KEY" in m for m in warned)
    assert "toml-key-123" not in caplog.text and "toml-s3cret-456" not in caplog.text


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not empty"), (b"\n", "not empty"), (b"s3cr3t-part\nlines", "one line"),
    (b"\xffkey", "not UTF-8 text (byte 0)"),
])
def test_a_bad_credential_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes,
                               reason: str) -> None:
    creds = _credentials(tmp_path, monkeypatch, reloadly_client_secret=data)
    with pytest.raises(ConfigError) as info:
        load(_config(tmp_path))
    assert info.value.file == str(creds / "reloadly_client_secret")
    assert reason in info.value.reason and "s3cr3t" not in str(info.value)


def test_a_credential_that_is_a_directory(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    creds = _credentials(tmp_path, monkeypatch)
    (creds / "wallet_api_key").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load(_config(tmp_path))


def test_secrets_only_go_to_the_drivers_that_take_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "env-key")
    monkeypatch.setenv("KIOSK_RELOADLY_CLIENT_SECRET", "env-s3cret")
    _config(tmp_path)
    s = load(_simulated(tmp_path))
    assert (s.devices["backend"].driver, s.devices["wallet"].driver) == ("simulated",
                                                                        "simulated")
    assert "client_secret" not in s.devices["backend"].options
    assert "api_key" not in s.devices["wallet"].options


def _simulated(tmp_path: Path) -> Path:
    path = tmp_path / "simulated.toml"
    text = (DEFAULT_CONFIG.parent / "kiosk.toml").read_text(encoding="utf-8")
    text = text.replace('driver = "reloadly"', 'driver = "simulated"').replace(
        'driver = "http"', 'driver = "simulated"').replace("simulator = true", "")
    path.write_text(text, encoding="utf-8")
    return path


def test_a_secret_is_a_string_whose_repr_hides_it(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "env-key-789")
    s = load(_config(tmp_path))
    key = s.devices["wallet"].options["api_key"]
    assert isinstance(key, Secret) and key == "env-key-789"
    assert f"Bearer {key}" == "Bearer env-key-789"
    assert json.dumps({"k": key}) == '{"k": "env-key-789"}'
    assert "env-key-789" not in repr(s.devices["wallet"]) and "env-key-789" not in repr(s)


@pytest.fixture
def gateway() -> Iterator[WalletGatewaySimulator]:
    sim = WalletGatewaySimulator(api_key="from-env-key").start()
    try:
        yield sim
    finally:
        sim.stop()


async def test_the_wallet_driver_authenticates_with_the_secret_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        gateway: WalletGatewaySimulator) -> None:
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "from-env-key")
    path = _config(tmp_path)
    path.write_text(path.read_text().replace('"https://wallet.example"', f'"{gateway.url}"')
                    + "verify = false\ntimeout_s = 2.0\n")
    s = load(path)
    opts = composition.options(s, "wallet", "http", dict(s.devices["wallet"].options))
    wallet = registry.create("wallet", "http", **opts)
    try:
        assert await wallet.reachable()
    finally:
        await wallet.aclose()
    monkeypatch.setenv("KIOSK_WALLET_API_KEY", "wrong-key")
    s = load(path)
    wallet = registry.create("wallet", "http", **composition.options(
        s, "wallet", "http", dict(s.devices["wallet"].options)))
    try:
        assert not await wallet.reachable()
    finally:
        await wallet.aclose()
