"""An embedded PostgreSQL server, used when CHECKINS_DATABASE_URL is not set.

The server comes from the pgserver package (PostgreSQL 16 binaries in a wheel) or,
where pgserver is not installed, from the initdb and pg_ctl of a local PostgreSQL.
It accepts connections on a Unix-domain socket only, with trust authentication. The
socket is in data_dir, which has mode 0700, unless that path is too long for a
socket. Then it is in a folder under the temp dir, private to the server's OS user.

NOTE: as root with a long data_dir, pgserver 0.1.4 puts the socket in a folder with
mode 0777 under $XDG_RUNTIME_DIR or /tmp/runtime-0, so any local user can connect
as the superuser postgres.

The code is POSIX-only, like gunicorn.
"""

import atexit
import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import types
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


logger = logging.getLogger(__name__)

# The OS user that runs the pg_ctl server when checkins runs as root, because
# PostgreSQL rejects root. PostgreSQL packages on Debian and RPM systems create it.
SERVER_USER = "postgres"

_DATABASE_USER = "postgres"
_PORT = 5432
_START_TIMEOUT_SECONDS = 60
_COMMAND_TIMEOUT_SECONDS = _START_TIMEOUT_SECONDS + 30
_HANDLES_FILE = "checkins-handles.json"
_SERVER_LOG_FILE = "server.log"
_PGSERVER_LOG_FILE = "log"
_BIN_DIR_PATTERN = "/usr/lib/postgresql/*/bin"

# sun_path in struct sockaddr_un is 108 bytes on Linux and 104 on macOS, and
# PostgreSQL needs one of them for the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 103 if sys.platform == "darwin" else 107

_NO_BACKEND_MESSAGE = (
    "Cannot start the embedded PostgreSQL server: the pgserver package is not "
    "installed (it has wheels for CPython 3.9 to 3.12 only), and initdb and pg_ctl "
    f"were not found on PATH or in {_BIN_DIR_PATTERN}. Set CHECKINS_DATABASE_URL "
    "to the URL of a PostgreSQL server, or install PostgreSQL so that initdb and "
    "pg_ctl are on PATH."
)


class EmbeddedPostgresError(RuntimeError):
    """Raised when the embedded PostgreSQL server fails to set up, start or stop."""


def default_data_dir() -> Path:
    """Return `.checkins/postgres` under the current working directory."""
    return Path.cwd() / ".checkins" / "postgres"


def import_pgserver() -> types.ModuleType | None:
    """Import the pgserver package, or return None when it cannot be imported."""
    try:
        # pgserver gets a runtime folder from platformdirs when it is imported,
        # and platformdirs warns when XDG_RUNTIME_DIR is unset, as it is for
        # root and in containers.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="platformdirs")
            return importlib.import_module("pgserver")
    except ImportError as error:
        if error.name != "pgserver":
            logger.warning("pgserver is installed but failed to import: %s", error)
        return None


def find_postgres_bin_dir() -> Path | None:
    """Return the folder with initdb and pg_ctl, or None when there is none.

    PATH comes first, then the newest version under /usr/lib/postgresql, where
    Debian and Ubuntu install the server binaries without putting them on PATH.
    """
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        folder = Path(pg_ctl).resolve().parent
        if _has_server_binaries(folder):
            return folder

    for folder in sorted(Path("/").glob(_BIN_DIR_PATTERN[1:]), key=_version_key):
        if _has_server_binaries(folder):
            return folder

    return None


