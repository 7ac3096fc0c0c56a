"""Unit numbers: the field decides the meaning; formatting gives back the largest exact unit."""

from __future__ import annotations

import pytest

from dmlc import units


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10), ("30m", 1800), ("1.5h", 5400), ("7d", 604800), (5, 5)])
def test_durations(text: str | int, seconds: float) -> None:
    assert units.parse_duration(text) == seconds


def test_same_token_means_different_things() -> None:
    assert units.parse_duration("30m") == 1800
    assert units.parse_cpu("30m") == 30


@pytest.mark.parametrize(("text", "size"), [("2Gi", 2 * 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), (100, 100)])
def test_memory(text: str | int, size: int) -> None:
    assert units.parse_memory(text) == size


@pytest.mark.parametrize("bad", ["2GB", "10 parsecs", "fast", "1.2.3Gi"])
def test_bad_memory(bad: str) -> None:
    with pytest.raises(units.UnitError):
        units.parse_memory(bad)


def test_gb_hint_names_the_fix() -> None:
    with pytest.raises(units.UnitError) as info:
        units.parse_memory("2GB")
    assert "2Gi" in info.value.hint


def test_format_round_trip() -> None:
    assert units.format_duration(1800) == "30m"
    assert units.format_duration(90) == "90s"
    assert units.format_memory(2 * 2**30) == "2Gi"
    assert units.format_cpu(500) == "500m" and units.format_cpu(2000) == "2"
    for text in ("10s", "30m", "2h", "7d"):
        assert units.format_duration(units.parse_duration(text)) == text
