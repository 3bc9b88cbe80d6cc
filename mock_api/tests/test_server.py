from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from mock_api.config import PROFILES, EndpointFaults
from mock_api.server import build_parser, parse_options
from mock_api.testing import MockApiServer, option_arguments
from mock_api.tests.helpers import bearer


def test_defaults_are_the_original_profile_on_localhost() -> None:
    options = parse_options([], environ={})

    assert (options.host, options.port) == ("127.0.0.1", 8000)
    assert options.config.faults == PROFILES["original"]
    assert (options.config.seed, options.config.campaign_count, options.config.max_page_size) == (0, 100, 100)
    assert not options.config.admin and not options.config.upstream_quirks


def test_flags_override_the_profile() -> None:
    options = parse_options(
        ["--profile", "chaos", "--list-error-rate", "0.5", "--rate-limit", "3", "--sync-extra-latency-seconds", "1"],
        environ={},
    )

    faults = options.config.faults
    assert faults.list == EndpointFaults(error_rate=0.5, hang_rate=0.05, extra_latency_seconds=0.05)
    assert faults.sync.extra_latency_seconds == 1.0
    assert faults.rate_limit == 3
    assert faults.token_lifetime_seconds == PROFILES["chaos"].token_lifetime_seconds


def test_environment_fills_options_and_flags_win() -> None:
    environ = {"MOCK_API_SEED": "9", "MOCK_API_ADMIN": "true", "MOCK_API_SYNC_HANG_RATE": "0.1", "MOCK_API_PORT": "0"}

    from_env = parse_options([], environ=environ)
    overridden = parse_options(["--seed", "3", "--no-admin"], environ=environ)

    assert (from_env.config.seed, from_env.config.admin, from_env.port) == (9, True, 0)
    assert from_env.config.faults.sync.hang_rate == 0.1
    assert (overridden.config.seed, overridden.config.admin) == (3, False)


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--list-error-rate", "1.5"], {}, "--list-error-rate"),
        (["--list-error-rate", "0.8", "--list-hang-rate", "0.5"], {}, "error_rate + hang_rate must be at most 1"),
        (["--rate-window-seconds", "0"], {}, "--rate-window-seconds"),
        (["--rate-window-seconds", "inf"], {}, "--rate-window-seconds: Input should be a finite number."),
        ([], {"MOCK_API_TOKEN_LIFETIME_SECONDS": "nan"}, "Input should be a finite number."),
        (["--campaign-count", "0"], {}, "campaign_count must be at least 1"),
        (["--port", "70000"], {}, "--port"),
        ([], {"MOCK_API_RATE_LIMIT": "many"}, "MOCK_API_RATE_LIMIT"),
        ([], {"MOCK_API_PROFILE": "slow"}, "MOCK_API_PROFILE must be one of original, fast, chaos"),
    ],
)
def test_bad_settings_stop_with_one_line_naming_them(
    argv: list[str], environ: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_options(argv, environ=environ)

    assert stopped.value.code == 2
    assert named in capsys.readouterr().err.splitlines()[-1]


def test_help_lists_every_option_with_its_environment_variable() -> None:
    text = " ".join(build_parser().format_help().split())

    for flag in ("--host", "--port", "--profile", "--seed", "--admin", "--upstream-quirks", "--account-count",
                 "--campaign-count", "--max-page-size", "--rate-limit", "--rate-window-seconds",
                 "--token-lifetime-seconds", "--sync-latency-seconds", "--hang-seconds", "--token-error-rate",
                 "--list-hang-rate", "--sync-extra-latency-seconds"):
        assert flag in text
        env = "MOCK_API_" + flag.removeprefix("--").replace("-", "_").upper()
        assert f"[env {env}]" in text


def test_option_arguments_map_keywords_to_flags() -> None:
    arguments = option_arguments({"rate_limit": 5, "upstream_quirks": True, "admin": False, "seed": None})

    assert arguments == ["--rate-limit", "5", "--upstream-quirks", "--no-admin"]


@contextlib.contextmanager
def simulator_process(*launch: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``python <launch> --port 0 --profile fast`` with piped output; kill it on the way out."""
    process = subprocess.Popen(
        [sys.executable, *launch, "--port", "0", "--profile", "fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        yield process
    finally:
        process.kill()
        process.wait()


def test_first_stdout_line_is_the_url_of_a_serving_server_without_operator_endpoints() -> None:
    with simulator_process("-m", "mock_api") as process:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with httpx.Client(base_url=url, trust_env=False) as client:
            assert client.get("/health").status_code == 200
            assert client.get("/__admin/counters").status_code == 404
        started = time.monotonic()
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal so that the exit status tells why;
        # should that leave the process running, main() raises it again (see end_by_signal).
        status = process.wait(timeout=10)
        assert status == -signal.SIGTERM, process.stderr.read()
        assert time.monotonic() - started < 5


def test_a_server_started_with_sigterm_ignored_still_ends_by_sigterm() -> None:
    # uvicorn handles SIGTERM anyway, restores "ignore" and re-raises into it: main() must end the process.
    launch = (
        "import runpy, signal\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "runpy.run_module('mock_api', run_name='__main__', alter_sys=True)\n"
    )
    with simulator_process("-c", launch) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith("http://127.0.0.1:")
        process.terminate()
        status = process.wait(timeout=10)
        assert status == -signal.SIGTERM, process.stderr.read()
        assert process.stderr.read() == (
            "mock_api: still running after uvicorn re-raised SIGTERM "
            "(handler <Handlers.SIG_IGN: 1>, blocked False); raising it again\n"
        )


def test_a_stop_signal_left_blocked_is_unblocked_to_end_the_process() -> None:
    code = (
        "import signal, sys\n"
        "from mock_api.server import end_by_signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])\n"
        "signal.raise_signal(signal.SIGTERM)\n"
        "sys.exit(end_by_signal(signal.SIGTERM))\n"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)

    assert result.returncode == -signal.SIGTERM
    assert result.stderr == (
        "mock_api: still running after uvicorn re-raised SIGTERM "
        "(handler <Handlers.SIG_DFL: 0>, blocked True); raising it again\n"
    )


def test_restart_keeps_the_url_and_forgets_tokens(api: MockApiServer) -> None:
    url, token = api.url, api.token()

    api.restart()

    assert api.url == url
    with httpx.Client(base_url=url, trust_env=False) as client:
        assert client.get("/api/campaigns", headers=bearer(token)).status_code == 401
        assert client.get("/api/campaigns", headers=bearer(api.token())).status_code == 200


def test_a_killed_server_refuses_connections_until_started_again(api: MockApiServer) -> None:
    api.kill()

    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=api.url, trust_env=False) as client:
        client.get("/health")
    api.start()
    assert httpx.get(f"{api.url}/health", trust_env=False).status_code == 200


def test_a_server_left_running_dies_with_the_python_process_that_started_it() -> None:
    script = "from mock_api.testing import MockApiServer; print(MockApiServer().start().pid)"

    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)

    pid = int(finished.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