def _has_server_binaries(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """Return a sort key that puts the highest version folder first."""
    version = bin_dir.parent.name
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return (1,)
    return (0, *(-int(part) for part in version.split(".")))


class _Backend(Protocol):
    def start(self) -> str: ...

    def release(self) -> None: ...


@dataclass
class _SharedBackend:
    """A started backend and the number of EmbeddedPostgres handles using it."""

    backend: _Backend
    url: str
    owner_pid: int
    handles: int


# One backend per data dir and process, so that a stop() by one EmbeddedPostgres
# does not shut down the server under another one in the same process.
_backends: dict[Path, _SharedBackend] = {}
_backends_lock = threading.Lock()


class EmbeddedPostgres:
    """A PostgreSQL server that runs on this machine and stores its data in data_dir.

    start() reuses a server that is already running on data_dir, whether this or
    another process started it. Every process that calls start() holds a handle, and
    the server stops when the last handle is released by stop() or at interpreter
    exit. The data stays in data_dir. A forked child, such as a gunicorn worker,
    uses the parent's handle, so a server started in the gunicorn master stays up
    until the master exits.

    When checkins runs as root, pgserver runs PostgreSQL as the OS user `pgserver`
    (and creates it with useradd), chowns data_dir to it and adds read and search
    permission for group and others on every parent folder of data_dir. The
    pg_ctl fallback runs PostgreSQL as the owner of an existing cluster or else as
    SERVER_USER, and adds only search permission for others on the parent folders.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        load_pgserver: Callable[[], types.ModuleType | None] = import_pgserver,
        find_bin_dir: Callable[[], Path | None] = find_postgres_bin_dir,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._load_pgserver = load_pgserver
        self._find_bin_dir = find_bin_dir
        self._url: str | None = None

    def start(self) -> str:
        """Start the server, or reuse the one running on data_dir, and return its URL.

        Calling start() again before stop() returns the same URL.
        """
        if self._url is not None:
            return self._url

        with _backends_lock:
            shared = _backends.get(self.data_dir)
            if shared is None or shared.owner_pid != os.getpid():
                backend, url = self._start_backend()
                shared = _SharedBackend(backend, url, os.getpid(), handles=0)
                _backends[self.data_dir] = shared
            shared.handles += 1

        self._url = shared.url
        return self._url

    def stop(self) -> None:
        """Release this handle, and stop the server if no other handle remains.

        Calling stop() without a started handle does nothing.
        """
        if self._url is None:
            return
        self._url = None

        with _backends_lock:
            shared = _backends.get(self.data_dir)
            if shared is None or shared.owner_pid != os.getpid():
                # In a forked child, the handle belongs to the parent process.
                return
            shared.handles -= 1
            if shared.handles > 0:
                return
            del _backends[self.data_dir]

        try:
            shared.backend.release()
        except (OSError, subprocess.SubprocessError) as error:
            raise EmbeddedPostgresError(
                f"Failed to stop the PostgreSQL server on data dir {self.data_dir}: "
                f"{error}"
            ) from error

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_backend(self) -> tuple[_Backend, str]:
        """Start a server with pgserver, or else pg_ctl, and return it with its URL."""
        backend: _Backend
        pgserver = self._load_pgserver()
        if pgserver is not None:
            backend = _PgserverBackend(pgserver, self.data_dir)
        else:
            bin_dir = self._find_bin_dir()
            if bin_dir is None:
                raise EmbeddedPostgresError(_NO_BACKEND_MESSAGE)
            backend = _PgCtlBackend(bin_dir, self.data_dir)

        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise EmbeddedPostgresError(
                f"Data dir {self.data_dir} exists but is not a folder. Pass the path "
                "of a new or empty folder."
            )

        try:
            url = backend.start()
        except (OSError, subprocess.SubprocessError) as error:
            raise EmbeddedPostgresError(
                f"Failed to start the PostgreSQL server on data dir {self.data_dir}: "
                f"{error}. Set CHECKINS_DATABASE_URL to use another PostgreSQL server "
                "if the error cannot be fixed."
            ) from error
        return backend, url


def _check_data_dir(data_dir: Path) -> None:
    """Raise EmbeddedPostgresError if data_dir has files but no PostgreSQL cluster.

    Call it under _exclusive_lock, because initdb in another process fills the
    folder before it writes PG_VERSION.
    """
    if (data_dir / "PG_VERSION").exists():
        return
    if any(data_dir.iterdir()):
        raise EmbeddedPostgresError(
            f"Data dir {data_dir} is not empty and has no PG_VERSION file, so it is "
            "not a PostgreSQL data directory. Pass a new or empty folder."
        )


@dataclass(frozen=True)
class _PostmasterStatus:
    """The fields of postmaster.pid that checkins uses."""

    pid: int
    port: int
    socket_dir: str
    state: str


def _read_postmaster_status(data_dir: Path) -> _PostmasterStatus | None:
    """Read data_dir/postmaster.pid, or return None unless its process is running.

    The lines are, as src/include/utils/pidfile.h in PostgreSQL lists them: pid,
    data dir, start time, port, first socket folder, listen address, shared memory
    key and state. The server adds lines 6 to 8 while it starts.
    """
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8:
        return None

    try:
        pid = int(lines[0])
        port = int(lines[3])
    except ValueError:
        return None
    if not _process_exists(pid):
        return None
    return _PostmasterStatus(pid, port, lines[4].strip(), lines[7].strip())


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # The process exists but belongs to another user.
    return True


class _PgserverBackend:
    """A server run by the pgserver package."""

    def __init__(self, pgserver: types.ModuleType, data_dir: Path) -> None:
        self.pgserver = pgserver
        self.data_dir = data_dir
        self.server: Any = None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.data_dir):
            _check_data_dir(self.data_dir)
            return self._start_server()

    def _start_server(self) -> str:
        before = _read_postmaster_status(self.data_dir)

        # cleanup_mode="stop": pgserver lists each process that opens the server
        # and stops it when the last one exits or calls cleanup(). So `checkins load`
        # does not leave a server running, and `checkins serve` keeps it while it runs.
        # The constructor is called instead of get_server() because get_server()
        # returns a cached handle after cleanup(), without listing the process again.
        # NOTE: pgserver 0.1.4 keeps the pid of a process killed by SIGKILL in its
        # list, and then no later process stops the server. A SIGTERM during
        # this call can leave the server running too, until a later command
        # reuses and stops it.
        try:
            # platformdirs, which pgserver uses, warns on every start when
            # XDG_RUNTIME_DIR is unset, as it is for root and in containers.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module="platformdirs")
                server = self.pgserver.PostgresServer(
                    self.data_dir, cleanup_mode="stop"
                )
        except subprocess.SubprocessError as error:
            log_file = self.data_dir / _PGSERVER_LOG_FILE
            raise EmbeddedPostgresError(
                f"pgserver failed to start PostgreSQL on data dir {self.data_dir} "
                f"({error}). pgserver logs the command output to the logger named "
                f"'pgserver'. {_describe_log(log_file)}"
            ) from error
        self.server = server

        pid = server.get_pid()
        if before is not None and before.pid == pid:
            logger.info(
                "Reusing PostgreSQL server pid %d on data dir %s", pid, self.data_dir
            )
        else:
            logger.info(
                "Started PostgreSQL server pid %d on data dir %s with pgserver",
                pid,
                self.data_dir,
            )
        return server.get_uri()

    def release(self) -> None:
        if self.server is None:
            return
        self.server.cleanup()
        self.server = None
        _log_release(self.data_dir, _read_postmaster_status(self.data_dir))


def _log_release(data_dir: Path, status: _PostmasterStatus | None) -> None:
    if status is None:
        logger.info("Stopped PostgreSQL server on data dir %s", data_dir)
    else:
        logger.info(
            "Left PostgreSQL server pid %d on data dir %s running for other processes",
            status.pid,
            data_dir,
        )


@dataclass(frozen=True)
class _Account:
    """The OS user and group that run the server."""

    uid: int
    gid: int


class _PgCtlBackend:
    """A server run by initdb and pg_ctl from a PostgreSQL installation."""

    def __init__(self, bin_dir: Path, data_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.log_file = data_dir / _SERVER_LOG_FILE
        self.account: _Account | None = None
        self.owner_pid = os.getpid()
        self.started = False

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)

        with _exclusive_lock(self.data_dir):
            _check_data_dir(self.data_dir)
            status = _read_postmaster_status(self.data_dir)
            if status is not None and status.state == "ready":
                logger.info(
                    "Reusing PostgreSQL server pid %d on data dir %s",
                    status.pid,
                    self.data_dir,
                )
            else:
                self._prepare_data_dir()
                status = self._launch()
            if not status.socket_dir:
                raise EmbeddedPostgresError(
                    f"PostgreSQL server pid {status.pid} on data dir {self.data_dir} "
                    "has no Unix-domain socket. Stop it with pg_ctl and start again."
                )
            _add_handle(self.data_dir, os.getpid())

        self.started = True
        atexit.register(self._release_at_exit)
        return _socket_url(status.socket_dir, status.port)

    def release(self) -> None:
        if not self.started:
            return
        self.started = False
        atexit.unregister(self._release_at_exit)

        with _exclusive_lock(self.data_dir):
            remaining = _remove_handle(self.data_dir, os.getpid())
            status = _read_postmaster_status(self.data_dir)
            if remaining or status is None:
                _log_release(self.data_dir, status)
                return

            self._run(
                "pg_ctl",
                [
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_SECONDS),
                ],
                account=_owner_account(self.data_dir),
            )
        logger.info(
            "Stopped PostgreSQL server pid %d on data dir %s", status.pid, self.data_dir
        )
        if Path(status.socket_dir) != self.data_dir:
            # The private socket folder is empty once the server has stopped.
            with contextlib.suppress(OSError):
                Path(status.socket_dir).rmdir()

    def _release_at_exit(self) -> None:
        if os.getpid() != self.owner_pid:
            return
        try:
            self.release()
        except (OSError, subprocess.SubprocessError, EmbeddedPostgresError) as error:
            logger.error(
                "Failed to stop PostgreSQL server on data dir %s at exit: %s",
                self.data_dir,
                error,
            )

    def _prepare_data_dir(self) -> None:
        """Create the cluster if data_dir has none, owned by the server's OS user."""
        initialized = (self.data_dir / "PG_VERSION").exists()
        self.account = _server_account(self.data_dir, initialized)

        if self.account is not None:
            _grant_search_permission(self.data_dir, self.data_dir)
            if not initialized:
                os.chown(self.data_dir, self.account.uid, self.account.gid)
                self.data_dir.chmod(0o700)

        if initialized:
            self._check_major_version()
            return

        self._run(
            "initdb",
            [
                "-D",
                str(self.data_dir),
                f"--username={_DATABASE_USER}",
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--no-locale",
            ],
            account=self.account,
        )
        logger.info("Created PostgreSQL cluster in data dir %s", self.data_dir)

    def _check_major_version(self) -> None:
        cluster_version = (self.data_dir / "PG_VERSION").read_text().strip()
        output = self._run("pg_ctl", ["--version"], account=self.account)
        match = re.search(r"\(PostgreSQL\) (\d+)", output)
        if match is None or match[1] == cluster_version:
            return
        raise EmbeddedPostgresError(
            f"Data dir {self.data_dir} was created by PostgreSQL {cluster_version}, "
            f"but {self.bin_dir} has PostgreSQL {match[1]}. Put the PostgreSQL "
            f"{cluster_version} binaries on PATH, or move the data dir away to start "
            "with an empty database."
        )

    def _launch(self) -> _PostmasterStatus:
        socket_dir = _choose_socket_dir(self.data_dir, self.account)
        server_options = (
            "-c listen_addresses='' "
            f"-c unix_socket_directories={shlex.quote(str(socket_dir))} "
            f"-p {_PORT}"
        )
        self._run(
            "pg_ctl",
            [
                "start",
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                str(_START_TIMEOUT_SECONDS),
                "-l",
                str(self.log_file),
                "-o",
                server_options,
            ],
            account=self.account,
        )

        status = _read_postmaster_status(self.data_dir)
        if status is None or status.state != "ready":
            raise EmbeddedPostgresError(
                f"pg_ctl reported a started server, but {self.data_dir}/postmaster.pid "
                f"shows no ready server. See the server log {self.log_file}."
            )
        logger.info(
            "Started PostgreSQL server pid %d on data dir %s with %s",
            status.pid,
            self.data_dir,
            self.bin_dir / "pg_ctl",
        )
        return status

    def _run(self, program: str, arguments: list[str], account: _Account | None) -> str:
        """Run a PostgreSQL program as account and return its output."""
        command = [str(self.bin_dir / program), *arguments]

        # Output goes to a file, not a pipe, because the server that pg_ctl starts
        # could inherit the pipe and keep it open after pg_ctl exits.
        with tempfile.TemporaryFile("w+") as output_file:
            try:
                subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    timeout=_COMMAND_TIMEOUT_SECONDS,
                    check=True,
                    user=None if account is None else account.uid,
                    group=None if account is None else account.gid,
                    extra_groups=None if account is None else [],
                )
            except subprocess.CalledProcessError as error:
                output_file.seek(0)
                raise EmbeddedPostgresError(
                    f"{shlex.join(command)} failed with exit status "
                    f"{error.returncode}. Output:\n{output_file.read().strip()}\n"
                    f"{_describe_log(self.log_file)}"
                ) from error
            except subprocess.TimeoutExpired as error:
                raise EmbeddedPostgresError(
                    f"{shlex.join(command)} timed out after "
                    f"{_COMMAND_TIMEOUT_SECONDS} s. {_describe_log(self.log_file)}"
                ) from error

            output_file.seek(0)
            return output_file.read()


