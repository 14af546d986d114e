"""Hardware: one small interface per device kind, real drivers and simulators behind it."""
