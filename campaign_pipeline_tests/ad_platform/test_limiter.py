from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest

from campaign_pipeline.ad_platform.limiter import (
    PostgresSlidingWindowLimiter,
    SlidingWindowLimiter,
    SlotWaitTooLong,
    wait_before_admission,
)
from campaign_pipeline_tests.ad_platform.fakes import FakeClock


def most_in_any_window(moments: list[float], window: float) -> int:
    """The largest number of ``moments`` inside any half-open interval of length ``window``."""
    ordered = sorted(moments)
    return max((sum(1 for m in ordered if start <= m < start + window) for start in ordered), default=0)


class TestWaitBeforeAdmission:
    def test_empty_window_admits_now(self) -> None:
        assert wait_before_admission([], 100.0, limit=3, window_seconds=10.0) == 0.0

    def test_window_with_room_admits_now(self) -> None:
        assert wait_before_admission([95.0, 99.0], 100.0, limit=3, window_seconds=10.0) == 0.0

    def test_full_window_waits_until_its_oldest_slot_expires(self) -> None:
        assert wait_before_admission([92.0, 95.0, 99.0], 100.0, limit=3, window_seconds=10.0) == pytest.approx(2.0)

    def test_slots_older_than_the_window_do_not_count(self) -> None:
        assert wait_before_admission([80.0, 92.0, 95.0, 99.0], 100.0, limit=3, window_seconds=10.0) == pytest.approx(
            2.0
        )

    def test_over_full_window_waits_for_enough_slots_to_expire(self) -> None:
        assert wait_before_admission([91.0, 92.0, 93.0, 94.0], 100.0, limit=2, window_seconds=10.0) == pytest.approx(
            3.0
        )

    def test_deferral_holds_even_an_empty_window(self) -> None:
        assert wait_before_admission([], 100.0, limit=3, window_seconds=10.0, deferred_until=130.0) == 30.0

    def test_longest_of_deferral_and_window_wins(self) -> None:
        wait = wait_before_admission([92.0, 95.0, 99.0], 100.0, limit=3, window_seconds=10.0, deferred_until=101.0)
        assert wait == pytest.approx(2.0)

    def test_past_deferral_is_ignored(self) -> None:
        assert wait_before_admission([], 100.0, limit=3, window_seconds=10.0, deferred_until=50.0) == 0.0


