"""A Debian PostgreSQL server that a test starts, stops mid-run and starts again, as the ``postgres`` user."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

COMMAND_TIMEOUT_SECONDS = 60


def postgres_bin_dir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` holding ``pg_ctl``, if any."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return candidates[-1].parent if candidates else None


class ExternalPostgres:
    """A throwaway cluster on a free TCP port of 127.0.0.1, trust authentication, run as ``postgres``."""

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self.data_dir = Path(tempfile.mkdtemp(prefix="cp-chaos-pg-"))
        shutil.chown(self.data_dir, user="postgres")
        self.data_dir.chmod(0o700)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._as_postgres(f"LC_ALL=C.UTF-8 '{self._bin}/initdb' -D '{self.data_dir}' -U postgres --auth=trust -E UTF8")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c max_connections=100"
        self._as_postgres(
            f"'{self._bin}/pg_ctl' -D '{self.data_dir}' -l '{self.data_dir}/server.log' -w -o '{options}' start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(f"'{self._bin}/pg_ctl' -D '{self.data_dir}' -m {mode} -w stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its data."""
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", f"'{self._bin}/pg_ctl' -D '{self.data_dir}' -m immediate stop"],
            capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False,
        )
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _as_postgres(self, command: str) -> None:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", command],
            capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS, check=True,
        )
