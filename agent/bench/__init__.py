"""Benchmarks that replay a target's own history (`onboard bench history`)."""
