"""Harnesses shared by ``tests/`` and ``scripts/``: the clients, the fuzzers, the crash run.

Tests run them small and derandomized; scripts run them at scale. They live outside ``tests/`` so
a script never imports the test suite, and outside ``webhook_kit`` because they need the test
extra (requests, hypothesis, schemathesis) and are no public API.
"""