def _describe_log(log_file: Path, line_count: int = 20) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"The server log {log_file} does not exist."
    tail = "\n".join(lines[-line_count:])
    return f"Last lines of the server log {log_file}:\n{tail}"


def _server_account(data_dir: Path, initialized: bool) -> _Account | None:
    """Return the OS user to run the server as, or None to run it as this user.

    PostgreSQL rejects root, so root runs the server as the owner of an existing
    cluster or else as SERVER_USER.
    """
    if os.geteuid() != 0:
        return None

    if initialized:
        owner = _owner_account(data_dir)
        if owner is not None:
            return owner

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise EmbeddedPostgresError(
            f"PostgreSQL rejects root, and the OS user {SERVER_USER!r} that "
            "checkins runs it as does not exist. Create it (useradd --system "
            f"{SERVER_USER}), run checkins as a user other than root, or set "
            "CHECKINS_DATABASE_URL."
        ) from None
    return _Account(entry.pw_uid, entry.pw_gid)


def _owner_account(data_dir: Path) -> _Account | None:
    """Return the owner of data_dir when checkins runs as root and differs from it."""
    if os.geteuid() != 0:
        return None
    info = data_dir.stat()
    if info.st_uid == 0:
        return None
    return _Account(info.st_uid, info.st_gid)


