from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from campaign_pipeline.ad_platform.classify import OutcomeKind, classify_exception, classify_response

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
JSON_HEADERS = CaseInsensitiveDict({"Content-Type": "application/json"})


def classify(status: int, body: object, headers: dict[str, str] | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return classify_response(status, CaseInsensitiveDict({**JSON_HEADERS, **(headers or {})}), raw, now=NOW)


def test_ok_carries_the_decoded_body() -> None:
    outcome = classify(200, {"data": [], "pagination": {}})
    assert outcome.kind is OutcomeKind.OK
    assert outcome.payload == {"data": [], "pagination": {}}
    assert outcome.status == 200


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_and_timeouts_are_retriable(status: int) -> None:
    outcome = classify(status, {"error": "Service temporarily unavailable", "message": "Retry later."})
    assert outcome.kind is OutcomeKind.RETRIABLE
    assert outcome.reason == f"HTTP {status} Service temporarily unavailable: Retry later"
    assert outcome.wait_seconds is None


def test_503_with_an_html_body_is_still_retriable() -> None:
    outcome = classify(503, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"})
    assert outcome.kind is OutcomeKind.RETRIABLE
    assert outcome.reason == "HTTP 503"


def test_503_with_retry_after_hints_the_wait() -> None:
    assert classify(503, {"error": "x"}, {"Retry-After": "4"}).wait_seconds == 4.0


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"Retry-After": "30"}, {"error": "Rate limit exceeded", "retry_after": 30}, 30.0),
        ({}, {"error": "Rate limit exceeded", "retry_after": 60}, 60.0),
        ({"Retry-After": "Fri, 27 Nov 2026 12:00:10 GMT"}, {"error": "Rate limit exceeded"}, 10.0),
        ({}, {"error": "Rate limit exceeded"}, None),
        ({"Retry-After": "2"}, b"Too Many Requests", 2.0),
    ],
)
def test_429_is_rate_limited_with_the_wait_asked_for(headers: dict[str, str], body: object, wait: float | None) -> None:
    outcome = classify(429, body, headers)
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.wait_seconds == wait


def test_401_token_expired_is_its_own_class() -> None:
    outcome = classify(401, {"error": "Token expired", "message": "Expired.", "expired_at": "2026-11-27T11:00:00.000Z"})
    assert outcome.kind is OutcomeKind.TOKEN_EXPIRED


@pytest.mark.parametrize("error", ["Invalid credentials", "Unauthorized"])
def test_other_401s_are_unauthorized(error: str) -> None:
    assert classify(401, {"error": error, "message": "No."}).kind is OutcomeKind.UNAUTHORIZED


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422, 501, 301])
def test_other_statuses_are_fatal_with_the_platform_message(status: int) -> None:
    outcome = classify(status, {"error": "Not found", "message": "Campaign 'x' does not exist."})
    assert outcome.kind is OutcomeKind.FATAL
    assert outcome.reason == f"HTTP {status} Not found: Campaign 'x' does not exist"


def test_200_with_a_non_json_body_is_fatal_and_does_not_quote_it() -> None:
    outcome = classify(200, b"<!DOCTYPE html><p>secret-token-abc</p>", {"Content-Type": "text/html; charset=utf-8"})
    assert outcome.kind is OutcomeKind.FATAL
    assert outcome.reason == "HTTP 200 with a body that is not JSON (text/html, 38 bytes)"
    assert "secret" not in outcome.reason


def test_200_with_an_empty_body_is_fatal() -> None:
    assert classify(200, b"").reason == "HTTP 200 with an empty body"


def test_200_with_an_error_body_is_fatal() -> None:
    outcome = classify(200, {"error": "Internal", "message": "Database down."})
    assert outcome.kind is OutcomeKind.FATAL
    assert outcome.reason == "HTTP 200 with an error body: Internal: Database down"


def test_200_with_a_json_array_is_fatal() -> None:
    assert classify(200, [1, 2]).reason == "HTTP 200 with a JSON list, not an object"


def test_long_platform_messages_are_cut() -> None:
    outcome = classify(400, {"error": "Bad request", "message": "x" * 1000})
    assert len(outcome.reason) < 230


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (
            requests.ReadTimeout("read timed out"),
            OutcomeKind.RETRIABLE,
            "no answer within the read timeout (the request hung)",
        ),
        (requests.ConnectTimeout("connect timed out"), OutcomeKind.RETRIABLE, "connect timeout"),
        (requests.ConnectionError("refused"), OutcomeKind.RETRIABLE, "connection failed (ConnectionError)"),
        (
            requests.exceptions.ChunkedEncodingError("cut"),
            OutcomeKind.RETRIABLE,
            "connection failed (ChunkedEncodingError)",
        ),
        (requests.exceptions.InvalidURL("bad"), OutcomeKind.FATAL, "the request could not be sent (InvalidURL)"),
    ],
)
def test_requests_that_got_no_answer(error: requests.RequestException, kind: OutcomeKind, reason: str) -> None:
    outcome = classify_exception(error)
    assert (outcome.kind, outcome.reason, outcome.status) == (kind, reason, None)


def test_an_answer_with_a_corrupt_compressed_body_is_retried() -> None:
    class CorruptGzip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"\x1f\x8b\x08\x00 this is not deflate data"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), CorruptGzip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(requests.RequestException) as raised:
            requests.get(f"http://127.0.0.1:{server.server_address[1]}/api/campaigns", timeout=5)
    finally:
        server.shutdown()

    outcome = classify_exception(raised.value)
    assert (outcome.kind, outcome.reason) == (
        OutcomeKind.RETRIABLE,
        "the answer's compressed body could not be decoded",
    )
