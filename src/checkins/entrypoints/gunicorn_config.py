"""Gunicorn settings for the HTTP API, for `gunicorn -c` and `checkins serve`.

    gunicorn -c python:checkins.entrypoints.gunicorn_config \
        'checkins.entrypoints.wsgi:get_app()'

Command-line options of gunicorn override these values. CHECKINS_WORKERS and
CHECKINS_THREADS set the process and thread counts.
"""

import os
import signal

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker


def cpu_count() -> int:
    """Return the number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers() -> int:
    """Return two worker processes per CPU.

    While one worker waits for the database, the other runs.
    """
    return 2 * cpu_count()


# Upper bounds, so that a typing slip cannot fork thousands of processes.
MAX_WORKERS = max(16, 16 * cpu_count())
MAX_THREADS = 256


def _count_setting(name: str, default: int, maximum: int) -> int:
    """Return the environment variable `name` as a count from 1 to `maximum`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise ValueError(
            f"invalid {name} {text!r}: expected a whole number from 1 to "
            f"{maximum}, or unset it for the default"
        )
    return int(text)


# gthread keeps idle keep-alive connections out of the request threads. The
# threads of one process share the GIL, and with several request threads each
# request spends worker CPU handing the GIL back and forth, so the default
# scales with processes and gives each one request thread.
worker_class = "gthread"
workers = _count_setting("CHECKINS_WORKERS", default_workers(), MAX_WORKERS)
threads = _count_setting("CHECKINS_THREADS", 1, MAX_THREADS)
# NOTE: the first worker to wake accepts most new connections, so a few
# keep-alive clients can all land on one worker. reuse_port would spread them,
# but it also lets a second server on this port take half of its connections.
bind = ["127.0.0.1:8000"]

# A worker that does not report for this many seconds is killed and replaced.
timeout = 30
# On SIGTERM or SIGHUP, workers stop accepting and get this many seconds to
# finish their requests before they are killed.
graceful_timeout = 20
# Seconds an idle keep-alive connection stays open.
keepalive = 5
# The app writes one JSON access line per request on the checkins.access
# logger, so gunicorn's own access log stays off.
accesslog = None
errorlog = "-"
# Limits on the request line and headers, against oversized requests.
limit_request_line = 8190
limit_request_fields = 50
limit_request_field_size = 8190
# The heartbeat file is touched every second; memory is faster than disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Gunicorn 27 opens a control socket at one path per user, which
# servers started side by side would share. Nothing here uses it.
control_socket_disable = True


def post_worker_init(worker: Worker) -> None:
    """Leave SIGINT to the master, which then stops the workers with SIGQUIT.

    Ctrl-C sends SIGINT to every process of the terminal's group. A gthread
    worker that got SIGINT and then its master's SIGQUIT ran its quit handler
    twice, and the second call could wait on a lock that the first held until
    the master killed the worker after graceful_timeout.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """Close the worker's database connections when it stops."""
    from checkins.entrypoints.wsgi import close_apps

    close_apps()


def options() -> dict[str, object]:
    """Return these settings as a dict of gunicorn option names and values."""
    names = (
        "worker_class",
        "workers",
        "threads",
        "bind",
        "timeout",
        "graceful_timeout",
        "keepalive",
        "accesslog",
        "errorlog",
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
        "worker_tmp_dir",
        "control_socket_disable",
        "post_worker_init",
        "worker_exit",
    )
    return {name: globals()[name] for name in names}
