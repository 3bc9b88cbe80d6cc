"""Command line of the simulator: ``python -m mock_api``.

Every option also reads an environment variable, ``MOCK_API_`` followed by the
option's name in capitals (``--list-error-rate`` -> ``MOCK_API_LIST_ERROR_RATE``);
a flag on the command line wins. Fault options left unset take the profile's
value. The first line on stdout is the base URL, printed once the socket
serves, which is how ``--port 0`` tells the caller the port it got.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, get_args

import uvicorn
from pydantic import ValidationError

from mock_api.app import create_app
from mock_api.config import ENDPOINTS, PROFILES, FaultSettings, ProfileName, SimulatorConfig
from mock_api.simulator import Simulator

ENV_PREFIX = "MOCK_API_"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
GRACEFUL_SHUTDOWN_SECONDS = 1


@dataclass(frozen=True)
class ServerOptions:
    """Where to listen and what to simulate.

    Attributes:
        host: Interface to bind.
        port: Port to bind; 0 lets the OS pick one.
        config: The simulator's configuration.
    """

    host: str
    port: int
    config: SimulatorConfig


def _flag_of(path: Sequence[str | int]) -> str:
    return "--" + "-".join(str(part) for part in path).replace("_", "-")


def _env_of(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS | FALSE_WORDS:
        return lowered in TRUE_WORDS
    raise ValueError(f"expected one of {sorted(TRUE_WORDS | FALSE_WORDS)}")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; every option defaults to ``None`` so that env and profile can fill it."""
    parser = argparse.ArgumentParser(
        prog="python -m mock_api",
        description="Ad platform simulator. Each option can also be set by the environment variable "
        "MOCK_API_<OPTION> (e.g. MOCK_API_LIST_ERROR_RATE); fault options default to the profile's value.",
    )

    def option(flag: str, kind: Callable[[str], Any], text: str, **extra: Any) -> None:
        dest = flag.removeprefix("--").replace("-", "_")
        parser.add_argument(flag, type=kind, default=None, help=f"{text} [env {_env_of(dest)}]", **extra)

    def switch(flag: str, text: str) -> None:
        dest = flag.removeprefix("--").replace("-", "_")
        parser.add_argument(
            flag, action=argparse.BooleanOptionalAction, default=None, help=f"{text} [env {_env_of(dest)}]"
        )

    option("--host", str, "Interface to bind (default 127.0.0.1).")
    option("--port", int, "Port to bind; 0 picks a free one (default 8000).")
    option("--profile", str, "Fault profile (default original).", choices=get_args(ProfileName))
    option("--seed", int, "Seed of every data value and fault draw (default 0).")
    switch("--admin", "Serve the operator endpoints under /__admin/ (default off).")
    switch("--upstream-quirks", "Reproduce the upstream simulator's quirks (default off).")
    option("--account-count", int, "Generated accounts acct-0001.. added to the 5 demo accounts (default 0).")
    option("--campaign-count", int, "Campaigns per account (default 100).")
    option("--max-page-size", int, "Largest accepted limit (default 100).")
    option("--request-log-size", int, "Requests kept for /__admin/requests (default 100000).")
    option("--rate-limit", int, "Requests admitted per account per window.")
    option("--rate-window-seconds", float, "Length of the sliding window.")
    option("--token-lifetime-seconds", float, "Lifetime of a token.")
    option("--sync-latency-seconds", float, "Time a successful sync takes.")
    option("--hang-seconds", float, "How long a hanging request waits before answering 503.")
    for endpoint in ENDPOINTS:
        option(f"--{endpoint}-error-rate", float, f"Share of admitted {endpoint} requests answered 503.")
        option(f"--{endpoint}-hang-rate", float, f"Share of admitted {endpoint} requests that hang.")
        option(f"--{endpoint}-extra-latency-seconds", float, f"Delay added to every admitted {endpoint} request.")
    return parser


