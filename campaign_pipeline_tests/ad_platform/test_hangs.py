from __future__ import annotations

import pytest

from campaign_pipeline.ad_platform.hangs import (
    ANSWERS_REMEMBERED,
    ATTEMPTS_REMEMBERED,
    SUSPICIOUS_SHARE,
    HangDetector,
    ReadTimeout,
)

SYNC = "POST /api/campaigns/{id}/sync"
LIST = "GET /api/campaigns"


def detector(**options: float) -> HangDetector:
    return HangDetector(**{"multiplier": 1.5, "floor_seconds": 0.5, "min_answers": 3, **options})


def test_the_configured_timeout_holds_until_the_endpoint_has_answered_enough() -> None:
    hangs = detector()
    hangs.answered(SYNC, 2.0)
    hangs.answered(SYNC, 2.0)

    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(30.0, early=False)


def test_the_learned_timeout_is_the_multiple_of_the_slowest_recent_answer_per_endpoint() -> None:
    hangs = detector()
    for seconds in (2.0, 2.2, 2.1):
        hangs.answered(SYNC, seconds)

    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(pytest.approx(3.3), early=True)
    assert hangs.read_timeout(LIST, 30.0) == ReadTimeout(30.0, early=False)


def test_the_learned_timeout_never_goes_below_the_floor_nor_above_the_configured_one() -> None:
    hangs = detector()
    for _ in range(3):
        hangs.answered(LIST, 0.01)
        hangs.answered(SYNC, 2.0)

    assert hangs.read_timeout(LIST, 30.0) == ReadTimeout(0.5, early=True)
    assert hangs.read_timeout(SYNC, 3.0) == ReadTimeout(3.0, early=False)


def test_only_the_recent_answers_count() -> None:
    hangs = detector()
    hangs.answered(SYNC, 10.0)
    for _ in range(ANSWERS_REMEMBERED - 1):
        hangs.answered(SYNC, 2.0)
    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(15.0, early=True)

    hangs.answered(SYNC, 2.0)

    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(3.0, early=True)


def test_half_of_the_recent_attempts_ended_early_brings_back_the_configured_timeout_until_they_age_out() -> None:
    hangs = detector()
    half = int(ATTEMPTS_REMEMBERED * SUSPICIOUS_SHARE)
    for _ in range(ATTEMPTS_REMEMBERED - half):
        hangs.answered(SYNC, 2.0)
    for _ in range(half - 1):
        hangs.ended(SYNC, early_timeout=True)
    assert hangs.read_timeout(SYNC, 30.0).early

    hangs.ended(SYNC, early_timeout=True)
    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(30.0, early=False)

    # The platform got slower: the answers waited for teach the new pace, learned once the early ends age out.
    for _ in range(ATTEMPTS_REMEMBERED - half):
        hangs.answered(SYNC, 4.0)
        assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(30.0, early=False)
    hangs.answered(SYNC, 4.0)
    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(6.0, early=True)


def test_other_failures_count_as_attempts_that_did_not_end_early() -> None:
    hangs = detector()
    for _ in range(3):
        hangs.answered(SYNC, 1.0)
    for _ in range(ATTEMPTS_REMEMBERED // 2):
        hangs.ended(SYNC, early_timeout=True)
        hangs.ended(SYNC, early_timeout=False)

    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(30.0, early=False)
    hangs.ended(SYNC, early_timeout=False)
    assert hangs.read_timeout(SYNC, 30.0) == ReadTimeout(1.5, early=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"multiplier": 1.0}, "multiplier must be greater than 1, not 1.0"),
        ({"floor_seconds": 0.0}, "floor must be greater than 0 s, not 0.0"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        detector(**options)
