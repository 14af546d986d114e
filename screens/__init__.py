"""The kiosk's Kivy screens. They show the engine's state and post events; no money rules."""
