"""Self-service top-up kiosk: the core (engine, journal, config, backends, CLI). No Kivy here."""

__version__ = "0.1.0"
