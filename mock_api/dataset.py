"""Deterministic campaign data: every field is a pure function of (seed, account, campaign, date).

Tests call :func:`expected_campaigns` to know exactly which rows the warehouse
must hold after syncing an account-day from a simulator started with the same
seed and campaign count.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from mock_api.accounts import HOSTILE_ACCOUNT_ID

CAMPAIGN_ID_PATTERN = re.compile(r"^campaign_([1-9]\d{0,8})$")
CREATED_AT_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
CREATED_AT_SPAN_MS = 730 * 24 * 3600 * 1000
DRAW_SCALE = 2.0**-53

# Valid JSON strings that break careless SQL, CSV, COPY, logging or display
# code. NUL is left out on purpose: PostgreSQL text cannot store it.
HOSTILE_NAMES: tuple[str, ...] = (
    "'; DROP TABLE campaigns; --",
    "Robert'); DROP TABLE campaign_daily_metrics;--",
    'O\'Brien\'s "Best" Campaign',
    "C:\\Users\\admin\\campaigns\\",
    "Tab\tseparated\tname",
    "Line one\nline two\r\nline three",
    "Literal \\n and \\t and \\N are not escapes",
    "Rocket launch 🚀🔥 family 👩‍👩‍👧‍👦",
    "حملة رمضان الخاصة",
    "\u202eRTL override gnp.exe",
    "שלום mixed עברית and English",
    "Ünïcödé — “smart quotes” … ½ price",
    "中文广告系列 日本語キャンペーン 한국어 캠페인",
    "<script>alert('xss')</script>",
    "%s %d {0} ${name} {{name}} %(name)s",
    "comma,separated;semi|pipe",
    "   leading and trailing spaces   ",
    "NULL",
    "Zalgo c̷̛̖a̶m̸p̷a̶i̴g̷n̵",
    ("Very long campaign name " * 209)[:5000],
)
STATUSES = ("active", "paused", "completed")


def unit_draws(count: int, *parts: object) -> tuple[float, ...]:
    """Map ``parts`` to ``count`` independent floats in [0, 1), uniformly and reproducibly across processes."""
    key = "\x1f".join(map(str, parts)).encode()
    digest = hashlib.blake2b(key, digest_size=8 * count).digest()
    return tuple((word >> 11) * DRAW_SCALE for word in struct.unpack(f">{count}Q", digest))


def unit_draw(*parts: object) -> float:
    """Map ``parts`` to one float in [0, 1), uniformly and reproducibly across processes."""
    return unit_draws(1, *parts)[0]


def campaign_id(number: int) -> str:
    """Return the id of campaign ``number`` (1-based): ``campaign_<number>``."""
    return f"campaign_{number}"


def campaign_number(identifier: str) -> int | None:
    """Return the number in ``campaign_<number>``, or ``None`` when the id has another form."""
    match = CAMPAIGN_ID_PATTERN.fullmatch(identifier)
    return int(match.group(1)) if match else None


def parse_day(day: date | str) -> date:
    """Return ``day`` as a date; strings must be ``YYYY-MM-DD``."""
    if isinstance(day, datetime):
        raise TypeError("day must be a date or a YYYY-MM-DD string, not a datetime.")
    if isinstance(day, date):
        return day
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        raise ValueError(f"day must be YYYY-MM-DD, got {day!r}.")
    return date.fromisoformat(day)


def campaign_name(account_id: str, number: int) -> str:
    """Return the name of a campaign; the hostile account gets the hostile set."""
    if account_id != HOSTILE_ACCOUNT_ID:
        return f"Campaign {number}"
    base = HOSTILE_NAMES[(number - 1) % len(HOSTILE_NAMES)]
    return base if number <= len(HOSTILE_NAMES) else f"{base} #{number}"


def format_timestamp(moment: datetime) -> str:
    """Format a UTC moment like the platform: ISO-8601 with milliseconds and ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@lru_cache(maxsize=65536)
def campaign_profile(seed: int, account_id: str, number: int) -> tuple[str, str, int | float, str]:
    """Return the date-independent fields: (name, base status, budget, created_at)."""
    status_draw, budget_draw, cents_draw, created_draw = unit_draws(4, seed, account_id, number)
    base_status = "active" if status_draw < 0.7 else "paused" if status_draw < 0.9 else "completed"
    budget: int | float = 100 * (5 + int(budget_draw * 200))
    if cents_draw < 0.25:
        budget = round(budget + (1 + int(cents_draw * 396)) / 100, 2)
    created_at = format_timestamp(CREATED_AT_EPOCH + timedelta(milliseconds=int(created_draw * CREATED_AT_SPAN_MS)))
    return campaign_name(account_id, number), base_status, budget, created_at


