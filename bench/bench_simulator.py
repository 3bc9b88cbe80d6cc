"""How fast the simulator serves, and what hanging requests cost it.

Run with ``python -m bench.bench_simulator``. Two figures:

1. List throughput with faults off: keep-alive connections send
   ``GET /api/campaigns?page=1&limit=100&date=...`` as fast as the server
   answers, once with the same few account-days (cached pages) and once with a
   new day on every request (each page built from scratch, as a pipeline
   backfill sees it). The load generator is a minimal asyncio HTTP/1.1 client
   in its own process; both processes' CPU use is reported, so a reader can
   tell which side was saturated, and requests per server CPU-second give the
   capacity of one core even on a machine shared with other work.
2. Hanging requests: N connections each send a list request that hangs; the
   server's thread count and resident memory are read from ``/proc`` before,
   while all N hang, and after the clients give up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from mock_api.accounts import DEMO_ACCOUNT_IDS
from mock_api.testing import MockApiServer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FIRST_DAY = date(2024, 1, 1)
FRESH_DAYS = itertools.count(1)


@dataclass
class LoadResult:
    """Outcome of one load phase."""

    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)


def process_status(pid: int) -> dict[str, int]:
    """Return the thread count and resident memory (KiB) of process ``pid`` from ``/proc``."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS"):
                fields[name] = int(value.split()[0])
    return {"threads": fields["Threads"], "rss_kib": fields["VmRSS"]}


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def list_request(host: str, path: str, token: str) -> bytes:
    """Return the bytes of a keep-alive GET request."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response with a Content-Length body; return (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _load_worker(
    host: str, port: int, next_request: Callable[[], bytes], deadline: float, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(next_request())
            status, _ = await read_response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.failures += status != 200
    finally:
        writer.close()


async def _load(
    url: str, next_request: Callable[[], bytes], connections: int, duration_seconds: float
) -> LoadResult:
    address = urlsplit(url)
    result = LoadResult()
    deadline = time.perf_counter() + duration_seconds
    workers = [
        _load_worker(address.hostname or "127.0.0.1", address.port or 80, next_request, deadline, result)
        for _ in range(connections)
    ]
    await asyncio.gather(*workers)
    return result


def measure_list_rate(
    server: MockApiServer, tokens: dict[str, str], *, cold: bool, connections: int, duration_seconds: float
) -> dict[str, Any]:
    """Drive the list endpoint for ``duration_seconds``; return rate, latencies and CPU use."""
    host = urlsplit(server.url).netloc
    requests_made = 0
    accounts = list(tokens)
    cached = [
        list_request(host, f"/api/campaigns?page=1&limit=100&date={FIRST_DAY}", tokens[account])
        for account in accounts
    ]

    def next_request() -> bytes:
        nonlocal requests_made
        requests_made += 1
        account = accounts[requests_made % len(accounts)]
        if not cold:
            return cached[requests_made % len(cached)]
        day = FIRST_DAY + timedelta(days=next(FRESH_DAYS))
        return list_request(host, f"/api/campaigns?page=1&limit=100&date={day}", tokens[account])

    assert server.pid is not None
    server_cpu_at_start = process_cpu_seconds(server.pid)
    client_cpu_at_start = time.process_time()
    started = time.perf_counter()
    result = asyncio.run(_load(server.url, next_request, connections, duration_seconds))
    elapsed = time.perf_counter() - started
    server_cpu = process_cpu_seconds(server.pid) - server_cpu_at_start
    client_cpu = time.process_time() - client_cpu_at_start
    latencies = sorted(result.latencies)
    return {
        "pages": "new day per request (built from scratch)" if cold else "5 account-days (cached)",
        "requests": result.requests,
        "failures": result.failures,
        "requests_per_second": round(result.requests / elapsed),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 2),
        "latency_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        "server_cpu_percent": round(100 * server_cpu / elapsed),
        "requests_per_server_cpu_second": round(result.requests / server_cpu),
        "load_generator_cpu_percent": round(100 * client_cpu / elapsed),
    }


async def _hang_many(server: MockApiServer, token: str, count: int, pid: int) -> dict[str, Any]:
    address = urlsplit(server.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    request = list_request(address.netloc, "/api/campaigns?page=1&limit=100", token)
    before = process_status(pid)
    connections = [await asyncio.open_connection(host, port) for _ in range(count)]
    for _, writer in connections:
        writer.write(request)
    await asyncio.gather(*(writer.drain() for _, writer in connections))
    waited = time.perf_counter()
    while server.counters()["hangs"] < count and time.perf_counter() - waited < 30:
        await asyncio.sleep(0.05)
    hanging = server.counters()["hangs"]
    during = process_status(pid)
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in connections), return_exceptions=True)
    closed = time.perf_counter()
    while _client_closed(server) < count and time.perf_counter() - closed < 30:
        await asyncio.sleep(0.05)
    after = process_status(pid)
    return {
        "hanging_requests": hanging,
        "released_when_clients_left": _client_closed(server),
        "threads_before": before["threads"],
        "threads_while_hanging": during["threads"],
        "threads_after": after["threads"],
        "rss_mib_before": round(before["rss_kib"] / 1024, 1),
        "rss_mib_while_hanging": round(during["rss_kib"] / 1024, 1),
        "rss_kib_per_hanging_request": round((during["rss_kib"] - before["rss_kib"]) / max(hanging, 1), 1),
    }


def _client_closed(server: MockApiServer) -> int:
    counts = server.counters()["requests"]
    return sum(
        statuses.get("499", 0) for endpoints in counts.values() for statuses in endpoints.values()
    )


def measure_hangs(server: MockApiServer, count: int) -> dict[str, Any]:
    """Hold ``count`` hanging list requests open; return the server's threads and memory."""
    server.reset()
    server.set_faults({"list": {"error_rate": 0.0, "hang_rate": 1.0}, "hang_seconds": 120})
    assert server.pid is not None
    try:
        return asyncio.run(_hang_many(server, server.token(), count, server.pid))
    finally:
        server.set_faults({"list": {"hang_rate": 0.0}})


