"""Top-up backends: the interface, and implementations chosen by config."""
