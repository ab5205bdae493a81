import io
import logging
import re

from checkins.entrypoints.data_commands import Progress


class Terminal(io.StringIO):
    """A text stream that reports itself as a terminal."""

    def isatty(self) -> bool:
        return True


def test_terminal_line_shows_both_phases():
    stream = Terminal()

    with Progress("loading x.csv", stream) as progress:
        progress.update(0)
        progress.update(65_536)
        progress.written(0)
        progress.written(50_000)

    drawn = stream.getvalue().split("\r")[1:]
    assert len(drawn) == 2
    assert re.fullmatch(r"loading x\.csv: 65,536 rows read, [\d,]+ rows/s ?", drawn[0])
    assert re.fullmatch(
        r"loading x\.csv: 50,000 rows written, [\d,]+ rows/s\n", drawn[1]
    )


def test_terminal_line_covers_a_longer_line():
    stream = Terminal()

    with Progress("x", stream) as progress:
        progress.update(1_000_000)
        progress.written(5)

    first, second = stream.getvalue().split("\r")[1:]
    assert len(second.rstrip("\n")) >= len(first)


def test_rate_leaves_out_time_before_the_phase(monkeypatch):
    clock = iter([100.0, 160.0, 162.0])
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    stream = Terminal()

    with Progress("x", stream) as progress:
        # The load waited 60 s for another one before it started reading.
        progress.update(0)
        progress.update(20_000)

    assert stream.getvalue() == "\rx: 20,000 rows read, 10,000 rows/s\n"


def test_log_lines_name_the_phase(caplog):
    with caplog.at_level(logging.INFO), Progress("x", io.StringIO()) as progress:
        progress.LOG_SECONDS = 0.0
        progress.update(0)
        progress.update(10)
        progress.written(0)
        progress.written(7)

    messages = [record.getMessage() for record in caplog.records]
    assert [message.split(",")[0] for message in messages] == [
        "x: 10 rows read",
        "x: 7 rows written",
    ]
