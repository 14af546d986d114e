"""Banknote acceptors.

`id003` is the JCM ID-003 protocol as a pure module (bytes in, typed frames and statuses
out, bytes for commands; no serial import). `device` is an ID-003 acceptor as a pure state
machine and `simulator` serves it byte for byte on the far side of a real pty, so the
serial driver (`acceptor`) is exercised exactly as it would be on the kiosk's RS-232 line.
The driver's escrow cycle is `escrow` (a pure state machine), `decisions` binds a STACK or
RETURN to the note it was made for, and `line` matches the device's answers to commands.
"""
