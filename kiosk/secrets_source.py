"""Provider secrets from outside kiosk.toml.

Each secret has one name, looked up in this order:

1. `$CREDENTIALS_DIRECTORY/<name>`: a file from systemd's credentials (`LoadCredential=`),
2. the secrets file named by `[kiosk] secrets_file`: TOML with `<name> = "..."`, mode 0600
   or stricter, owned by the kiosk's user or root,
3. the environment variable `KIOSK_<NAME>`,
4. the driver's option in kiosk.toml (accepted for the demo, with a warning).

A secret's value never reaches a log line or an error message; in the settings it is a
`Secret`, a str whose repr() does not show it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config_values import CONTROL, ConfigError, parse_toml, read_file, utf8_text

log = logging.getLogger("kiosk.config")


@dataclass(frozen=True)
class SecretSpec:
    name: str           # credential file name and key in the secrets file
    device: str         # the kiosk.toml table ...
    driver: str         # ... with this driver ...
    option: str         # ... takes it as this option

    @property
    def env(self) -> str:
        return "KIOSK_" + self.name.upper()


SPECS = (
    SecretSpec("reloadly_client_id", "backend", "reloadly", "client_id"),
    SecretSpec("reloadly_client_secret", "backend", "reloadly", "client_secret"),
    SecretSpec("wallet_api_key", "wallet", "http", "api_key"),
    SecretSpec("sms_api_key", "sms", "http", "api_key"),
)
SECRET_OPTIONS = frozenset((s.device, s.option) for s in SPECS)


class Secret(str):
    """A secret's value: an ordinary str, except that repr() hides it."""

    def __repr__(self) -> str:
        return "'<secret>'"


def _checked(value: str, error: ConfigError) -> Secret:
    """`value` as a Secret, or `error` if it is empty or holds a control character."""
    if not value or CONTROL.search(value):
        raise error
    return Secret(value)


class SecretSources:
    def __init__(self, config_file: Path, secrets_file: Path | None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.config_file = config_file
        self.environ = os.environ if environ is None else environ
        creds = self.environ.get("CREDENTIALS_DIRECTORY", "")
        self.credentials = Path(creds) if creds else None
        self.secrets_file = secrets_file
        self.in_file = read_secrets_file(secrets_file) if secrets_file is not None else {}

    def lookup(self, spec: SecretSpec) -> tuple[Secret, str] | None:
        """The secret and where it was found, from the first source that has it."""
        if self.credentials is not None:
            path = self.credentials / spec.name
            if os.path.lexists(path):
                text = utf8_text(path, read_file(path)[0]).rstrip("\r\n")
                return _checked(text, ConfigError(
                    path, "", "must be one line of text, not empty")), f"credential {path}"
        if spec.name in self.in_file:
            return self.in_file[spec.name], str(self.secrets_file)
        value = self.environ.get(spec.env, "")
        if value:
            return _checked(value, ConfigError(
                "environment", spec.env, "must not contain control characters")), spec.env
        return None

    def fill(self, device: str, driver: str, options: dict[str, Any]) -> dict[str, Any]:
        """`options` of one device, with the secrets its driver takes filled in."""
        out = dict(options)
        for spec in SPECS:
            if (spec.device, spec.driver) != (device, driver):
                continue
            found = self.lookup(spec)
            if spec.option in options:
                log.warning("%s: %s.%s is a provider secret in the configuration file%s; keep "
                            "it in $CREDENTIALS_DIRECTORY/%s, the secrets file or %s",
                            self.config_file, device, spec.option,
                            f" (ignored: {found[1]} has it)" if found else "",
                            spec.name, spec.env)
            if found:
                out[spec.option] = found[0]
            elif spec.option in options:
                out[spec.option] = Secret(options[spec.option])
        return out


def read_secrets_file(path: Path) -> dict[str, Secret]:
    data, st = read_file(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(path, "", f"mode {mode:04o} lets others read it: it must be 0600 "
                                    "or stricter (chmod 600)")
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigError(path, "", f"owned by uid {st.st_uid}: it must be owned by the "
                                    "kiosk's user or root")
    known = {s.name for s in SPECS}
    out: dict[str, Secret] = {}
    for key, value in parse_toml(path, data).items():
        if key not in known:
            raise ConfigError(path, key, f"unknown secret (known: {', '.join(sorted(known))})")
        if not isinstance(value, str):
            raise ConfigError(path, key, "must be a string")
        out[key] = _checked(value, ConfigError(
            path, key, "must be a non-empty string without control characters"))
    return out
