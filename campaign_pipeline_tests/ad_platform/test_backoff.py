from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from campaign_pipeline.ad_platform.backoff import full_jitter_backoff, parse_retry_after

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


class MaxRandom(random.Random):
    """Draws the top of every range, to expose the ceiling of the jitter."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (60, 10.0)]
)
def test_full_jitter_ceiling_doubles_per_attempt_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert full_jitter_backoff(attempt, base_seconds=0.5, cap_seconds=10.0, rng=MaxRandom()) == ceiling


def test_full_jitter_draws_uniformly_between_zero_and_the_ceiling() -> None:
    rng = random.Random(42)
    waits = [full_jitter_backoff(4, base_seconds=1.0, cap_seconds=30.0, rng=rng) for _ in range(2000)]
    assert min(waits) >= 0.0
    assert max(waits) <= 8.0
    assert min(waits) < 0.1
    assert max(waits) > 7.9
    assert 3.6 < sum(waits) / len(waits) < 4.4


def test_full_jitter_survives_huge_attempt_numbers() -> None:
    assert full_jitter_backoff(10_000, base_seconds=1.0, cap_seconds=30.0, rng=MaxRandom()) == 30.0


def test_full_jitter_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt must be at least 1"):
        full_jitter_backoff(0, base_seconds=1.0, cap_seconds=30.0, rng=random.Random(0))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Fri, 27 Nov 2026 12:00:30 GMT", 30.0),
        ("Friday, 27-Nov-26 12:01:00 GMT", 60.0),
        ("Fri Nov 27 12:00:45 2026", 45.0),
        ("Fri, 27 Nov 2026 11:59:00 GMT", 0.0),
    ],
)
def test_retry_after_header_in_seconds_or_http_date(header: str, expected: float) -> None:
    assert parse_retry_after(header, None, NOW) == pytest.approx(expected)


def test_retry_after_header_wins_over_body() -> None:
    assert parse_retry_after("5", {"retry_after": 60}, NOW) == 5.0


def test_429_without_header_waits_body_retry_after() -> None:
    assert parse_retry_after(None, {"error": "Rate limit exceeded", "retry_after": 60}, NOW) == 60.0


def test_body_retry_after_may_be_a_numeric_string() -> None:
    assert parse_retry_after(None, {"retry_after": "12"}, NOW) == 12.0


def test_unreadable_header_falls_back_to_body() -> None:
    assert parse_retry_after("soon", {"retry_after": 9}, NOW) == 9.0


@pytest.mark.parametrize(
    "body",
    [None, {}, {"retry_after": None}, {"retry_after": True}, {"retry_after": "later"}, {"retry_after": "nan"}, []],
)
def test_no_usable_wait_gives_none(body: object) -> None:
    assert parse_retry_after(None, body, NOW) is None
