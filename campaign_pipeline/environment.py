"""Everything a command needs before Dagster runs: databases, the API, credentials, DAGSTER_HOME.

Used by the ``run`` and ``dev`` commands. With no API URL configured, the
local simulator (``python -m mock_api``) is started as a child process with
its demo accounts; with no database URL, the embedded PostgreSQL server.
The result is a set of environment variables for Dagster's processes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from campaign_pipeline import settings as names
from campaign_pipeline.accounts import AccountConfigError, load_registry, parse_credentials
from campaign_pipeline.database import DatabaseUrls, prepare_databases, sqlalchemy_psycopg2_url
from campaign_pipeline.settings import Settings, SettingsError, redact_url

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEMO_DIR = PROJECT_DIR / "demo"
DAGSTER_PG_URL = "CAMPAIGN_PIPELINE_DAGSTER_PG_URL"
SIMULATOR_START_TIMEOUT_SECONDS = 30
API_PROBE_TIMEOUT_SECONDS = 10

# How the local simulator runs when no API URL is set, and the matching client
# settings. "demo" compresses the platform's clock 30-fold (10 requests per 2 s
# rather than per 60 s, a 0.5 s sync rather than 2 s) so that a demo sync of
# five accounts takes well under a minute, with the contract's 503s and hangs.
SIMULATOR_PROFILES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "demo": (
        ("--profile", "original", "--rate-limit", "10", "--rate-window-seconds", "2",
         "--sync-latency-seconds", "0.5", "--hang-seconds", "5"),
        {names.RATE_LIMIT: "10", names.RATE_WINDOW_SECONDS: "2", names.READ_TIMEOUT_SECONDS: "2"},
    ),
    "fast": (
        ("--profile", "fast", "--rate-limit", "1000", "--rate-window-seconds", "1"),
        {names.RATE_LIMIT: "1000", names.RATE_WINDOW_SECONDS: "1", names.SYNC_WORKERS: "16"},
    ),
    "original": (("--profile", "original"), {names.RATE_LIMIT: "10", names.RATE_WINDOW_SECONDS: "60"}),
    "chaos": (
        ("--profile", "chaos", "--rate-limit", "20", "--rate-window-seconds", "2", "--hang-seconds", "5"),
        {names.RATE_LIMIT: "20", names.RATE_WINDOW_SECONDS: "2", names.READ_TIMEOUT_SECONDS: "2"},
    ),
}


class SetupError(RuntimeError):
    """The environment cannot be prepared; the message is one sentence for the user."""


@dataclass
class PreparedEnvironment:
    """What a command prepared: the variables for Dagster processes and the children to stop."""

    settings: Settings
    databases: DatabaseUrls
    env: dict[str, str]
    simulator: subprocess.Popen | None = None
    children: list[subprocess.Popen] = field(default_factory=list)

    def close(self) -> None:
        """Stop every child process, the simulator last."""
        for process in [*self.children, self.simulator]:
            _stop(process)


def prepare(environ: dict[str, str] | None = None, *, api: bool = True) -> PreparedEnvironment:
    """Prepare databases, the API (unless ``api`` is false) and DAGSTER_HOME; return the environment for Dagster.

    The schedule's cron expression is checked and the state directory created first, before
    the simulator or a database server starts.

    Raises:
        SetupError: with one sentence naming the setting at fault.
    """
    env = dict(os.environ if environ is None else environ)
    simulator = None
    try:
        from campaign_pipeline.schedules import check_cron

        early = Settings.from_env(env)
        # Every run process loads the schedule with the code location: a bad one would fail each of them.
        check_cron(early.schedule_cron)
        make_home(early.home)
        if api and not env.get(names.API_URL, "").strip():
            simulator_args, client_env = SIMULATOR_PROFILES[early.simulator_profile]
            env.update({key: value for key, value in client_env.items() if not env.get(key)})
            env.setdefault(names.ACCOUNTS_FILE, str(DEMO_DIR / "accounts.toml"))
            if not env.get(names.CREDENTIALS, "").strip():
                env[names.CREDENTIALS] = (DEMO_DIR / "credentials.demo.json").read_text(encoding="utf-8")
            log_path = early.home / "logs" / "simulator.log"
            simulator, env[names.API_URL] = start_simulator(simulator_args, env, log_path)
        settings = Settings.from_env(env)
        if api:
            check_accounts(settings, env)
            if simulator is None:
                check_api_reachable(env[names.API_URL])
        databases = prepare_databases(settings)
    except (SettingsError, AccountConfigError) as exc:
        _stop(simulator)
        raise SetupError(str(exc)) from None
    except Exception as exc:
        _stop(simulator)
        if isinstance(exc, SetupError):
            raise
        raise SetupError(str(exc)) from None
    # Absolute, as this process resolved them: Dagster's processes may start in another directory.
    env[names.HOME] = str(settings.home)
    env[names.ACCOUNTS_FILE] = str(settings.accounts_file)
    env[names.WAREHOUSE_URL] = databases.warehouse
    env[DAGSTER_PG_URL] = sqlalchemy_psycopg2_url(databases.dagster_storage)
    env["DAGSTER_HOME"] = str(prepare_dagster_home(settings.home))
    return PreparedEnvironment(settings=settings, databases=databases, env=env, simulator=simulator)


def make_home(home: Path) -> None:
    """Create the state directory, or raise :class:`SetupError` naming the setting."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"{names.HOME} {home} cannot be created: {exc.strerror or exc}.") from None


