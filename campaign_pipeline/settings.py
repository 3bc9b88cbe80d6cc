"""Every environment setting of campaign_pipeline, read in one place.

Settings are read when a command starts or when Dagster loads the code
location, never at import. A bad value raises :class:`SettingsError` whose
message is one sentence naming the variable and what is wrong with it.

Secrets (the account credentials) are not read here: they reach the Dagster
resources only as ``dagster.EnvVar`` so that the UI never shows them.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote

PREFIX = "CAMPAIGN_PIPELINE_"

HOME = PREFIX + "HOME"
WAREHOUSE_URL = PREFIX + "WAREHOUSE_URL"
DAGSTER_STORAGE_URL = PREFIX + "DAGSTER_STORAGE_URL"
API_URL = PREFIX + "API_URL"
CREDENTIALS = PREFIX + "CREDENTIALS"
ACCOUNTS_FILE = PREFIX + "ACCOUNTS_FILE"
RATE_LIMIT = PREFIX + "RATE_LIMIT"
RATE_WINDOW_SECONDS = PREFIX + "RATE_WINDOW_SECONDS"
SYNC_WORKERS = PREFIX + "SYNC_WORKERS"
# Default sync workers follow the rate limit up to this many threads.
MAX_DEFAULT_SYNC_WORKERS = 64
READ_TIMEOUT_SECONDS = PREFIX + "READ_TIMEOUT_SECONDS"
# The API client's call deadline: one request waiting longer could never finish in time.
MAX_READ_TIMEOUT_SECONDS = 900.0
HANG_DETECTION_MULTIPLIER = PREFIX + "HANG_DETECTION_MULTIPLIER"
TRANSIENT_RETRIES = PREFIX + "TRANSIENT_RETRIES"
PARTITION_DEADLINE_SECONDS = PREFIX + "PARTITION_DEADLINE_SECONDS"
STEP_RETRIES = PREFIX + "STEP_RETRIES"
STEP_RETRY_DELAY_SECONDS = PREFIX + "STEP_RETRY_DELAY_SECONDS"
PARTITION_START_DATE = PREFIX + "PARTITION_START_DATE"
SCHEDULE_CRON = PREFIX + "SCHEDULE_CRON"
LOOKBACK_DAYS = PREFIX + "LOOKBACK_DAYS"
# Larger than any count a setting needs.
MAX_WHOLE_NUMBER = 1_000_000_000
# A year: every tick requests (1 + lookback) partitions per account; backfills are for more.
MAX_LOOKBACK_DAYS = 365
ALERT_WEBHOOK_URL = PREFIX + "ALERT_WEBHOOK_URL"
SIMULATOR_PROFILE = PREFIX + "SIMULATOR_PROFILE"

SIMULATOR_PROFILES = ("demo", "fast", "original", "chaos")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Non-secret settings, with the defaults documented in the README."""

    home: Path
    warehouse_url: str | None
    dagster_storage_url: str | None
    api_url: str | None
    accounts_file: Path
    rate_limit: int
    rate_window_seconds: float
    sync_workers: int
    read_timeout_seconds: float
    hang_detection_multiplier: float | None
    transient_retries: int
    partition_deadline_seconds: float
    step_retries: int
    step_retry_delay_seconds: float
    partition_start_date: date
    schedule_cron: str
    lookback_days: int
    alert_webhook_url: str | None
    simulator_profile: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(_text(env, HOME) or Path.cwd() / ".campaign_pipeline").resolve()
        accounts_file = Path(_text(env, ACCOUNTS_FILE) or Path.cwd() / "accounts.toml").resolve()
        rate_limit = _positive_int(env, RATE_LIMIT, 10)
        return cls(
            home=home,
            warehouse_url=_postgres_url(env, WAREHOUSE_URL),
            dagster_storage_url=_postgres_url(env, DAGSTER_STORAGE_URL),
            api_url=_http_url(env, API_URL),
            accounts_file=accounts_file,
            rate_limit=rate_limit,
            rate_window_seconds=_positive_float(env, RATE_WINDOW_SECONDS, 60.0),
            # A window's worth of slow syncs in flight at once, so that no window waits on workers.
            sync_workers=_positive_int(env, SYNC_WORKERS, min(rate_limit, MAX_DEFAULT_SYNC_WORKERS)),
            read_timeout_seconds=_positive_float(env, READ_TIMEOUT_SECONDS, 30.0, maximum=MAX_READ_TIMEOUT_SECONDS),
            hang_detection_multiplier=_hang_detection_multiplier(env, HANG_DETECTION_MULTIPLIER, 1.5),
            transient_retries=_non_negative_int(env, TRANSIENT_RETRIES, 8),
            partition_deadline_seconds=_positive_float(env, PARTITION_DEADLINE_SECONDS, 3600.0),
            step_retries=_non_negative_int(env, STEP_RETRIES, 2),
            step_retry_delay_seconds=_positive_float(env, STEP_RETRY_DELAY_SECONDS, 30.0),
            partition_start_date=_date(env, PARTITION_START_DATE, date(2026, 1, 1)),
            schedule_cron=_text(env, SCHEDULE_CRON) or "15 2 * * *",
            lookback_days=_non_negative_int(env, LOOKBACK_DAYS, 0, maximum=MAX_LOOKBACK_DAYS),
            alert_webhook_url=_secret_http_url(env, ALERT_WEBHOOK_URL),
            simulator_profile=_choice(env, SIMULATOR_PROFILE, SIMULATOR_PROFILES),
        )


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _non_negative_int(env, name, default)
    if value == 0:
        raise SettingsError(f"{name} must be a positive whole number, not 0.")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int, *, maximum: int = MAX_WHOLE_NUMBER) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw):
        raise SettingsError(f"{name} must be a whole number, not {raw!r}.")
    # Compared as text first: int() refuses numbers of more than 4,300 digits.
    if len(raw.lstrip("0")) > len(str(maximum)) or int(raw) > maximum:
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        raise SettingsError(f"{name} must be at most {maximum}, not {shown}.")
    return int(raw)


