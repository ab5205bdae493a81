# Sourced by the other scripts: create .venv with Python 3.11 or newer and
# install checkins into it, with tox for the tests.

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "checkins needs Python 3.11 or newer; '$python' is $("$python" --version 2>&1)." >&2
    echo "Set PYTHON to a newer interpreter, for example PYTHON=python3.12." >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install.
stamp=.venv/.checkins-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]' tox
    touch "$stamp"
fi
