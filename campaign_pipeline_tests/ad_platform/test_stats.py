from __future__ import annotations

import threading

from campaign_pipeline.ad_platform.stats import ClientStats


def test_metadata_of_a_fresh_client_is_all_zero() -> None:
    metadata = ClientStats().as_metadata()
    assert metadata["requests_total"] == 0
    assert metadata["requests_by_endpoint"] == {}
    assert metadata["retries_by_class"] == {}
    assert metadata["limiter_wait_seconds"] == 0.0


def test_metadata_counts_requests_retries_waits_and_tokens() -> None:
    stats = ClientStats()
    stats.record_request("GET /api/campaigns", "200", bytes_sent=0, bytes_received=1000)
    stats.record_request("GET /api/campaigns", "503", bytes_sent=0, bytes_received=80)
    stats.record_request("POST /api/campaigns/{id}/sync", "429", bytes_sent=30, bytes_received=90)
    stats.record_request("POST /api/campaigns/{id}/sync", "read_timeout", bytes_sent=30, bytes_received=0)
    stats.record_retry("transient", 1.25)
    stats.record_retry("transient", 0.5)
    stats.record_retry("rate_limited", 0.0)
    stats.record_limiter_wait(0.0)
    stats.record_limiter_wait(2.5)
    stats.record_limiter_restamp()
    stats.record_limiter_lapse()
    stats.record_limiter_lapse()
    stats.record_limiter_redate()
    stats.record_limiter_redate()
    stats.record_limiter_redate()
    stats.record_early_hang()
    stats.record_token_fetch()
    stats.record_call(3, succeeded=True)
    stats.record_call(1, succeeded=False)
    assert stats.as_metadata() == {
        "requests_total": 4,
        "requests_by_endpoint": {
            "GET /api/campaigns": {"200": 1, "503": 1},
            "POST /api/campaigns/{id}/sync": {"429": 1, "read_timeout": 1},
        },
        "rate_limited_total": 1,
        "retries_total": 3,
        "retries_by_class": {"rate_limited": 1, "transient": 2},
        "calls_succeeded": 1,
        "calls_failed": 1,
        "max_attempts_per_call": 3,
        "token_fetches": 1,
        "limiter_admissions": 2,
        "limiter_waits": 1,
        "limiter_wait_seconds": 2.5,
        "limiter_restamps": 1,
        "limiter_lapses": 2,
        "limiter_redates": 3,
        "hangs_detected_early": 1,
        "backoff_wait_seconds": 1.75,
        "bytes_sent": 60,
        "bytes_received": 1170,
    }


def test_counters_are_thread_safe() -> None:
    stats = ClientStats()

    def worker() -> None:
        for _ in range(1000):
            stats.record_request("GET /api/campaigns", "200", bytes_sent=1, bytes_received=2)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metadata = stats.as_metadata()
    assert (metadata["requests_total"], metadata["bytes_sent"], metadata["bytes_received"]) == (8000, 8000, 16000)
