import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from checkins.adapters.postgres import migrations
from checkins.entrypoints import cli


GOOD = (
    "user,timestamp,hours,project\n"
    "ned,2018-11-26 14:47:36.0429 UTC,8.0,bizdev\n"
    "ned,11/26/2018 02:47 PM,1.5,hirng\n"
    ",2018-11-26 10:00:00 UTC,4.0,learning\n"
)


def table_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in sorted(tables)
        }


def test_load_prints_json_report(run_cli, database_url, tmp_path):
    """`load --json` prints one JSON object with the counts."""
    path = tmp_path / "export.csv"
    path.write_text(GOOD, encoding="utf-8")

    status, output, _ = run_cli(database_url, "load", str(path), "--json")
    report = json.loads(output)

    assert 0 == status
    assert 3 == report["rows_read"]
    assert 2 == report["rows_loaded"]
    assert 1 == report["rows_quarantined"]
    assert {"missing_user": 1} == report["quarantined_by_reason"]
    assert {"iso": 2, "us": 1} == report["formats"]
    assert 1 == report["fixes"]["precision_recovered"]


def test_load_prints_text_report(run_cli, database_url, tmp_path):
    """Without --json the report is aligned text."""
    path = tmp_path / "export.csv"
    path.write_text(GOOD, encoding="utf-8")

    status, output, _ = run_cli(database_url, "load", str(path))

    assert 0 == status
    assert "rows read                   3" in output
    assert "rows quarantined            1" in output
    assert "  missing_user                  1" in output


