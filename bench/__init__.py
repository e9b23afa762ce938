"""Benchmarks that print what they measure (see the README, "Benchmarks")."""