class TestSlidingWindowLimiter:
    def test_admits_limit_per_window_at_exact_times(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
        admitted = []
        for _ in range(7):
            limiter.acquire("acme-retail")
            admitted.append(clock())
        assert admitted == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 20.0]
        assert clock.sleeps == [10.0, 10.0]

    def test_returns_the_seconds_waited(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 10.0, clock=clock, sleep=clock.sleep)
        assert limiter.acquire("acme-retail") == 0.0
        clock.advance(4.0)
        assert limiter.acquire("acme-retail") == pytest.approx(6.0)

    def test_safety_margin_lengthens_the_window(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 10.0, safety_margin_seconds=0.5, clock=clock, sleep=clock.sleep)
        limiter.acquire("acme-retail")
        limiter.acquire("acme-retail")
        assert clock() == 10.5

    def test_accounts_have_separate_windows(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 10.0, clock=clock, sleep=clock.sleep)
        limiter.acquire("acme-retail")
        limiter.acquire("globex")
        assert clock.sleeps == []

    def test_defer_holds_every_caller_of_the_account(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(10, 60.0, clock=clock, sleep=clock.sleep)
        limiter.defer("acme-retail", 30.0)
        limiter.defer("acme-retail", 5.0)
        assert limiter.acquire("acme-retail") == pytest.approx(30.0)
        assert limiter.acquire("globex") == 0.0
        assert limiter.acquire("acme-retail") == 0.0

    def test_wait_beyond_the_allowed_maximum_raises_without_sleeping(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 60.0, clock=clock, sleep=clock.sleep)
        limiter.acquire("acme-retail")
        with pytest.raises(SlotWaitTooLong, match=r"the next rate-limit slot opens in 60\.0 s") as raised:
            limiter.acquire("acme-retail", max_wait_seconds=59.0)
        assert raised.value.next_slot_seconds == 60.0
        assert clock.sleeps == []

    def test_a_slot_sent_within_a_quarter_of_the_margin_keeps_its_stamp(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 10.0, safety_margin_seconds=0.4, clock=clock, sleep=clock.sleep)
        admission = limiter.admit("acme-retail")
        clock.advance(0.1)
        assert admission.before_send() is True
        assert admission.restamped == 0
        limiter.acquire("acme-retail")
        assert clock() == pytest.approx(10.4)

    def test_a_slot_sent_late_is_stamped_at_sending_and_holds_the_window_from_then(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 10.0, safety_margin_seconds=0.4, clock=clock, sleep=clock.sleep)
        admission = limiter.admit("acme-retail")
        clock.advance(3.0)
        assert admission.before_send() is True
        assert admission.restamped == 1
        assert limiter.acquire("acme-retail") == pytest.approx(10.4)
        assert clock() == pytest.approx(13.4)

    def test_a_slot_sent_after_its_window_has_lapsed_and_must_be_taken_again(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
        admission = limiter.admit("acme-retail")
        clock.advance(10.0)
        assert admission.before_send() is False
        assert limiter.acquire("acme-retail") == 0.0

    @pytest.mark.parametrize(
        ("limit", "window", "margin", "message"),
        [
            (0, 1.0, 0.0, "rate limit must be at least 1"),
            (1, 0.0, 0.0, r"rate window must be a finite number of seconds above 0, not 0\.0\."),
            (1, math.inf, 0.0, r"rate window must be a finite number of seconds above 0, not inf\."),
            (1, math.nan, 0.0, r"rate window must be a finite number of seconds above 0, not nan\."),
            (1, 1.0, -0.1, r"safety margin must be a finite number of seconds, 0 or more, not -0\.1\."),
            (1, 1.0, math.inf, r"safety margin must be a finite number of seconds, 0 or more, not inf\."),
        ],
    )
    def test_rejects_bad_settings(self, limit: int, window: float, margin: float, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            SlidingWindowLimiter(limit, window, safety_margin_seconds=margin)

    def test_a_slot_dated_later_holds_the_window_from_that_moment(self) -> None:
        clock = FakeClock(start=0.0)
        limiter = SlidingWindowLimiter(1, 10.0, safety_margin_seconds=0.4, clock=clock, sleep=clock.sleep)
        admission = limiter.admit("acme-retail")
        clock.advance(3.0)
        assert admission.date_at(2.0) is True  # the platform may have counted the request as late as t=2
        assert admission.date_at(1.5) is False
        assert admission.redated == 1
        limiter.acquire("acme-retail")
        assert clock() == pytest.approx(2.0 + 10.4)

    def test_a_slot_is_never_dated_earlier_nor_within_the_restamp_threshold(self) -> None:
        clock = FakeClock(start=5.0)
        limiter = SlidingWindowLimiter(1, 10.0, safety_margin_seconds=0.4, clock=clock, sleep=clock.sleep)
        admission = limiter.admit("acme-retail")
        clock.advance(1.0)
        assert admission.date_at(4.0) is False
        assert admission.date_at(5.0 + 0.4 * 0.25) is False  # within a quarter of the margin: not worth a round trip
        assert admission.redated == 0
        limiter.acquire("acme-retail")
        assert clock() == pytest.approx(15.4)

    def test_threads_never_exceed_the_window(self) -> None:
        limiter = SlidingWindowLimiter(5, 0.2)
        admitted: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(3):
                limiter.acquire("acme-retail")
                with lock:
                    admitted.append(time.monotonic())

        threads = [threading.Thread(target=worker) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(admitted) == 15
        # Times are read just after acquire returns, a few milliseconds late at most.
        assert most_in_any_window(admitted, 0.2 - 0.01) == 5
        assert max(admitted) - min(admitted) >= 0.4


@pytest.fixture
def limiter_url(make_database: Callable[[str], str]) -> str:
    return make_database("limiter")


@pytest.fixture
def postgres_limiters(limiter_url: str) -> Iterator[Callable[..., PostgresSlidingWindowLimiter]]:
    made: list[PostgresSlidingWindowLimiter] = []

    def make(**options) -> PostgresSlidingWindowLimiter:
        limiter = PostgresSlidingWindowLimiter(limiter_url, **{"safety_margin_seconds": 0.0, **options})
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


class RecordingSleep:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)


class TestPostgresSlidingWindowLimiter:
    def test_full_window_waits_exactly_until_the_oldest_slot_expires(self, postgres_limiters) -> None:
        sleep = RecordingSleep()
        limiter = postgres_limiters(limit=3, window_seconds=0.3, sleep=sleep)
        started = time.monotonic()
        for _ in range(3):
            assert limiter.acquire("acme-retail") == 0.0
        waited = limiter.acquire("acme-retail")
        assert len(sleep.sleeps) == 1
        assert 0.3 - (time.monotonic() - started) < sleep.sleeps[0] <= 0.3
        assert waited >= sleep.sleeps[0]

    def test_a_slot_dated_later_holds_every_limiter_of_the_account(self, postgres_limiters) -> None:
        first = postgres_limiters(limit=1, window_seconds=1.0, safety_margin_seconds=0.1)
        second = postgres_limiters(limit=1, window_seconds=1.0, safety_margin_seconds=0.1)
        admission = first.admit("acme-retail")
        time.sleep(0.5)
        counted_by = time.monotonic() - 0.1
        admission.date_at(counted_by)
        assert admission.redated == 1
        second.acquire("acme-retail")
        # Not before the dated moment plus the window and margin (the slot's first stamp would free it 0.4 s sooner).
        assert time.monotonic() >= counted_by + 1.1 - 0.02

    def test_two_limiters_on_one_database_share_the_window(self, postgres_limiters) -> None:
        limiters = [postgres_limiters(limit=4, window_seconds=0.25), postgres_limiters(limit=4, window_seconds=0.25)]
        admitted: list[float] = []
        lock = threading.Lock()

        def worker(limiter: PostgresSlidingWindowLimiter) -> None:
            for _ in range(3):
                limiter.acquire("acme-retail")
                with lock:
                    admitted.append(time.monotonic())

        threads = [threading.Thread(target=worker, args=(limiters[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(admitted) == 12
        assert most_in_any_window(admitted, 0.25 - 0.01) <= 4
        assert max(admitted) - min(admitted) >= 0.5 - 0.01

    def test_defer_is_obeyed_by_every_limiter_of_the_account(self, postgres_limiters) -> None:
        sleep = RecordingSleep()
        first = postgres_limiters(limit=10, window_seconds=60.0)
        second = postgres_limiters(limit=10, window_seconds=60.0, sleep=sleep)
        first.defer("acme-retail", 0.3)
        assert second.acquire("globex") == 0.0
        assert second.acquire("acme-retail") >= 0.25
        assert 0.2 < sleep.sleeps[0] <= 0.3

    def test_defer_never_shortens_an_earlier_wait(self, postgres_limiters) -> None:
        limiter = postgres_limiters(limit=10, window_seconds=60.0)
        limiter.defer("acme-retail", 30.0)
        limiter.defer("acme-retail", 1.0)
        with pytest.raises(SlotWaitTooLong) as raised:
            limiter.acquire("acme-retail", max_wait_seconds=10.0)
        assert 29.0 < raised.value.next_slot_seconds <= 30.0

    def test_wait_beyond_the_allowed_maximum_raises(self, postgres_limiters) -> None:
        limiter = postgres_limiters(limit=1, window_seconds=60.0)
        limiter.acquire("acme-retail")
        with pytest.raises(SlotWaitTooLong):
            limiter.acquire("acme-retail", max_wait_seconds=1.0)

    def test_a_slot_sent_late_is_stamped_with_the_database_clock_at_sending(
        self, postgres_limiters, limiter_url: str
    ) -> None:
        limiter = postgres_limiters(limit=1, window_seconds=0.4, safety_margin_seconds=0.2)
        admission = limiter.admit("acme-retail")
        with psycopg.connect(limiter_url) as connection:
            (taken,) = connection.execute("SELECT admitted_at FROM ad_platform_rate_limit.admissions").fetchone()
        time.sleep(0.1)
        assert admission.before_send() is True
        assert admission.restamped == 1
        with psycopg.connect(limiter_url) as connection:
            rows = connection.execute("SELECT admitted_at FROM ad_platform_rate_limit.admissions").fetchall()
        assert len(rows) == 1
        assert rows[0][0] - taken >= timedelta(seconds=0.1)
        started = time.monotonic()
        limiter.acquire("acme-retail")
        assert time.monotonic() - started > 0.6 - 0.05

    def test_a_slot_whose_window_lapsed_before_sending_is_not_stamped_again(self, postgres_limiters) -> None:
        limiter = postgres_limiters(limit=1, window_seconds=0.1)
        admission = limiter.admit("acme-retail")
        time.sleep(0.15)
        assert admission.before_send() is False
        assert limiter.acquire("acme-retail") == 0.0

    def test_old_admissions_are_pruned(self, postgres_limiters, limiter_url: str) -> None:
        limiter = postgres_limiters(limit=5, window_seconds=0.05)
        for _ in range(5):
            limiter.acquire("acme-retail")
        time.sleep(0.06)
        limiter.acquire("acme-retail")
        with psycopg.connect(limiter_url) as connection:
            count = connection.execute("SELECT count(*) FROM ad_platform_rate_limit.admissions").fetchone()
        assert count == (1,)

    def test_schema_creation_is_idempotent_under_concurrency(self, limiter_url: str) -> None:
        errors: list[BaseException] = []

        def create() -> None:
            try:
                PostgresSlidingWindowLimiter(limiter_url, limit=1, window_seconds=1.0).close()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=create) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    def test_admissions_commit_without_waiting_for_the_disk_and_stay_visible_to_other_limiters(
        self, postgres_limiters
    ) -> None:
        first, second = postgres_limiters(limit=1, window_seconds=5.0), postgres_limiters(limit=1, window_seconds=5.0)

        first.admit("acme-retail")

        with first._pool.connection() as connection:
            assert connection.execute("SHOW synchronous_commit").fetchone() == ("off",)
        with pytest.raises(SlotWaitTooLong):
            second.admit("acme-retail", max_wait_seconds=1.0)

    def test_repr_shows_no_url(self, postgres_limiters, limiter_url: str) -> None:
        limiter = postgres_limiters(limit=3, window_seconds=1.0)
        assert repr(limiter) == "PostgresSlidingWindowLimiter(limit=3, window_seconds=1)"
