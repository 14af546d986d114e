"""The PC/SC tests use the session's private pcscd: fixture `pcscd_rig` (tests/conftest.py)."""
