"""Shared test suites that every implementation of a protocol runs (pytest is needed to use them)."""