def _fill_from_environment(
    parser: argparse.ArgumentParser, values: dict[str, Any], environ: Mapping[str, str]
) -> None:
    for action in parser._actions:
        if action.dest == "help" or values.get(action.dest) is not None:
            continue
        text = environ.get(_env_of(action.dest))
        if text is None:
            continue
        try:
            kind: Callable[[str], Any] = _boolean if action.type is None else action.type  # type: ignore[assignment]
            value = kind(text)
        except ValueError as exc:
            parser.error(f"{_env_of(action.dest)}={text!r} is invalid: {exc}.")
        if action.choices is not None and value not in action.choices:
            parser.error(f"{_env_of(action.dest)} must be one of {', '.join(action.choices)}.")
        values[action.dest] = value


def parse_options(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerOptions:
    """Parse the command line and ``MOCK_API_*`` variables; exit with a one-line error on a bad value."""
    parser = build_parser()
    values = vars(parser.parse_args(argv))
    _fill_from_environment(parser, values, os.environ if environ is None else environ)
    profile: ProfileName = values["profile"] or "original"
    faults: dict[str, Any] = PROFILES[profile].model_dump()
    for name in ("rate_limit", "rate_window_seconds", "token_lifetime_seconds", "sync_latency_seconds", "hang_seconds"):
        if values[name] is not None:
            faults[name] = values[name]
    for endpoint in ENDPOINTS:
        for knob in ("error_rate", "hang_rate", "extra_latency_seconds"):
            if values[f"{endpoint}_{knob}"] is not None:
                faults[endpoint][knob] = values[f"{endpoint}_{knob}"]
    try:
        config = SimulatorConfig(
            faults=FaultSettings.model_validate(faults),
            seed=_or(values["seed"], 0),
            campaign_count=_or(values["campaign_count"], 100),
            account_count=_or(values["account_count"], 0),
            max_page_size=_or(values["max_page_size"], 100),
            upstream_quirks=bool(values["upstream_quirks"]),
            admin=bool(values["admin"]),
            request_log_size=_or(values["request_log_size"], 100_000),
            profile=profile,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        parser.error(f"{_flag_of(error['loc'])}: {error['msg']}.")
    except ValueError as exc:
        parser.error(str(exc))
    port = _or(values["port"], 8000)
    if not 0 <= port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {port}.")
    return ServerOptions(host=values["host"] or "127.0.0.1", port=port, config=config)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def base_url(host: str, port: int) -> str:
    """Return ``http://host:port``, bracketing IPv6 addresses."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind one listening-ready TCP socket, so that port 0 yields a single known port."""
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints its base URL on stdout as soon as it accepts connections.

    Attributes:
        url: The base URL printed.
        stopped_by: The first signal that asked the server to stop, ``None`` until one does.
    """

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url
        self.stopped_by: signal.Signals | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(sig)
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self.url, flush=True)


def serve(options: ServerOptions) -> signal.Signals | None:
    """Serve the simulator until SIGINT or SIGTERM; hanging requests are cut after a short grace.

    After the graceful shutdown uvicorn raises the stop signal again, which normally ends
    the process right there; if the process is still alive, the signal is returned.
    """
    sock = bind_socket(options.host, options.port)
    url = base_url(options.host, sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(Simulator(options.config)),
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = AnnouncingServer(config, url)
    server.run(sockets=[sock])
    return server.stopped_by


def end_by_signal(sig: signal.Signals) -> int:
    """End the process by ``sig``'s default action, so that the parent's wait status names it.

    Only reached when uvicorn's own re-raise left the process running: the signal was
    ignored when the process started (a shell's background job ignores SIGINT), uvicorn
    handled it all the same and then restored "ignore"; CI also saw exit status 0 after
    SIGTERM twice, cause not found. Says on stderr what the signal's handler and mask were,
    then resets both and raises the signal again; returns ``128 + sig``, the shell's
    convention, should even that not end the process.
    """
    blocked = sig in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    print(
        f"mock_api: still running after uvicorn re-raised {sig.name} "
        f"(handler {signal.getsignal(sig)!r}, blocked {blocked}); raising it again",
        file=sys.stderr,
        flush=True,
    )
    signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    signal.raise_signal(sig)
    return 128 + sig


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (a stop signal ends the process by it)."""
    stopped_by = serve(parse_options(argv))
    return 0 if stopped_by is None else end_by_signal(stopped_by)


if __name__ == "__main__":
    sys.exit(main())
