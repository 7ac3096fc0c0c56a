"""Fixtures for the local executor tests (see executor_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.executor.executor_support import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
