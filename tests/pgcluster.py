"""A private, throwaway PostgreSQL cluster for the tests (issue 19).

``PgCluster.start()`` runs Debian's ``initdb`` and ``pg_ctl`` (``/usr/lib/postgresql/*/bin``)
on a fresh temporary directory: the data directory and the unix socket live there, the server
listens on 127.0.0.1 on a free port, and everyone local is trusted (nothing but this process's
tests can reach it). PostgreSQL refuses to run as root, so when the tests run as root (CI does)
the cluster runs as the ``postgres`` account that Debian's package creates (or ``nobody``),
and the directory is handed to that account.

Each test gets a database of its own (``new_database``), created from a template that already
holds todoku's schema, so a test costs a file copy rather than the migrations. The cluster runs
without fsync: these tests check what todoku does, not that the disk keeps its promises (the
benchmarks use a cluster with the defaults). ``stop`` removes everything.

Where PostgreSQL or psycopg is missing, ``PgCluster.start`` raises ``Unavailable`` with the
reason; the fixtures turn that into a skip, except under CI (``CI`` in the environment), where
``.ci/run`` installs both and a skip would hide a broken install.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if not found:
        raise Unavailable(
            "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    def __init__(self, root: Path, bin_dir: Path, port: int, run_as: str | None) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.port = port
        self.run_as = run_as
        self.data = root / "data"
        self.template = "todoku_template"
        self.options = ""  # the server's command-line options (port, socket directory, ...)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, *, fsync: bool = False) -> PgCluster:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise Unavailable(
                f"psycopg is not installed (pip install -e '.[test]'): {exc}"
            ) from exc
        bin_dir = _bin_dir()
        run_as = None
        if os.geteuid() == 0:
            for account in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(account)
                except KeyError:
                    continue
                run_as = account
                break
            else:
                raise Unavailable("running as root and there is no postgres or nobody account")
        root = Path(tempfile.mkdtemp(prefix="todoku-pg-"))
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(root, bin_dir, _free_port(), run_as)
        try:
            cluster._run(
                "initdb",
                "-D",
                str(cluster.data),
                "-U",
                "todoku",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            options = [
                f"-p {cluster.port}",
                f"-k {root}",
                "-c listen_addresses=127.0.0.1",
                "-c max_connections=200",
            ]
            if not fsync:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            cluster.options = " ".join(options)
            cluster.server_start()
        except (OSError, subprocess.CalledProcessError) as exc:
            log = root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            cluster.stop()
            detail = getattr(exc, "stderr", "") or ""
            raise Unavailable(f"PostgreSQL did not start: {exc} {detail} {tail}") from exc
        return cluster

    def server_start(self) -> None:
        """Start the server (again, after ``server_stop``) on the same port."""
        self.pg_ctl("start", "-w", "-t", "60", "-o", self.options)

    def server_stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode, "-w")

    def pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), *args)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.pg_ctl("stop", "-m", "immediate", "-w")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        subprocess.run(
            command, check=True, capture_output=True, text=True, timeout=120, cwd=self.root
        )

    # ------------------------------------------------------------------ databases

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://todoku@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self, template: str | None = None) -> str:
        """A new database (a copy of ``template``; the migrated one by default); its URL."""
        name = "t_" + secrets.token_hex(6)
        self.execute(
            f"CREATE DATABASE {name} TEMPLATE {template or self.template} STRATEGY FILE_COPY"
        )
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
