"""A small ordered-SQL migration runner that records what it applied in the database.

Migrations are the files ``migrations/NNNN_description.sql`` of this package,
applied in version order. Each runs in its own transaction together with the
row that records it in ``schema_migrations`` (version, checksum, applied_at),
so a failed migration leaves no trace and is tried again next time. Runners
in several processes take turns through an advisory lock, and a recorded
migration whose file has changed since stops the runner: history is never
rewritten silently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

# Arbitrary, but fixed: the key every migration runner of this project locks.
MIGRATION_LOCK_KEY = 0x63616D70_6D696772

_FILE_NAME = re.compile(r"(?P<version>(?P<number>\d{4})_[a-z0-9_]+)\.sql")


class MigrationError(RuntimeError):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    """One SQL file of the schema's history.

    Attributes:
        version: The file name without ``.sql``, e.g. ``"0001_initial_schema"``.
        sql: The statements, run as one transaction.
    """

    version: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, to notice an applied file that was edited afterwards."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Read the migration files of ``directory`` (this package's ``migrations`` by default), in order.

    Raises:
        MigrationError: A ``.sql`` file is not named ``NNNN_description.sql``, or
            two files share a number.
    """
    directory = directory or resources.files(__package__).joinpath("migrations")
    migrations: dict[str, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"Migration file {entry.name!r} is not named NNNN_description.sql.")
        number = match["number"]
        if number in migrations:
            raise MigrationError(
                f"Migration files {migrations[number].version}.sql and {entry.name} share the number {number}."
            )
        migrations[number] = Migration(match["version"], entry.read_text(encoding="utf-8"))
    return [migrations[number] for number in sorted(migrations)]


def pending_migrations(migrations: Sequence[Migration], applied: Mapping[str, str]) -> list[Migration]:
    """Return the migrations not yet applied, after checking the recorded history against them.

    Args:
        migrations: The known migrations, in order.
        applied: Checksum of every version recorded in the database.

    Raises:
        MigrationError: A recorded migration is unknown here, or its file changed.
    """
    known = {migration.version: migration for migration in migrations}
    for version, checksum in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"The database has migration {version} applied, which this code does not have; "
                "it was migrated by a newer version."
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"Migration {version} changed after it was applied (checksum {checksum[:12]} in the "
                f"database, {migration.checksum[:12]} on disk); add a new migration instead."
            )
    return [migration for migration in migrations if migration.version not in applied]


def apply_migrations(connection: psycopg.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply the pending ``migrations`` in order, each in its own transaction.

    Args:
        connection: An autocommit connection, used by this call alone.
        migrations: All known migrations, in order.

    Returns:
        The versions applied by this call; empty when the schema was up to date.

    Raises:
        MigrationError: The recorded history disagrees with ``migrations``.
        psycopg.Error: A migration failed; it and the later ones were not applied.
    """
    if not connection.autocommit:
        raise ValueError("apply_migrations needs an autocommit connection.")
    connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    text PRIMARY KEY,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = connection.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        applied_now = []
        for migration in pending_migrations(migrations, dict(rows)):
            with connection.transaction():
                connection.execute(migration.sql)
                connection.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                    (migration.version, migration.checksum),
                )
            applied_now.append(migration.version)
        return applied_now
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