def _raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, needed))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(
    *,
    duration_seconds: float = 5.0,
    connections: int = 16,
    hanging_requests: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Start a ``fast`` simulator, measure it, stop it; return the figures.

    Args:
        duration_seconds: Length of each throughput phase.
        connections: Concurrent keep-alive connections of the load generator.
        hanging_requests: Concurrent hanging requests of the last phase.
        seed: Simulator seed.
    """
    _raise_open_file_limit(2 * hanging_requests + 256)
    with MockApiServer(profile="fast", seed=seed, request_log_size=1000) as server:
        tokens = {account: server.token(account) for account in DEMO_ACCOUNT_IDS}
        assert server.pid is not None
        idle = process_status(server.pid)
        figures: dict[str, Any] = {
            "cpu_count": os.cpu_count(),
            "server_idle": {"threads": idle["threads"], "rss_mib": round(idle["rss_kib"] / 1024, 1)},
        }
        for cold in (False, True):
            measure_list_rate(server, tokens, cold=cold, connections=connections, duration_seconds=0.5)
            phase = measure_list_rate(
                server, tokens, cold=cold, connections=connections, duration_seconds=duration_seconds
            )
            figures["list_cold" if cold else "list_cached"] = phase
        figures["hangs"] = measure_hangs(server, hanging_requests)
    return figures


def main() -> None:
    """Parse options, run the benchmark, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--duration-seconds", type=float, default=5.0, help="length of each throughput phase")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections of the load generator")
    parser.add_argument("--hanging-requests", type=int, default=1000, help="concurrent hanging requests")
    options = parser.parse_args()
    figures = run(
        duration_seconds=options.duration_seconds,
        connections=options.connections,
        hanging_requests=options.hanging_requests,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
