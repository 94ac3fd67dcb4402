"""``store.records``: the text form of a moment, written and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_ollama.store.records import _TIME_FORMAT, _format_time, _parse_time

MOMENTS = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


@given(MOMENTS)
def test_a_stored_moment_reads_back_as_it_was_written(moment: datetime) -> None:
    text = _format_time(moment)
    read = _parse_time(text)
    assert read == moment and read.tzinfo == UTC
    assert read == datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)  # the slow way agrees


def test_three_digit_fractions_read_the_strict_way() -> None:
    assert _parse_time("2026-12-07T21:00:00.123Z") == datetime(2026, 12, 7, 21, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["2026-12-07T21:00:00.1234567Z", "2026-13-07T21:00:00.123456Z", "x" * 27, "2026-12-07 21:00:00"]
)
def test_text_that_is_no_moment_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"month|isoformat|does not match|unconverted"):
        _parse_time(text)
