"""The demo panel's SIM slot for a vpcd reader: one virtual card at a time."""

from __future__ import annotations

import logging

from .virtual import PROFILES, CardProfile, VpcdCard

log = logging.getLogger("kiosk.sim")


class VpcdSlot:
    def __init__(self, port: int = 35963, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.card: VpcdCard | None = None

    @property
    def profiles(self) -> dict[str, CardProfile]:
        return PROFILES

    def insert(self, name: str) -> None:
        """Push the card of that profile into the reader (taking out any other first)."""
        self.remove()
        card = VpcdCard(PROFILES[name], host=self.host, port=self.port)
        card.insert()              # ConnectionError when no vpcd reader listens there
        self.card = card

    def remove(self) -> None:
        if self.card is not None:
            self.card.remove()
            self.card = None