def _grant_search_permission(path: Path, data_dir: Path) -> None:
    """Add search permission for others on each parent folder of path.

    The server's OS user must be able to reach path through them.
    """
    for folder in path.parents:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & stat.S_IXOTH:
            continue
        folder.chmod(mode | stat.S_IXOTH)
        logger.warning(
            "Added search permission for others on %s so that the PostgreSQL server "
            "of data dir %s can reach %s",
            folder,
            data_dir,
            path,
        )


def _choose_socket_dir(data_dir: Path, account: _Account | None) -> Path:
    """Return the folder for the server's Unix-domain socket, creating it if needed.

    That is data_dir, unless the socket path in it would be too long or data_dir
    contains a comma, which unix_socket_directories reads as a separator. Then it is
    a private folder in the temp dir, named after a hash of data_dir.
    """
    if _socket_path_fits(data_dir) and "," not in str(data_dir):
        return data_dir

    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    socket_dir = Path(tempfile.gettempdir()) / f"checkins-postgres-{digest}"
    if not _socket_path_fits(socket_dir):
        raise EmbeddedPostgresError(
            f"The socket path in {socket_dir} is longer than the "
            f"{_MAX_SOCKET_PATH_BYTES}-byte limit for Unix-domain sockets, and so is "
            f"the one in data dir {data_dir}. Set TMPDIR to a shorter folder or use "
            "a shorter data dir."
        )
    if account is not None:
        _grant_search_permission(socket_dir, data_dir)
    _make_private_dir(socket_dir, account)
    return socket_dir


