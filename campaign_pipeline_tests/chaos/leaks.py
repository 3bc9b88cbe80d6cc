"""Search everything a run left behind for a secret: files, process output, both databases."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg
from psycopg import sql


@dataclass
class LeakReport:
    """What a search found.

    Attributes:
        secrets: How many distinct secret strings were searched for (every encoding counted once).
        places: Files, process outputs and database tables searched.
        bytes_searched: Bytes searched, after decompressing what was compressed.
        found: ``(secret label, place)`` for each secret found somewhere.
    """

    secrets: int = 0
    places: int = 0
    bytes_searched: int = 0
    found: list[tuple[str, str]] = field(default_factory=list)


def secret_strings(credentials: Mapping[str, Mapping[str, str]], tokens: Iterable[str]) -> dict[str, str]:
    """Return every secret by a label that does not reveal it: passwords, Basic values, tokens.

    Each is searched as it is and in the encodings a leak would take: JSON
    string escaping, URL percent-encoding.
    """
    raw: dict[str, str] = {}
    for account_id, login in credentials.items():
        pair = f"{login['email']}:{login['password']}".encode()
        raw[f"password of {account_id}"] = login["password"]
        raw[f"Basic value of {account_id}"] = base64.b64encode(pair).decode()
    for number, token in enumerate(tokens, 1):
        raw[f"token #{number}"] = token
    variants: dict[str, str] = {}
    for label, secret in raw.items():
        for encoded in {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}:
            variants[encoded] = label
    return variants


def _with_decompressed(data: bytes) -> bytes:
    """Return ``data``, followed by its inflated form when it is zlib data (Dagster's snapshots)."""
    try:
        return data + b"\n" + zlib.decompress(data)
    except zlib.error:
        return data


def _file_text(path: Path) -> bytes:
    if path.suffix == ".parquet":
        # Parquet pages are compressed: search the decoded values, and the raw file too.
        return path.read_bytes() + pd.read_parquet(path).to_csv().encode()
    return _with_decompressed(path.read_bytes())


def _database_tables(url: str) -> Iterator[tuple[str, bytes]]:
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            name = sql.Identifier(schema, table)
            chunks = [row[0].encode() for row in connection.execute(sql.SQL("SELECT t::text FROM {} t").format(name))]
            for column, in connection.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s AND data_type = 'bytea'",
                (schema, table),
            ).fetchall():
                query = sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), name)
                for (value,) in connection.execute(query):
                    if value is not None:
                        chunks.append(_with_decompressed(bytes(value)))
            yield f"{schema}.{table} in {connection.info.dbname}", b"\n".join(chunks)


def search(
    secrets: Mapping[str, str],
    *,
    directories: Iterable[Path] = (),
    files: Iterable[Path] = (),
    outputs: Mapping[str, str | bytes] | None = None,
    database_urls: Iterable[str] = (),
) -> LeakReport:
    """Search every file under ``directories``, ``files``, process ``outputs`` and every table of the databases."""
    report = LeakReport(secrets=len(set(secrets.values())))
    needles = [(secret.encode(), label) for secret, label in secrets.items()]

    def look(place: str, data: bytes) -> None:
        report.places += 1
        report.bytes_searched += len(data)
        for needle, label in needles:
            if needle in data:
                report.found.append((label, place))

    all_files = [path for directory in directories for path in sorted(directory.rglob("*")) if path.is_file()]
    for path in [*all_files, *files]:
        if path.is_file():
            look(str(path), _file_text(path))
    for place, text in (outputs or {}).items():
        look(place, text.encode() if isinstance(text, str) else text)
    for url in database_urls:
        for place, data in _database_tables(url):
            look(place, data)
    return report
