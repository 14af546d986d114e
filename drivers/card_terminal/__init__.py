"""Card payment terminals.

`zvt` is the ZVT protocol (the ECR interface of German-market terminals: Ingenico, Verifone,
CCV, Worldline and others) as a pure module: framing, CRC, the link layer as a sans-I/O
state machine, APDUs, bitmaps, and the messages both ways. `simulator` is a ZVT terminal
served byte for byte on the far side of a real pty, with a ledger of what it did; `terminal`
is the kiosk's driver (pyserial, its own thread); `selftest` is `kiosk diag card`.
See docs/protocols/zvt.md.
"""
