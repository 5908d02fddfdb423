"""Profiling harness, timers, telemetry, FLOP/byte model, roofline and regression tracking."""
