"""The SIM card reader: pure layers (APDUs, file codecs, the read procedure), a virtual card.

Layers, bottom up, as in pySim: `apdu` (command and response bytes, status words), `files`
(one codec per elementary file, each with test vectors), `card` (the read procedure over any
`transmit(bytes) -> bytes`), `virtual` (a card that answers like a real one, in process or
through vsmartcard's vpcd). Only the PC/SC adapter touches pyscard.
"""