def _socket_path_fits(folder: Path) -> bool:
    socket_path = folder / f".s.PGSQL.{_PORT}"
    return len(os.fsencode(socket_path)) <= _MAX_SOCKET_PATH_BYTES


def _make_private_dir(folder: Path, account: _Account | None) -> None:
    """Create folder with mode 0700, or check that an existing one is private."""
    owner_uid = account.uid if account is not None else os.geteuid()
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    else:
        if account is not None:
            os.chown(folder, account.uid, account.gid)

    # The name in the shared temp dir is predictable, so another user could have
    # created it first to catch the connections.
    info = folder.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != owner_uid
        or info.st_mode & 0o077
    ):
        raise EmbeddedPostgresError(
            f"Socket folder {folder} exists but is not a folder with mode 0700 owned "
            f"by uid {owner_uid}. Remove it and start again."
        )


def _socket_url(socket_dir: str, port: int) -> str:
    host = urllib.parse.quote(socket_dir, safe="/")
    return f"postgresql://{_DATABASE_USER}@/{_DATABASE_USER}?host={host}&port={port}"


@contextlib.contextmanager
def _exclusive_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on data_dir, so checkins processes start in turn.

    The pg_ctl backend also stops under it. pgserver stops under its own lock.
    """
    descriptor = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _read_handles(data_dir: Path) -> list[int]:
    try:
        pids = json.loads((data_dir / _HANDLES_FILE).read_text())
    except FileNotFoundError:
        return []
    except ValueError as error:
        logger.warning(
            "Ignoring invalid handle list %s: %s", data_dir / _HANDLES_FILE, error
        )
        return []
    if not isinstance(pids, list):
        return []
    return [pid for pid in pids if isinstance(pid, int)]


def _write_handles(data_dir: Path, pids: list[int]) -> None:
    (data_dir / _HANDLES_FILE).write_text(json.dumps(pids))


def _add_handle(data_dir: Path, pid: int) -> None:
    pids = [known for known in _read_handles(data_dir) if _process_exists(known)]
    if pid not in pids:
        pids.append(pid)
    _write_handles(data_dir, pids)


def _remove_handle(data_dir: Path, pid: int) -> list[int]:
    """Remove pid and the pids of exited processes, and return the remaining pids."""
    pids = [
        known
        for known in _read_handles(data_dir)
        if known != pid and _process_exists(known)
    ]
    _write_handles(data_dir, pids)
    return pids
