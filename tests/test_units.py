"""Durations and sizes as the configuration writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [
    ("60s", 60), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("90", 90), ("250ms", 0.25),
    ("1h 5m", 3900),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "10x", "m10", "-5s", "1h and a bit"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [
    ("50MB", 50_000_000), ("512KB", 512_000), ("1GiB", 1024**3), ("2048", 2048),
    ("1.5MB", 1_500_000),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "10XB", "MB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@given(st.integers(min_value=0, max_value=10**7))
def test_formatted_duration_parses_back(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "B", "KB", "MB", "KiB"]))
def test_sizes_scale_by_their_unit(amount: int, unit: str) -> None:
    factor = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "KiB": 1024}[unit]
    assert parse_size(f"{amount}{unit}") == amount * factor
