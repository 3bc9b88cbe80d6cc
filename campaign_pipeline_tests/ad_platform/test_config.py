from __future__ import annotations

import pytest

from campaign_pipeline.ad_platform.config import ClientConfig, RetryBudget


def test_defaults_fit_the_contract() -> None:
    config = ClientConfig()
    assert (config.rate_limit, config.rate_window_seconds, config.page_size) == (10, 60.0, 100)
    assert config.read_timeout_seconds > 2.0
    assert config.rate_limit_default_wait_seconds == 60.0


def test_default_retry_after_can_be_set() -> None:
    assert ClientConfig(default_retry_after_seconds=5.0).rate_limit_default_wait_seconds == 5.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rate_limit": 0}, "ClientConfig.rate_limit must be at least 1, not 0."),
        (
            {"hang_detection_multiplier": 1.0},
            "ClientConfig.hang_detection_multiplier must be a number greater than 1 or None, not 1.0.",
        ),
        (
            {"hang_detection_multiplier": float("nan")},
            "ClientConfig.hang_detection_multiplier must be a number greater than 1 or None, not nan.",
        ),
        (
            {"hang_detection_floor_seconds": 0.0},
            "ClientConfig.hang_detection_floor_seconds must be a finite number of seconds, more than 0",
        ),
        ({"sync_workers": -1}, "ClientConfig.sync_workers must be at least 1, not -1."),
        (
            {"read_timeout_seconds": 0.0},
            "ClientConfig.read_timeout_seconds must be a finite number of seconds, more than 0",
        ),
        ({"rate_window_seconds": float("inf")}, "ClientConfig.rate_window_seconds must be a finite number of seconds"),
        (
            {"limiter_safety_margin_seconds": -0.5},
            "ClientConfig.limiter_safety_margin_seconds must be a finite number of seconds, 0 or more",
        ),
        (
            {"transient_retry": RetryBudget(retries=-1, seconds=1.0)},
            "ClientConfig.transient_retry must allow 0 or more retries",
        ),
        (
            {"read_timeout_seconds": 60.0, "call_deadline_seconds": 30.0},
            "read_timeout_seconds must not exceed call_deadline_seconds",
        ),
    ],
)
def test_bad_settings_fail_with_a_sentence_naming_them(settings: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        ClientConfig(**settings)
    assert message in str(raised.value)


def test_zero_safety_margin_is_allowed() -> None:
    assert ClientConfig(limiter_safety_margin_seconds=0.0).limiter_safety_margin_seconds == 0.0
