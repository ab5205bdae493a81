import importlib
import os
import signal

import pytest

from checkins.bootstrap import Settings
from checkins.entrypoints import gunicorn_config
from checkins.entrypoints.wsgi import authentication_mode


@pytest.fixture(name="reload_config")
def fixture_reload_config(monkeypatch):
    """Reload the settings module under the test's environment, then restore it."""

    def reload(**environment):
        for name in ("CHECKINS_WORKERS", "CHECKINS_THREADS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(gunicorn_config)

    yield reload
    monkeypatch.undo()
    importlib.reload(gunicorn_config)


def test_default_workers_and_threads(reload_config):
    config = reload_config()

    assert config.workers == 2 * len(os.sched_getaffinity(0))
    assert config.threads == 1
    assert config.worker_class == "gthread"


def test_environment_sets_workers_and_threads(reload_config):
    config = reload_config(CHECKINS_WORKERS="3", CHECKINS_THREADS="2")

    assert config.options()["workers"] == 3
    assert config.options()["threads"] == 2


@pytest.mark.parametrize(
    "value", ["abc", "0", "-1", "2.5", "²", "99999999999999999999"]
)
def test_invalid_worker_count_is_rejected(reload_config, value):
    maximum = gunicorn_config.MAX_WORKERS

    with pytest.raises(ValueError) as raised:
        reload_config(CHECKINS_WORKERS=value)

    assert str(raised.value) == (
        f"invalid CHECKINS_WORKERS {value!r}: expected a whole number from 1 to "
        f"{maximum}, or unset it for the default"
    )


def test_largest_counts_are_accepted(reload_config):
    config = reload_config(
        CHECKINS_WORKERS=str(gunicorn_config.MAX_WORKERS), CHECKINS_THREADS="256"
    )

    assert config.workers == 16 * len(os.sched_getaffinity(0))
    assert config.threads == 256


@pytest.mark.parametrize(
    ("environment", "mode"),
    [
        ({}, "no authentication"),
        ({"CHECKINS_API_TOKEN_HASHES": "ab" * 32}, "bearer tokens required"),
        (
            {"CHECKINS_API_TOKENS_FILE": "/etc/checkins/tokens"},
            "bearer tokens required",
        ),
    ],
)
def test_authentication_mode_follows_token_settings(environment, mode):
    settings = Settings.from_env(environment)

    assert authentication_mode(settings) == mode


def test_workers_leave_sigint_to_master():
    """A worker ignores SIGINT, which Ctrl-C also sends it, and quits on SIGQUIT."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        gunicorn_config.options()["post_worker_init"](None)

        assert signal.SIG_IGN == signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