def _positive_float(env: Mapping[str, str], name: str, default: float, *, maximum: float = math.inf) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}.") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number of seconds, not {raw!r}.")
    if not value > 0:
        raise SettingsError(f"{name} must be greater than 0, not {raw!r}.")
    if value > maximum:
        raise SettingsError(f"{name} must be at most {maximum:g}, not {raw!r}.")
    return value


def _hang_detection_multiplier(env: Mapping[str, str], name: str, default: float) -> float | None:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() == "off":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 1):
        raise SettingsError(f"{name} must be a number greater than 1, or off, not {raw!r}.")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = _text(env, name)
    if raw is None:
        return choices[0]
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}.")
    return raw


def _date(env: Mapping[str, str], name: str, default: date) -> date:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a date as YYYY-MM-DD, not {raw!r}.") from None


_HTTP_URL = re.compile(r"https?://[^/\s]+")


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    if not _HTTP_URL.match(raw):
        raise SettingsError(f"{name} must be an http:// or https:// URL, not {redact_url(raw)!r}.")
    scheme, _, rest = raw.partition("://")
    if "@" in rest:
        # Anything before the last "@" may be a password, escaped or not: none of it is shown.
        raise SettingsError(
            f"{name} must not carry a user or password (user:password@host), "
            f"not {scheme + '://***@' + rest.rpartition('@')[2]!r}."
        )
    return raw.rstrip("/")


def _secret_http_url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) URL that is a secret as a whole (a webhook's path is often its token): never shown."""
    raw = _text(env, name)
    if raw is not None and not _HTTP_URL.match(raw):
        raise SettingsError(f"{name} must be an http:// or https:// URL (its value is a secret, so not shown).")
    return raw


def _postgres_url(env: Mapping[str, str], name: str) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    if not _POSTGRES_SCHEME.match(raw):
        raise SettingsError(
            f"{name} must be a PostgreSQL URL such as postgresql://user:password@host:5432/dbname, "
            f"not {redact_url(raw)!r}."
        )
    problem = postgres_url_problem(libpq_url(raw))
    if problem is not None:
        raise SettingsError(f"{name} is not a URL libpq can read ({redact_url(raw)}): {problem}.")
    return raw


# SQLAlchemy's spellings (postgresql+psycopg2://) are taken too; libpq reads only the plain one.
_POSTGRES_SCHEME = re.compile(r"^postgres(ql)?(\+psycopg2?)?://")


def libpq_url(url: str) -> str:
    """Return ``url`` with a plain ``postgresql://`` scheme, as libpq and psycopg 3 want it."""
    return _POSTGRES_SCHEME.sub("postgresql://", url)


def redact_url(url: str) -> str:
    """Return ``url`` with its passwords replaced by ``***``, safe to print.

    A password can be given as ``user:password@`` or as a ``password=`` (or
    ``sslpassword=``) query parameter, whose name libpq also reads
    percent-encoded. The first is taken to run to the URL's last ``@``, so that one
    with an unescaped ``/``, ``?`` or ``@`` is hidden whole: when in doubt, more
    is hidden, never less.
    """
    for start, end in reversed(_password_spans(url)):
        url = url[:start] + "***" + url[end:]
    return url


def redact_message(message: str, url: str) -> str:
    """Return ``message``, a driver's error about ``url``, with neither the URL's password nor any piece of it.

    libpq quotes the part of a URL it cannot parse: the whole URL, or one
    token of it such as the password. Each is replaced by its redacted form;
    a password also where it stands unquoted, if at least 4 characters long
    (a shorter one would blank out letters of ordinary words).
    """
    message = message.replace(url, redact_url(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        message = message.replace(f'"{secret}"', '"***"')
        if len(secret) >= 4:
            message = message.replace(secret, "***")
    return message


def postgres_url_problem(url: str) -> str | None:
    """Return why libpq cannot parse ``url`` (redacted, safe to print), or ``None`` if it can."""
    # Imported here: every command reads the settings, few of them need the driver.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except psycopg.Error as error:
        return redact_message(str(error).strip() or type(error).__name__, url)
    return None


def _passwords(url: str) -> set[str]:
    raw = {url[start:end] for start, end in _password_spans(url) if end > start}
    return raw | {unquote(secret) for secret in raw}


_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def _password_spans(url: str) -> list[tuple[int, int]]:
    """Where in ``url`` passwords stand, as sorted ``(start, end)`` ranges that do not overlap."""
    # libpq percent-decodes a parameter's name too (pass%77ord is password).
    spans = [
        match.span(2)
        for match in re.finditer(r"[?&]([^=&#]*)=([^&#]*)", url)
        if unquote(match.group(1)).lower() in _SECRET_PARAMETERS
    ]
    authority = url.find("://") + 3
    last_at = url.rfind("@")
    colon = url.find(":", authority)
    if authority >= 3 and authority <= colon < last_at:
        spans.append((colon + 1, last_at))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore what was there (not thread-safe)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
