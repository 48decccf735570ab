"""A temporary PostgreSQL server for tests: ``initdb`` in a fresh folder, a loopback port,
torn down after. Uses the Debian package's binaries (``/usr/lib/postgresql/<version>/bin``,
installed by ``./dev`` when missing).

Importable by any test or script (the store's PostgreSQL leg, the distributed tests)::

    server = TemporaryPostgres.start()
    url = server.new_database()        # postgresql://postgres@127.0.0.1:PORT/db_1
    ...
    server.stop()

PostgreSQL refuses to run as root: when the tests run as root the server runs as the
``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine (run ``./dev`` to install them)."""


def postgres_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresUnavailable("no /usr/lib/postgresql/*/bin/initdb: install the postgresql package (./dev does)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TemporaryPostgres:
    folder: Path
    port: int
    bin_dir: Path
    _as_user: list[str] = field(default_factory=list)
    _names: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls, timeout: float = 60.0) -> "TemporaryPostgres":
        bin_dir = postgres_bin_dir()
        folder = Path(tempfile.mkdtemp(prefix="hybrid-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            user = pwd.getpwnam("postgres")
            os.chown(folder, user.pw_uid, user.pw_gid)
            as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        data = folder / "data"
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
        port = _free_port()
        # Durability off: a test server's data dies with the test session anyway.
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c shared_buffers=32MB")
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                        "-o", options, "-w", "-t", str(int(timeout)), "start"], check=True, capture_output=True)
        server = cls(folder, port, bin_dir, as_user)
        deadline = time.monotonic() + timeout
        while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"temporary PostgreSQL on port {port} did not start")
            time.sleep(0.1)
        return server

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, prefix: str = "db") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def dump_database(self, url: str) -> bytes:
        """Everything the database holds, as ``pg_dump`` writes it (values decompressed, the
        way a leak would be read back)."""
        return subprocess.run([str(self.bin_dir / "pg_dump"), "--no-owner", url], check=True,
                              capture_output=True, timeout=120).stdout

    def files_holding(self, needle: bytes) -> list[Path]:
        """The server's files (the data directory: tables, indexes, WAL; and its log) holding ``needle``
        byte for byte, after a CHECKPOINT has written every changed page to its file."""
        self._admin("CHECKPOINT")
        found = []
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
        return found

    def stop(self) -> None:
        subprocess.run([*self._as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m",
                        "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