BAD_FILES = {
    "missing column": (
        b"user,when,hours,project\nned,2018-11-26 14:47 UTC,1,x\n",
        "not a check-in CSV: missing column timestamp",
    ),
    "binary": (
        bytes(range(256)) * 8,
        "binary content (NUL bytes), not a CSV text file",
    ),
    "empty": (
        b"",
        "file is empty, expected a header line user,timestamp,hours,project",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_load_rejects_bad_file(run_cli, database_url, tmp_path, kind):
    """A file that is not a check-in CSV fails with one line and changes nothing."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    run_cli(database_url, "load", str(good))
    before = table_counts(database_url)
    content, problem = BAD_FILES[kind]
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    status, output, error = run_cli(database_url, "load", str(path))

    assert 1 == status
    assert "" == output
    assert f"checkins: error: {path}: {problem}" in error
    assert 1 == len(error.strip().splitlines())
    assert before == table_counts(database_url)


def test_load_help_gives_default_window(capsys):
    """`load --help` gives the main run of activity as the default window."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["load", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    assert 0 == exited.value.code
    assert (
        "default: the span of the file's main run of activity (the file's days "
        "split into runs at gaps of over 60 days, and the run with the most rows "
        "is the main one)"
    ) in help_text


def test_load_rejects_missing_path(run_cli, database_url, tmp_path):
    """A path that does not exist fails with one line naming it."""
    path = tmp_path / "absent.csv"

    status, _, error = run_cli(database_url, "load", str(path))

    assert 1 == status
    assert f"checkins: error: {path}: file not found\n" == error
    assert {} == table_counts(database_url)


def test_migrate_reports_applied(run_cli, database_url):
    """`migrate` applies the schema once, then reports it up to date."""
    first = run_cli(database_url, "migrate")
    second = run_cli(database_url, "migrate")

    names = [name for name, _ in migrations()]
    assert (0, f"applied {len(names)} migrations: {', '.join(names)}\n") == first[:2]
    assert (0, "schema is up to date\n") == second[:2]


def test_unreachable_database_is_one_line(run_cli, tmp_path):
    """A database that cannot be reached fails with one line, not a traceback."""
    path = tmp_path / "export.csv"
    path.write_text(GOOD, encoding="utf-8")

    status, _, error = run_cli(
        "postgresql://postgres@127.0.0.1:9/none?connect_timeout=2", "load", str(path)
    )

    assert 1 == status
    assert error.startswith("checkins: error: database unavailable: ")
    assert 1 == len(error.strip().splitlines())


def test_malformed_database_url_names_the_setting(run_cli):
    status, _, error = run_cli("not a url", "loads")

    assert 1 == status
    assert error == (
        'checkins: error: invalid CHECKINS_DATABASE_URL: missing "=" after '
        '"not" in connection info string; expected a URL such as '
        "postgresql://user@127.0.0.1:5432/checkins, or unset it to use the "
        "embedded server\n"
    )


REPOSITORY = Path(__file__).resolve().parents[2]

# Runs the CLI as the `checkins` script does, with the arguments after "-c".
CLI_SCRIPT = "import sys; from checkins.entrypoints.cli import main; sys.exit(main())"


def read_until(stream, text: bytes, timeout: float) -> bytes:
    """Read `stream` until `text` appears, it ends or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    output = b""
    while text not in output:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([stream], [], [], remaining)
        if not ready:
            break
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        output += chunk
    return output


def running_postmaster_pid(data_dir: Path) -> int | None:
    """Return the pid in data_dir/postmaster.pid if that process is running."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def wait_for_postmaster_exit(data_dir: Path, timeout: float) -> int | None:
    """Wait for the postmaster of data_dir to exit, or return its pid at `timeout`."""
    deadline = time.monotonic() + timeout
    pid = running_postmaster_pid(data_dir)
    while pid is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        pid = running_postmaster_pid(data_dir)
    return pid


def test_sigterm_stops_load_and_embedded_server(tmp_path):
    """SIGTERM during a load exits with 143 and stops the embedded server."""
    path = tmp_path / "export.csv"
    subprocess.run(
        [
            sys.executable,
            str(REPOSITORY / "bench" / "generate.py"),
            "--rows",
            "200000",
            "--seed",
            "1",
            "--output",
            str(path),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data_dir = tmp_path / "postgres"
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "CHECKINS_DATABASE_URL"
    }
    environment |= {"CHECKINS_DATA_DIR": str(data_dir), "CHECKINS_LOG_LEVEL": "INFO"}

    process = subprocess.Popen(
        [sys.executable, "-c", CLI_SCRIPT, "load", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment,
    )
    try:
        started = read_until(process.stderr, b" checkins.services: loading ", 120)
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=120)
        log = (started + rest).decode()
        left_running = wait_for_postmaster_exit(data_dir, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        # A postmaster that the CLI left running is stopped here with a fast
        # shutdown, so that a failure does not leave a server behind.
        pid = running_postmaster_pid(data_dir)
        if pid is not None:
            os.kill(pid, signal.SIGINT)
            wait_for_postmaster_exit(data_dir, 30)

    assert " checkins.services: loading " in log
    assert 143 == process.returncode, log
    assert (
        " WARNING checkins.entrypoints.cli: stopped by SIGTERM, exiting with "
        "status 143\n"
    ) in log
    assert left_running is None


def test_serve_on_a_used_port_is_one_line(run_cli, database_url):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        status, _, error = run_cli(database_url, "serve", "--port", str(port))

    assert 1 == status
    assert error.startswith(
        f"checkins: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert error.endswith(
        "; stop the server that uses it, or choose another --host or --port\n"
    )


def test_serve_on_an_unknown_host_is_one_line(run_cli, database_url):
    status, _, error = run_cli(database_url, "serve", "--host", "nosuch.invalid")

    assert 1 == status
    assert error.startswith("checkins: error: cannot resolve --host 'nosuch.invalid': ")
    assert error.endswith(
        "; give an IP address such as 127.0.0.1, or a name this machine resolves\n"
    )
    assert 1 == len(error.splitlines())


def run_clean(run_cli, database_url, source, output, rejects, *options):
    """Run `checkins clean` from `source` into `output` and `rejects`."""
    return run_cli(
        database_url,
        "clean",
        str(source),
        "--output",
        str(output),
        "--rejects",
        str(rejects),
        *options,
    )


def test_clean_output_can_be_cleaned_again(run_cli, database_url, tmp_path):
    source = tmp_path / "tiny.csv"
    source.write_text(
        "user,timestamp,hours,project\n"
        "ned,2018-11-26 10:00:00 UTC,0.0000000000001,hiring\n"
        "ned,2018-11-26 11:00:00 UTC,7.50,hiring\n",
        encoding="utf-8",
    )
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"

    rejects = tmp_path / "rejects.csv"

    status, _, error = run_clean(run_cli, database_url, source, first, rejects)
    again, output, _ = run_clean(
        run_cli, database_url, first, second, rejects, "--json"
    )

    assert 0 == status, error
    assert 0 == again
    assert 0 == json.loads(output)["rows_quarantined"]
    # Decimal would print the first as 1E-13, which the loader rejects.
    assert [line.split(",")[2] for line in first.read_text().splitlines()] == [
        "hours",
        "0.0000000000001",
        "7.50",
    ]
    assert [line.split(",")[2] for line in second.read_text().splitlines()] == [
        "hours",
        "0.0000000000001",
        "7.50",
    ]


def test_clean_on_a_full_disk_is_one_line(run_cli, database_url, tmp_path):
    source = tmp_path / "tiny.csv"
    source.write_text(GOOD, encoding="utf-8")
    rejects = tmp_path / "rejects.csv"

    status, _, error = run_clean(run_cli, database_url, source, "/dev/full", rejects)

    assert 1 == status
    assert error == (
        f"checkins: error: cannot write /dev/full or {rejects}: No space left on "
        "device; free space on their disk or choose other --output and --rejects "
        "paths\n"
    )


def test_failed_clean_keeps_earlier_outputs(run_cli, database_url, tmp_path):
    """A clean that fails after opening its outputs leaves the old ones as they were."""
    source = tmp_path / "late.csv"
    # The bad byte comes after the first block of lines, which opening reads.
    rows = "arya,2018-11-26 10:00:00 UTC,1,hiring\n" * 5000
    source.write_bytes((GOOD + rows).encode() + b"ned,2018-11-26 14:47 UTC,1,caf\xe9\n")
    output, rejects = tmp_path / "clean.csv", tmp_path / "rejects.csv"
    output.write_text("earlier output\n")
    rejects.write_text("earlier rejects\n")

    status, _, error = run_clean(run_cli, database_url, source, output, rejects)

    assert 1 == status
    assert "line 5005 is not valid UTF-8 text" in error
    assert "earlier output\n" == output.read_text()
    assert "earlier rejects\n" == rejects.read_text()
    assert ["clean.csv", "late.csv", "rejects.csv"] == sorted(
        path.name for path in tmp_path.iterdir()
    )


def test_clean_to_missing_folder_keeps_output(run_cli, database_url, tmp_path):
    """A --rejects path in a missing folder leaves an existing --output whole."""
    source = tmp_path / "tiny.csv"
    source.write_text(GOOD, encoding="utf-8")
    output = tmp_path / "clean.csv"
    output.write_text("earlier output\n")
    rejects = tmp_path / "missing" / "rejects.csv"

    status, _, error = run_clean(run_cli, database_url, source, output, rejects)

    assert 1 == status
    assert f"checkins: error: {rejects}: cannot write: No such file or directory\n" == (
        error
    )
    assert "earlier output\n" == output.read_text()


def test_clean_may_discard_both_outputs(run_cli, database_url, tmp_path):
    """/dev/null for both outputs prints the report only."""
    source = tmp_path / "tiny.csv"
    source.write_text(GOOD, encoding="utf-8")

    status, output, _ = run_clean(
        run_cli, database_url, source, "/dev/null", "/dev/null", "--json"
    )

    assert 0 == status
    assert (3, 2, 1) == tuple(
        json.loads(output)[key]
        for key in ("rows_read", "rows_loaded", "rows_quarantined")
    )


@pytest.mark.parametrize(
    ("target", "linked"),
    [("FILE", "--output"), ("FILE", "--rejects"), ("--output", "--rejects")],
)
def test_clean_rejects_hard_linked_paths(
    run_cli, database_url, tmp_path, target, linked
):
    """Two names of one file fail before any output is opened for writing."""
    paths = {
        "FILE": tmp_path / "export.csv",
        "--output": tmp_path / "clean.csv",
        "--rejects": tmp_path / "rejects.csv",
    }
    paths["FILE"].write_text(GOOD, encoding="utf-8")
    paths["--output"].write_text("earlier output\n", encoding="utf-8")
    paths[linked] = tmp_path / "link.csv"
    os.link(paths[target], paths[linked])
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}

    status, output, error = run_clean(
        run_cli, database_url, paths["FILE"], paths["--output"], paths["--rejects"]
    )

    assert 1 == status
    assert "" == output
    assert error == (
        f"checkins: error: {target} and {linked} are the same file: "
        f"{paths[target]} and {paths[linked]} are two names of one file (same "
        "device and inode), such as hard links; give each its own path\n"
    )
    assert before == {path: path.read_bytes() for path in tmp_path.iterdir()}


def test_clean_rejects_symbolic_link_to_input(run_cli, database_url, tmp_path):
    source = tmp_path / "export.csv"
    source.write_text(GOOD, encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(source)

    status, _, error = run_clean(
        run_cli, database_url, source, link, tmp_path / "rejects.csv"
    )

    assert 1 == status
    assert error == (
        f"checkins: error: FILE and --output are the same file {link}; give each "
        "its own path\n"
    )
    assert GOOD == source.read_text(encoding="utf-8")
    assert not (tmp_path / "rejects.csv").exists()


def write_export(path: Path, hours: str) -> Path:
    """Write a one-row export whose content, and so SHA-256, depends on `hours`."""
    path.write_text(
        f"user,timestamp,hours,project\nned,2018-11-26 10:00:00 UTC,{hours},hiring\n",
        encoding="utf-8",
    )
    return path


def loaded_sources(run_cli, database_url) -> list[str]:
    _, output, _ = run_cli(database_url, "loads", "--json")
    return [json.loads(line)["source"] for line in output.splitlines()]


def make_mixed_folder(tmp_path: Path) -> Path:
    """Build a folder of three loadable files and three .csv entries to skip."""
    folder = tmp_path / "exports"
    folder.mkdir()
    write_export(folder / "a.csv", "1.0")
    write_export(folder / "B.CSV", "2.0")
    target = write_export(tmp_path / "elsewhere.csv", "3.0")
    (folder / "link.csv").symlink_to(target)
    (folder / ".backup.csv").write_text("not an export", encoding="utf-8")
    (folder / "._a.csv").write_bytes(b"\x00\x05\x16\x07")
    (folder / "07.csv").mkdir()
    write_export(folder / "07.csv" / "inner.csv", "4.0")
    (folder / "notes.txt").write_text("not an export", encoding="utf-8")
    return folder


def test_folder_load_skips_hidden_and_subfolders(run_cli, database_url, tmp_path):
    folder = make_mixed_folder(tmp_path)

    status, output, error = run_cli(database_url, "load", str(folder))

    assert 0 == status, error
    assert output.splitlines()[:3] == [
        f'skipped {folder}/._a.csv: hidden name (starts with "."); give its '
        "path to load it",
        f'skipped {folder}/.backup.csv: hidden name (starts with "."); give its '
        "path to load it",
        f"skipped {folder}/07.csv: a folder, not a file; give its path to load "
        "the files in it",
    ]
    assert 3 == output.count("skipped ")
    assert loaded_sources(run_cli, database_url) == [
        f"{folder}/B.CSV",
        f"{folder}/a.csv",
        f"{folder}/link.csv",
    ]


def test_folder_load_json_skip_lines(run_cli, database_url, tmp_path):
    folder = make_mixed_folder(tmp_path)

    status, output, error = run_cli(database_url, "load", str(folder), "--json")
    lines = [json.loads(line) for line in output.splitlines()]

    assert 0 == status, error
    assert lines[:3] == [
        {"source": f"{folder}/._a.csv", "skipped": True, "reason": "hidden_name"},
        {"source": f"{folder}/.backup.csv", "skipped": True, "reason": "hidden_name"},
        {"source": f"{folder}/07.csv", "skipped": True, "reason": "folder"},
    ]
    assert [line["source"] for line in lines[3:]] == [
        f"{folder}/B.CSV",
        f"{folder}/a.csv",
        f"{folder}/link.csv",
    ]
    assert [line["rows_loaded"] for line in lines[3:]] == [1, 1, 1]


def add_broken_link(folder):
    target = folder.parent / "moved.csv"
    (folder / "x.csv").symlink_to(target)
    return (
        f"{folder}/x.csv: broken symbolic link to {target}, so nothing was loaded; "
        "remove the link or restore its target, then load the folder again"
    )


def add_link_loop(folder):
    (folder / "loop.csv").symlink_to(folder / "loop.csv")
    return (
        f"{folder}/loop.csv: cannot read: Too many levels of symbolic links, so "
        "nothing was loaded; make it readable by this user or move it out of the "
        "folder, then load the folder again"
    )


def add_named_pipe(folder):
    os.mkfifo(folder / "pipe.csv")
    return (
        f"{folder}/pipe.csv: a named pipe, not a regular file, so nothing was "
        "loaded; move it out of the folder, then load the folder again"
    )


def add_locked_file(folder):
    locked = write_export(folder / "b.csv", "2.0")
    locked.chmod(0)
    return (
        f"{locked}: cannot read: Permission denied, so nothing was loaded; make it "
        "readable by this user or move it out of the folder, then load the folder "
        "again"
    )


@pytest.mark.parametrize(
    "add_entry",
    [
        add_broken_link,
        add_link_loop,
        add_named_pipe,
        pytest.param(
            add_locked_file,
            marks=pytest.mark.skipif(
                os.geteuid() == 0, reason="root reads files without permission"
            ),
        ),
    ],
)
def test_folder_load_rejects_unreadable_entry(
    run_cli, database_url, tmp_path, add_entry
):
    """One .csv entry that cannot be read stops the folder before any load."""
    folder = tmp_path / "exports"
    folder.mkdir()
    write_export(folder / "a.csv", "1.0")
    message = add_entry(folder)
    write_export(folder / "z.csv", "2.0")

    status, output, error = run_cli(database_url, "load", str(folder))

    assert 1 == status
    assert "" == output
    assert f"checkins: error: {message}\n" == error
    assert {} == table_counts(database_url)


def test_folder_of_only_skipped_entries_fails(run_cli, database_url, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    write_export(folder / ".a.csv", "1.0")
    (folder / "07.csv").mkdir()

    status, output, error = run_cli(database_url, "load", str(folder))

    assert 1 == status
    assert "" == output
    assert error == (
        f"checkins: error: {folder}: folder contains no .csv file to load, because "
        "its .csv entries, such as .a.csv, are hidden names or subfolders; give "
        "their paths to load them\n"
    )
    assert {} == table_counts(database_url)


def test_named_hidden_file_is_loaded(run_cli, database_url, tmp_path):
    """A hidden file given by its own path is loaded like any other file."""
    path = write_export(tmp_path / ".backup.csv", "1.0")

    status, output, error = run_cli(database_url, "load", str(path), "--json")

    assert 0 == status, error
    assert 1 == json.loads(output)["rows_loaded"]
    assert loaded_sources(run_cli, database_url) == [str(path)]


def test_named_broken_link_is_not_found(run_cli, database_url, tmp_path):
    path = tmp_path / "x.csv"
    path.symlink_to(tmp_path / "moved.csv")

    status, output, error = run_cli(database_url, "load", str(path))

    assert 1 == status
    assert "" == output
    assert f"checkins: error: {path}: file not found\n" == error


CLEAN_COUNTS = {
    "load_id": None,
    "mode": None,
    "rows_read": 20_500,
    "rows_loaded": 20_492,
    "rows_quarantined": 8,
    "rows_inserted": 0,
    "rows_already_stored": None,
    "rows_retired": 0,
    "rows_revived": 0,
}


def test_clean_json_has_no_stored_count(run_cli, database_url, tmp_path, real_export):
    status, output, error = run_clean(
        run_cli,
        database_url,
        real_export,
        tmp_path / "clean.csv",
        tmp_path / "rejects.csv",
        "--json",
    )
    report = json.loads(output)

    assert 0 == status, error
    assert CLEAN_COUNTS == {key: report[key] for key in CLEAN_COUNTS}


def test_clean_text_has_no_stored_lines(run_cli, database_url, tmp_path, real_export):
    status, output, error = run_clean(
        run_cli,
        database_url,
        real_export,
        tmp_path / "clean.csv",
        tmp_path / "rejects.csv",
    )

    assert 0 == status, error
    assert output.splitlines()[:4] == [
        f"source              {real_export}",
        "rows read              20,500",
        "rows loaded            20,492",
        "rows quarantined            8",
    ]
    assert "stored" not in output
