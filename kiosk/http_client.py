"""The one way the kiosk's JSON services (wallet gateway, SMS gateway) open an HTTP client:
a bearer key, JSON accepted, a short connect timeout within the per-request one."""

from __future__ import annotations

import httpx


def bearer_client(timeout_s: float, verify: bool, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=3.0), verify=verify,
        headers={"Accept": "application/json", "Authorization": f"Bearer {api_key}"})
