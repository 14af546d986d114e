"""Receipt printers: ESC/POS over a serial port (`escpos.py`), its pure protocol layer
(`escpos_parser.py`) and a byte-exact printer simulator behind a pty (`escpos_sim.py`)."""
