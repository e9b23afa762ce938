"""Helpers that several test modules share (test modules import nothing from each other)."""