def status_on_day(base_status: str, flip_draw: float) -> str:
    """Return the status on a day: completed campaigns stay so, others flip on about 1 day in 10."""
    if base_status == "completed" or flip_draw >= 0.1:
        return base_status
    return "paused" if base_status == "active" else "active"


def metrics_for_status(status: str, draws: tuple[float, float, float]) -> tuple[int, int, int]:
    """Turn three uniform draws into (impressions, clicks, conversions) for a campaign in ``status``.

    Completed campaigns deliver nothing and paused ones little, so the data
    holds zeros; clicks never exceed impressions nor conversions clicks.
    """
    ceiling = {"active": 50_000, "paused": 500, "completed": 0}[status]
    impressions = int(draws[0] * (ceiling + 1))
    clicks = int(impressions * (0.005 + 0.075 * draws[1]))
    conversions = int(clicks * (0.01 + 0.14 * draws[2]))
    return impressions, clicks, conversions


def daily_fields(seed: int, account_id: str, number: int, day: date) -> tuple[str, int, int, int]:
    """Return the date-dependent fields: (status, impressions, clicks, conversions)."""
    base_status = campaign_profile(seed, account_id, number)[1]
    flip_draw, impressions_draw, clicks_draw, conversions_draw = unit_draws(4, seed, account_id, number, day)
    status = status_on_day(base_status, flip_draw)
    return status, *metrics_for_status(status, (impressions_draw, clicks_draw, conversions_draw))


def campaign_record(seed: int, account_id: str, number: int, day: date) -> dict[str, Any]:
    """Return campaign ``number`` of ``account_id`` as the list endpoint shows it on ``day``."""
    name, _, budget, created_at = campaign_profile(seed, account_id, number)
    status, *metrics = daily_fields(seed, account_id, number, day)
    return _record(number, name, status, budget, metrics, created_at)


@lru_cache(maxsize=65536)
def _json_fragments(seed: int, account_id: str, number: int) -> tuple[str, str]:
    name, _, _, created_at = campaign_profile(seed, account_id, number)
    head = f'{{"id":"{campaign_id(number)}","name":{json.dumps(name, ensure_ascii=False)},"status":"'
    return head, f',"created_at":"{created_at}"}}'


def campaign_json(seed: int, account_id: str, number: int, day: date) -> str:
    """Return :func:`campaign_record` as compact JSON, built from cached fragments (the server's hot path)."""
    head, tail = _json_fragments(seed, account_id, number)
    budget = campaign_profile(seed, account_id, number)[2]
    status, impressions, clicks, conversions = daily_fields(seed, account_id, number, day)
    return (
        f'{head}{status}","budget":{budget!r},"impressions":{impressions},'
        f'"clicks":{clicks},"conversions":{conversions}{tail}'
    )


def random_campaign_record(seed: int, account_id: str, number: int, rng: random.Random) -> dict[str, Any]:
    """Return a campaign whose metrics are random on every call, like the upstream simulator's."""
    name, status, budget, created_at = campaign_profile(seed, account_id, number)
    metrics = metrics_for_status("active", (rng.random(), rng.random(), rng.random()))
    return _record(number, name, status, budget, metrics, created_at)


def _record(
    number: int, name: str, status: str, budget: int | float, metrics: Sequence[int], created_at: str
) -> dict[str, Any]:
    impressions, clicks, conversions = metrics
    return {
        "id": campaign_id(number),
        "name": name,
        "status": status,
        "budget": budget,
        "impressions": impressions,
        "clicks": clicks,
        "conversions": conversions,
        "created_at": created_at,
    }


def expected_campaigns(
    account_id: str, day: date | str, *, seed: int = 0, campaign_count: int = 100
) -> list[dict[str, Any]]:
    """Return what ``GET /api/campaigns?date=<day>`` lists across all pages for an account.

    Args:
        account_id: Account id, e.g. ``"acme-retail"`` or ``"acct-0042"``.
        day: The ``date`` query parameter, as a date or ``YYYY-MM-DD``.
        seed: The simulator's ``--seed``.
        campaign_count: The simulator's ``--campaign-count``.

    Returns:
        Campaigns ``campaign_1``..``campaign_<campaign_count>`` in page order,
        each a dict with exactly the contract's fields.
    """
    resolved = parse_day(day)
    return [campaign_record(seed, account_id, number, resolved) for number in range(1, campaign_count + 1)]
