"""Benchmarks behind `airgrid bench`; each measures its baseline in the same run."""
