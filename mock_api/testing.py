"""Run the simulator as a real server process from tests: :class:`MockApiServer`.

Typical pytest use: start one server per session, reset it between tests::

    @pytest.fixture(scope="session")
    def mock_api():
        with MockApiServer(profile="fast", seed=7) as server:
            yield server

    @pytest.fixture
    def api(mock_api):
        mock_api.reset()
        return mock_api
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from mock_api.accounts import account_by_id

OptionValue = str | int | float | bool | None
# The server is local: never route operator calls through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_RUNNING: set[MockApiServer] = set()


@atexit.register
def _kill_forgotten_servers() -> None:
    for server in list(_RUNNING):
        server.kill()


class MockApiServerError(RuntimeError):
    """The simulator process did not start, or an operator call failed."""


def option_arguments(options: Mapping[str, OptionValue]) -> list[str]:
    """Turn keyword options into CLI flags: ``rate_limit=5`` -> ``--rate-limit 5``.

    ``True`` gives the bare flag, ``False`` its ``--no-`` form, ``None`` nothing.
    """
    arguments: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            arguments.append(flag if value else f"--no-{flag[2:]}")
        else:
            arguments += [flag, str(value)]
    return arguments


class MockApiServer:
    """A ``python -m mock_api --admin`` child process on a free port.

    Args:
        profile: ``original``, ``fast`` or ``chaos``.
        seed: Seed of data and faults.
        upstream_quirks: Reproduce the upstream simulator's quirks.
        account_count: Generated accounts ``acct-0001``.. on top of the demo accounts.
        extra_args: More CLI arguments, verbatim.
        log_path: Where the server's stdout and stderr go; a temporary file when absent.
        host: Interface to bind.
        startup_timeout_seconds: How long :meth:`start` waits for ``/health``.
        env: Environment of the process; the current one when absent.
        **options: Any other CLI option by its name with underscores, e.g.
            ``rate_limit=5, rate_window_seconds=0.5, list_error_rate=0.2``.
    """

    def __init__(
        self,
        *,
        profile: str = "fast",
        seed: int = 0,
        upstream_quirks: bool = False,
        account_count: int = 0,
        extra_args: Sequence[str] = (),
        log_path: Path | str | None = None,
        host: str = "127.0.0.1",
        startup_timeout_seconds: float = 30.0,
        env: Mapping[str, str] | None = None,
        **options: OptionValue,
    ) -> None:
        self.arguments = [
            "--profile",
            profile,
            "--seed",
            str(seed),
            "--account-count",
            str(account_count),
            "--admin",
            *(["--upstream-quirks"] if upstream_quirks else []),
            *option_arguments(options),
            *extra_args,
        ]
        self.host = host
        self.startup_timeout_seconds = startup_timeout_seconds
        self.env = dict(os.environ if env is None else env)
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="mock_api-", suffix=".log")
            os.close(handle)
            log_path = name
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``; stable across :meth:`restart`."""
        if self._url is None:
            raise MockApiServerError("The simulator has not been started.")
        return self._url

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self) -> MockApiServer:
        """Start the server (on its previous port after a stop) and wait until ``/health`` answers."""
        if self.pid is not None:
            return self
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [sys.executable, "-m", "mock_api", "--host", self.host, "--port", str(self._port), *self.arguments]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        _RUNNING.add(self)
        deadline = time.monotonic() + self.startup_timeout_seconds
        self._url = self._wait_for_url(offset, deadline)
        self._port = int(self._url.rsplit(":", 1)[1])
        self._wait_for_health(deadline)
        return self

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop with SIGTERM (SIGKILL after ``timeout_seconds``); the port is kept for :meth:`start`."""
        _RUNNING.discard(self)
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Stop at once with SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _RUNNING.discard(self)

    def restart(self) -> MockApiServer:
        """Stop and start again on the same port; all state (tokens, windows, counters) is lost."""
        self.stop()
        return self.start()

    def reset(self) -> None:
        """Forget windows, tokens, counters, fault attempts and the request log."""
        self._call("POST", "/__admin/reset")

    def counters(self) -> dict[str, Any]:
        """Return the request counters (see ``GET /__admin/counters``)."""
        counters: dict[str, Any] = self._call("GET", "/__admin/counters")
        return counters

    def requests(self) -> list[dict[str, Any]]:
        """Return the finished requests in the order they arrived."""
        log: list[dict[str, Any]] = self._call("GET", "/__admin/requests")
        return log

    def tokens(self) -> list[str]:
        """Return every token issued since the last reset."""
        tokens: list[str] = self._call("GET", "/__admin/tokens")
        return tokens

    def faults(self) -> dict[str, Any]:
        """Return the fault settings in force."""
        faults: dict[str, Any] = self._call("GET", "/__admin/faults")
        return faults

    def set_faults(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change fault settings now, e.g. ``{"list": {"error_rate": 1.0}, "rate_limit": 5}``; return them all."""
        faults: dict[str, Any] = self._call("PUT", "/__admin/faults", patch)
        return faults

    def set_responses(self, rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Script bad answers of the list endpoint (see ``PUT /__admin/responses``); ``[]`` removes them."""
        script: dict[str, Any] = self._call("PUT", "/__admin/responses", {"list": list(rules)})
        return script

    def responses(self) -> dict[str, Any]:
        """Return the scripted answers with the requests each has caught."""
        script: dict[str, Any] = self._call("GET", "/__admin/responses")
        return script

    def token(self, account_id: str = "acme-retail") -> str:
        """Return a fresh access token of a demo or generated account."""
        account = account_by_id(account_id)
        basic = base64.b64encode(f"{account.email}:{account.password}".encode()).decode()
        body: dict[str, Any] = self._call("POST", "/auth/token", headers={"Authorization": f"Basic {basic}"})
        token: str = body["access_token"]
        return token

    def __enter__(self) -> MockApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_for_url(self, offset: int, deadline: float) -> str:
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                first_line = log.readline()
            if first_line.endswith(b"\n") and first_line.startswith(b"http"):
                return first_line.decode().strip()
            if self.process is not None and self.process.poll() is not None:
                raise MockApiServerError(
                    f"The simulator exited with status {self.process.returncode}; see {self.log_path}."
                )
            time.sleep(0.02)
        self.kill()
        raise MockApiServerError(f"The simulator printed no URL in time; see {self.log_path}.")

    def _wait_for_health(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                self._call("GET", "/health")
                return
            except (OSError, MockApiServerError):
                time.sleep(0.02)
        self.kill()
        raise MockApiServerError(f"The simulator at {self.url} did not answer /health; see {self.log_path}.")

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _DIRECT.open(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise MockApiServerError(f"{method} {path} answered {exc.code}: {detail}") from None
