"""Reproducible performance harness (`make bench`); not part of the test suite."""
