"""One classification of every answer (or failure to answer) of the ad platform.

The client decides what to do from the :class:`Outcome` alone: return the
payload, retry after a backoff, wait as the platform asked, refresh the token,
or fail with the outcome's reason.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from campaign_pipeline.ad_platform.backoff import parse_retry_after

MAX_REASON_CHARS = 200
TOKEN_EXPIRED_ERROR = "Token expired"
NON_RETRIABLE_SERVER_STATUSES = frozenset({501, 505})
RETRIABLE_CLIENT_STATUSES = frozenset({408, 425})


class OutcomeKind(enum.Enum):
    """The classes of answers, each with its own handling and retry budget."""

    OK = "ok"
    RETRIABLE = "retriable"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"
    UNAUTHORIZED = "unauthorized"
    FATAL = "fatal"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to.

    Attributes:
        kind: The class of the answer.
        reason: Short description for logs and errors, e.g. ``HTTP 503 Service temporarily unavailable``.
        status: The HTTP status, or ``None`` when no answer arrived.
        wait_seconds: The wait the platform asked for (``Retry-After`` or ``retry_after``), if any.
        payload: The decoded JSON body of an ``OK`` answer.
    """

    kind: OutcomeKind
    reason: str
    status: int | None = None
    wait_seconds: float | None = None
    payload: Any = None


def classify_response(status: int, headers: Mapping[str, str], body: bytes, *, now: datetime) -> Outcome:
    """Classify an HTTP answer.

    Args:
        status: HTTP status code.
        headers: Response headers (case-insensitive mapping, as ``requests`` gives).
        body: Raw body.
        now: Current time, timezone-aware, to read an HTTP-date ``Retry-After``.
    """
    document, decode_problem = _decode_json(body, headers)
    detail = _error_detail(document)
    described = f"HTTP {status}" + (f" {detail}" if detail else "")
    if 200 <= status < 300:
        return _classify_success(status, document, decode_problem)
    if status == 429:
        wait = parse_retry_after(headers.get("Retry-After"), document, now)
        return Outcome(OutcomeKind.RATE_LIMITED, described, status, wait_seconds=wait)
    if status == 401:
        expired = isinstance(document, Mapping) and document.get("error") == TOKEN_EXPIRED_ERROR
        kind = OutcomeKind.TOKEN_EXPIRED if expired else OutcomeKind.UNAUTHORIZED
        return Outcome(kind, described, status)
    if _is_retriable_status(status):
        wait = parse_retry_after(headers.get("Retry-After"), None, now)
        return Outcome(OutcomeKind.RETRIABLE, described, status, wait_seconds=wait)
    return Outcome(OutcomeKind.FATAL, described, status)


def classify_exception(error: requests.RequestException) -> Outcome:
    """Classify a request that got no complete answer (the ``requests`` exception it raised)."""
    if isinstance(error, requests.ConnectTimeout):
        return Outcome(OutcomeKind.RETRIABLE, "connect timeout")
    if isinstance(error, requests.ReadTimeout):
        return Outcome(OutcomeKind.RETRIABLE, "no answer within the read timeout (the request hung)")
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return Outcome(OutcomeKind.RETRIABLE, f"connection failed ({type(error).__name__})")
    if isinstance(error, requests.exceptions.ContentDecodingError):
        # Sent and answered, but the compressed body is corrupt: a proxy's or a cut connection's doing.
        return Outcome(OutcomeKind.RETRIABLE, "the answer's compressed body could not be decoded")
    return Outcome(OutcomeKind.FATAL, f"the request could not be sent ({type(error).__name__})")


def _classify_success(status: int, document: Any, decode_problem: str | None) -> Outcome:
    if decode_problem is not None:
        return Outcome(OutcomeKind.FATAL, f"HTTP {status} with {decode_problem}", status)
    if not isinstance(document, dict):
        return Outcome(OutcomeKind.FATAL, f"HTTP {status} with a JSON {type(document).__name__}, not an object", status)
    if "error" in document:
        return Outcome(OutcomeKind.FATAL, f"HTTP {status} with an error body: {_error_detail(document)}", status)
    return Outcome(OutcomeKind.OK, f"HTTP {status}", status, payload=document)


def _is_retriable_status(status: int) -> bool:
    if status >= 500:
        return status not in NON_RETRIABLE_SERVER_STATUSES
    return status in RETRIABLE_CLIENT_STATUSES


def _decode_json(body: bytes, headers: Mapping[str, str]) -> tuple[Any, str | None]:
    """Return the decoded body and ``None``, or ``None`` and what is wrong with it.

    The description never quotes the body: a broken token answer could hold a token.
    """
    content_type = headers.get("Content-Type", "no content type").split(";")[0].strip()
    if not body.strip():
        return None, "an empty body"
    try:
        return json.loads(body), None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, f"a body that is not JSON ({content_type}, {len(body)} bytes)"


def _error_detail(document: Any) -> str:
    if not isinstance(document, Mapping):
        return ""
    parts = [
        str(document[key]).strip().rstrip(".")
        for key in ("error", "message")
        if isinstance(document.get(key), (str, int, float))
    ]
    return ": ".join(parts)[:MAX_REASON_CHARS]
