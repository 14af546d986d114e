"""Payments other than devices: mobile-wallet QR (EMVCo merchant-presented)."""
