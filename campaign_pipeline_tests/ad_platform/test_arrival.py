"""Dating a request by the latest moment the platform can have counted it."""

from __future__ import annotations

import pytest

from campaign_pipeline.ad_platform.arrival import ArrivalEstimator

SYNC = "POST /api/campaigns/{id}/sync"
LIST = "GET /api/campaigns"


def test_the_first_answer_of_an_endpoint_is_dated_at_the_answer():
    arrivals = ArrivalEstimator(horizon_seconds=60)
    assert arrivals.answered(SYNC, sent_at=10.0, answered_at=12.0) == 12.0


def test_later_answers_are_dated_at_the_answer_minus_the_quickest_answer_seen():
    arrivals = ArrivalEstimator(horizon_seconds=60)
    arrivals.answered(SYNC, sent_at=0.0, answered_at=2.0)
    # Sent at 1, answered at 6: at least 2 s of it came after counting, so counted by 4.
    assert arrivals.answered(SYNC, sent_at=1.0, answered_at=6.0) == pytest.approx(4.0)
    # A quicker answer lowers the quickest: sent at 7, answered 1.5 s later, dated at its sending.
    assert arrivals.answered(SYNC, sent_at=7.0, answered_at=8.5) == pytest.approx(7.0)
    assert arrivals.answered(SYNC, sent_at=9.0, answered_at=11.0) == pytest.approx(9.5)


def test_each_endpoint_has_its_own_quickest_answer():
    arrivals = ArrivalEstimator(horizon_seconds=60)
    arrivals.answered(LIST, sent_at=0.0, answered_at=0.01)
    arrivals.answered(SYNC, sent_at=0.0, answered_at=2.0)
    assert arrivals.answered(LIST, sent_at=3.0, answered_at=3.51) == pytest.approx(3.5)
    assert arrivals.answered(SYNC, sent_at=3.0, answered_at=5.0) == pytest.approx(3.0)


def test_an_unanswered_request_is_dated_at_its_sending_plus_the_recent_delay():
    arrivals = ArrivalEstimator(horizon_seconds=10)
    assert arrivals.unanswered(sent_at=1.0, now=6.0) == 1.0
    arrivals.answered(LIST, sent_at=2.0, answered_at=2.1)
    arrivals.answered(LIST, sent_at=3.0, answered_at=3.9)  # 0.8 s later than the quickest
    assert arrivals.unanswered(sent_at=4.0, now=9.0) == pytest.approx(4.8)
    # Never later than now.
    assert arrivals.unanswered(sent_at=4.0, now=4.5) == pytest.approx(4.5)
    # Delays older than the horizon are forgotten.
    assert arrivals.unanswered(sent_at=20.0, now=25.0) == 20.0


def test_a_quicker_answer_dates_again_the_slots_dated_by_a_slower_quickest():
    arrivals = ArrivalEstimator(horizon_seconds=60)
    dated: list[tuple[str, float]] = []
    # A burst that the platform counted 0.5 s late as a whole: its quickest answer is late too.
    assert arrivals.answered(SYNC, 0.0, 2.5, date_slot=lambda at: dated.append(("first", at))) == 2.5
    assert arrivals.answered(SYNC, 0.1, 2.6, date_slot=lambda at: dated.append(("second", at))) == pytest.approx(0.1)
    assert arrivals.answered(SYNC, 0.2, 2.8, date_slot=lambda at: dated.append(("third", at))) == pytest.approx(0.3)
    assert dated == []
    # Once the platform keeps up, a sync takes 2.0 s: the second and third were counted by 0.6 and 0.8.
    assert arrivals.answered(SYNC, 3.0, 5.0, date_slot=lambda at: dated.append(("calm", at))) == pytest.approx(3.0)
    assert dated == [("second", pytest.approx(0.6)), ("third", pytest.approx(0.8))]


def test_slots_are_dated_again_only_later_only_for_the_same_endpoint_and_within_the_horizon():
    arrivals = ArrivalEstimator(horizon_seconds=10)
    dated: list[tuple[str, float]] = []
    arrivals.answered(LIST, 0.0, 0.5)
    arrivals.answered(LIST, 1.0, 1.5, date_slot=lambda at: dated.append(("old list", at)))
    arrivals.answered(SYNC, 11.0, 13.0)
    arrivals.answered(SYNC, 11.5, 13.5, date_slot=lambda at: dated.append(("sync", at)))
    arrivals.answered(LIST, 12.0, 12.5, date_slot=lambda at: dated.append(("list", at)))
    arrivals.answered(LIST, 14.0, 14.2)  # quicker: only "list" is of that endpoint and recent
    assert dated == [("list", pytest.approx(12.3))]
    # No slot moves earlier: a slower answer dates nothing again.
    arrivals.answered(LIST, 15.0, 16.0)
    assert dated == [("list", pytest.approx(12.3))]


def test_the_delay_of_an_unanswered_request_is_measured_from_the_quickest_answer_known_now():
    arrivals = ArrivalEstimator(horizon_seconds=60)
    arrivals.answered(SYNC, 0.0, 2.5)
    arrivals.answered(SYNC, 0.1, 2.7)  # 0.1 s beyond the quickest then
    arrivals.answered(SYNC, 3.0, 5.0)  # the quickest is 2.0 s: those two were 0.5 and 0.6 s late
    assert arrivals.unanswered(sent_at=6.0, now=10.0) == pytest.approx(6.6)
