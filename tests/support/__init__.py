"""Helpers shared by the test suite and the demo: real servers on loopback, test data."""
