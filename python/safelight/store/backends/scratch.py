"""A throwaway PostgreSQL server for the store's tests and benchmarks.

``initdb`` and ``pg_ctl`` from the distribution's package make a cluster in a temporary
directory, reached through a Unix socket in that directory only (no TCP port to collide
with); it is stopped and deleted when the block ends. PostgreSQL refuses to run as root: as
root, the cluster runs as the ``postgres`` user (``runuser``). ``SAFELIGHT_TEST_POSTGRES_URL``
names a running server to use instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_URL = "SAFELIGHT_TEST_POSTGRES_URL"
START_TIMEOUT_S = 60


class PostgresUnavailable(Exception):
    """No server to test against; the message says why and what would provide one."""


def server_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, else the newest of Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the package keeps them off PATH)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [d for d in found if (d / "pg_ctl").exists()]
    version = lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0  # noqa: E731
    return max(found, key=version) if found else None


def _as_server_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs the server's programs, and the account they run as."""
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root, and there is no 'postgres' user to run the server as") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root, and there is no runuser to start the server as 'postgres'")
    return [runuser, "-u", "postgres", "--"], account


@contextmanager
def scratch_postgres(durable: bool = True) -> Iterator[str]:
    """Yield the URL of a PostgreSQL server that lives as long as the block.

    ``durable=False`` turns fsync off (tests: a process crash is what they simulate, not a
    power cut); benchmarks keep it on, as SQLite's synchronous=FULL. Raises
    :class:`PostgresUnavailable` when there is no server to use.
    """
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    bindir = server_binaries()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server programs (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: "
            f"install the distribution's postgresql package, or set {ENV_URL} to a running server"
        )
    prefix, account = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="safelight-pg-"))
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, log = folder / "data", folder / "server.log"
    settings = f"-k {folder} -c listen_addresses='' -c max_connections=200" + ("" if durable else " -c fsync=off")

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], cwd=folder, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {' '.join(detail[-2:] + tail)}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            settings,
            "start",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailable(f"could not start a scratch PostgreSQL server: {exc}") from None
    except PostgresUnavailable:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        yield f"postgresql://postgres@/postgres?host={folder}"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            cwd=folder,
            capture_output=True,
            timeout=START_TIMEOUT_S,
        )
        shutil.rmtree(folder, ignore_errors=True)