def check_accounts(settings: Settings, env: dict[str, str]) -> None:
    """Fail unless every enabled registry account has credentials (never quoting them)."""
    accounts = load_registry(settings.accounts_file)
    credentials = parse_credentials(env.get(names.CREDENTIALS))
    missing = [account.id for account in accounts if account.enabled and account.id not in credentials]
    if missing:
        raise AccountConfigError(
            f"{names.CREDENTIALS} has no credentials for account(s) {', '.join(missing)} "
            f"of the registry {settings.accounts_file}."
        )


def check_api_reachable(url: str) -> None:
    """Raise :class:`SetupError` naming the setting unless the platform at ``url`` answers HTTP at all.

    Any status counts as an answer (a platform without ``/health`` still
    answers 404); only a refused, unresolvable or silent host is an error.
    Without this, an unreachable platform surfaces minutes later, after every
    partition has spent its retries.
    """
    try:
        requests.get(f"{url.rstrip('/')}/health", timeout=API_PROBE_TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        raise SetupError(
            f"Cannot reach the ad platform at {names.API_URL} ({redact_url(url)}): "
            f"no HTTP answer within {API_PROBE_TIMEOUT_SECONDS} s ({type(exc).__name__})."
        ) from None


def start_simulator(args: tuple[str, ...], env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start ``python -m mock_api`` on a free port, logging to ``log_path``; return the process and its URL."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mock_api", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
    deadline = time.monotonic() + SIMULATOR_START_TIMEOUT_SECONDS
    url = process.stdout.readline().strip() if process.stdout else ""
    if not url.startswith("http://"):
        _stop(process)
        raise SetupError("The local ad platform simulator (python -m mock_api) did not start.")
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return process, url
        except requests.RequestException:
            time.sleep(0.1)
    _stop(process)
    raise SetupError(f"The local ad platform simulator at {url} did not answer /health.")


def prepare_dagster_home(home: Path) -> Path:
    """Create ``<home>/dagster_home`` holding the project's dagster.yaml; return it."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    source = PROJECT_DIR / "dagster.yaml"
    if not source.exists():
        raise SetupError(f"{source} is missing: run campaign-pipeline from a checkout of the project.")
    shutil.copyfile(source, dagster_home / "dagster.yaml")
    return dagster_home


def check_port_free(port: int, setting: str) -> None:
    """Raise :class:`SetupError` naming ``setting`` if ``port`` is taken on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SetupError(f"Port {port} ({setting}) is already in use; choose another with {setting}.") from None


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def start_dagster_services(prepared: PreparedEnvironment, *, ui_port: int, code_port: int) -> str:
    """Start a gRPC code server, ``dagster-daemon`` and ``dagster-webserver``; return the UI URL.

    The three processes share only the PostgreSQL storage, as they would on
    separate machines: the webserver and daemon reach the code through the
    code server's port, named in a workspace file written to DAGSTER_HOME.
    """
    bin_dir = Path(sys.executable).parent
    workspace = Path(prepared.env["DAGSTER_HOME"]) / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
        f"      port: {code_port}\n      location_name: campaign_pipeline\n"
    )
    log_dir = prepared.settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(name: str, *args: str) -> None:
        with (log_dir / f"{name}.log").open("ab") as log:
            prepared.children.append(
                subprocess.Popen([str(bin_dir / args[0]), *args[1:]], env=prepared.env, cwd=PROJECT_DIR,
                                 stdout=log, stderr=subprocess.STDOUT)
            )

    spawn("code-server", "dagster", "code-server", "start", "-m", "campaign_pipeline.definitions",
          "-h", "127.0.0.1", "-p", str(code_port), "--location-name", "campaign_pipeline")
    wait_for(lambda: subprocess.run([str(bin_dir / "dagster"), "api", "grpc-health-check", "-p", str(code_port)],
                                    capture_output=True, env=prepared.env).returncode == 0,
             what=f"the code server on port {code_port} (log: {log_dir / 'code-server.log'})")
    spawn("daemon", "dagster-daemon", "run", "-w", str(workspace))
    spawn("webserver", "dagster-webserver", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(ui_port))
    url = f"http://127.0.0.1:{ui_port}"
    wait_for(lambda: _answers(f"{url}/server_info"), what=f"the webserver at {url} (log: {log_dir / 'webserver.log'})")
    return url


def wait_for(condition, *, what: str, timeout_seconds: float = 120.0, interval_seconds: float = 0.5) -> None:
    """Poll ``condition`` until it holds; raise :class:`SetupError` naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_seconds)
    raise SetupError(f"Timed out after {timeout_seconds:.0f} s waiting for {what}.")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False

