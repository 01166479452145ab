"""Crash safety, short version: SIGKILL the provider twice under load (full: scripts/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harnesses.crash import run_crash

# Crash safety: kit processes under load, SIGKILLed and restarted.
pytestmark = pytest.mark.slow


def test_sigkill_loses_nothing(tmp_path: Path) -> None:
    result = run_crash(events=300, kills=2, work=tmp_path, seed=7)
    assert result.acknowledged == 300
    assert result.lost == []
    assert result.not_sent_in_db == 0
    assert result.duplicates <= result.duplicate_bound
