"""Small helpers shared by the simulator's tests."""

from __future__ import annotations

import time

import httpx

from mock_api.testing import MockApiServer


def bearer(token: str, client_id: str | None = None) -> dict[str, str]:
    """Headers of an ``/api/*`` request."""
    headers = {"Authorization": f"Bearer {token}"}
    if client_id is not None:
        headers["X-Client-ID"] = client_id
    return headers


def list_statuses(http: httpx.Client, token: str, count: int, **params: str | int) -> list[int]:
    """Send ``count`` list requests; return their statuses."""
    return [http.get("/api/campaigns", params=params, headers=bearer(token)).status_code for _ in range(count)]


def sleep_until(monotonic_deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches the deadline (the server shares this clock)."""
    time.sleep(max(0.0, monotonic_deadline - time.monotonic()))


def list_arrivals(api: MockApiServer) -> list[float]:
    """Return the monotonic arrival times of the logged list requests."""
    return [record["arrived_monotonic"] for record in api.requests() if record["endpoint"] == "list"]
