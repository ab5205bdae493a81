"""Hostile and unusual export files, each with its exact outcome.

Every file either fails whole with a one-line SourceError naming the file, the
problem and the fix, or each of its records comes out as a raw row that
cleaning loads or quarantines with a reason. The fixtures come from
tests/fixtures/hostile/generate.py. Files with fields past the CSV reader's
limit are built in a temporary folder.
"""

import codecs
from pathlib import Path

import pytest

from checkins.adapters.csv_source import MAX_RECORD_CHARS, CsvFileSource
from checkins.domain.cleaning import clean
from checkins.domain.model import CheckIn, RawRow
from checkins.entrypoints import cli
from checkins.ports import SourceError


FIXTURES = Path(__file__).parent.parent / "fixtures" / "hostile"
HEADER = "user,timestamp,hours,project\n"
ROW = "ned,2018-11-26 14:47:36 UTC,8,bizdev"
ARYA_ROW = "arya,2018-11-26 14:48:00 UTC,2,hiring"

NED = RawRow(2, ROW, "ned", "2018-11-26 14:47:36 UTC", "8", "bizdev")
NED_LOADED = ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "bizdev")
RUSSIAN_ROWS = [
    RawRow(
        2,
        "ned,26 ноября 2018 14:47,8,bizdev",
        "ned",
        "26 ноября 2018 14:47",
        "8",
        "bizdev",
    ),
    RawRow(
        3,
        "arya,1 мая 2018 09:05,2,разработка",
        "arya",
        "1 мая 2018 09:05",
        "2",
        "разработка",
    ),
]
RUSSIAN_LOADED = [
    ("loaded", 2, "ned", "2018-11-26T14:47:00+00:00", "8", "bizdev"),
    ("loaded", 3, "arya", "2018-05-01T09:05:00+00:00", "2", "разработка"),
]
NED_AND_ARYA = [
    NED,
    RawRow(3, ARYA_ROW, "arya", "2018-11-26 14:48:00 UTC", "2", "hiring"),
]
NED_AND_ARYA_LOADED = [
    NED_LOADED,
    ("loaded", 3, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
]


def read(path: Path, encoding: str | None = None) -> list[RawRow]:
    return list(CsvFileSource(path, encoding=encoding).rows())


def error_of(path: Path, encoding: str | None = None) -> str:
    with pytest.raises(SourceError) as raised:
        read(path, encoding)
    return str(raised.value)


def outcomes(rows: list[RawRow]) -> list[tuple]:
    """Return each cleaning outcome as a tuple of its exact values."""
    summaries = []
    for outcome in clean(rows):
        if isinstance(outcome, CheckIn):
            summaries.append(
                (
                    "loaded",
                    outcome.line,
                    outcome.user,
                    outcome.checkin_at.isoformat(),
                    str(outcome.hours),
                    outcome.project,
                )
            )
        else:
            summaries.append(
                ("quarantined", outcome.line, outcome.reason.value, outcome.detail)
            )
    return summaries


def test_utf8_bom_is_dropped():
    """A UTF-8 byte order mark does not reach the first column name."""
    rows = read(FIXTURES / "utf8_bom.csv")

    assert [NED] == rows
    assert [NED_LOADED] == outcomes(rows)


@pytest.mark.parametrize(
    "name", ["utf16le_bom.csv", "utf16be_bom.csv", "utf16le_no_bom.csv"]
)
def test_utf16_files_are_decoded(name):
    """UTF-16 in either byte order reads with its mark, or with --encoding."""
    encoding = "utf-16-le" if "no_bom" in name else None

    rows = read(FIXTURES / name, encoding)

    assert RUSSIAN_ROWS == rows
    assert RUSSIAN_LOADED == outcomes(rows)


def test_utf32_with_bom_is_decoded():
    """A UTF-32 byte order mark selects UTF-32, not the UTF-16 it starts like."""
    rows = read(FIXTURES / "utf32le_bom.csv")

    assert [NED] == rows
    assert [NED_LOADED] == outcomes(rows)


def test_utf16_without_bom_raises():
    """UTF-16 without a mark fails with the --encoding that reads it."""
    path = FIXTURES / "utf16le_no_bom.csv"

    message = error_of(path)

    assert (
        f"{path}: file looks like utf-16-le text without a byte order mark; "
        "pass --encoding utf-16-le"
    ) == message


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "utf16le_truncated.csv",
            "line 3 is not valid UTF-16 text (truncated data); the file starts "
            "with a UTF-16 byte order mark, so it is damaged; export it again",
        ),
        (
            "utf16le_lone_surrogate.csv",
            "line 3 is not valid UTF-16 text (illegal UTF-16 surrogate); the file "
            "starts with a UTF-16 byte order mark, so it is damaged; export it "
            "again",
        ),
    ],
)
def test_damaged_utf16_raises(name, message):
    """A damaged UTF-16 file fails naming the line of the damage."""
    path = FIXTURES / name

    assert f"{path}: {message}" == error_of(path)


def test_cp1251_with_encoding_is_read():
    """Russian stamps and names in cp1251 read correctly with --encoding."""
    rows = read(FIXTURES / "cp1251.csv", "cp1251")

    assert RUSSIAN_ROWS == rows
    assert RUSSIAN_LOADED == outcomes(rows)


def test_cp1251_without_encoding_raises():
    """A cp1251 file read as UTF-8 fails instead of giving garbled text."""
    path = FIXTURES / "cp1251.csv"

    message = error_of(path)

    assert (
        f"{path}: line 2 is not valid UTF-8 text (invalid continuation byte); "
        "pass --encoding with the file's encoding, for example cp1251"
    ) == message


@pytest.mark.parametrize(
    ("name", "encoding", "message"),
    [
        (
            "cp1251.csv",
            "latin-1",
            "line 2: '26 íîÿáðÿ 2018 14:47' reads as '26 ноября 2018 14:47' in "
            "cp1251, so the file is not latin-1 text; pass --encoding cp1251",
        ),
        (
            "cp1251.csv",
            "cp1252",
            "line 2: '26 íîÿáðÿ 2018 14:47' reads as '26 ноября 2018 14:47' in "
            "cp1251, so the file is not cp1252 text; pass --encoding cp1251",
        ),
        (
            "cp1251_names.csv",
            "latin-1",
            "line 2: 'ðàçðàáîòêà' reads as 'разработка' in cp1251, so the file "
            "is not latin-1 text; pass --encoding cp1251",
        ),
        (
            "utf8_russian.csv",
            "cp1251",
            "line 2: '26 РЅРѕСЏР±СЂСЏ 2018 14:47' reads as '26 ноября 2018 14:47' "
            "in utf-8, so the file is not cp1251 text; pass --encoding utf-8",
        ),
    ],
)
def test_wrong_single_byte_encoding_raises(name, encoding, message):
    """Text misread in a wrong single-byte encoding fails with the right one."""
    path = FIXTURES / name

    assert f"{path}: {message}" == error_of(path, encoding)


@pytest.mark.parametrize(
    ("written", "given", "message"),
    [
        (
            "cp1251",
            "koi8-r",
            "line 2: '26 МНЪАПЪ 2018 14:47' reads as '26 ноября 2018 14:47' in "
            "cp1251, so the file is not koi8-r text; pass --encoding cp1251",
        ),
        (
            "koi8-r",
            "cp1251",
            "line 2: '26 ОПСВТС 2018 14:47' reads as '26 ноября 2018 14:47' in "
            "koi8-r, so the file is not cp1251 text; pass --encoding koi8-r",
        ),
        (
            "cp866",
            "koi8-u",
            "line 2: '26 ґ╝О║ЮО 2018 14:47' reads as '26 ноября 2018 14:47' in "
            "cp866, so the file is not koi8-u text; pass --encoding cp866",
        ),
    ],
)
def test_wrong_cyrillic_encoding_raises(tmp_path, written, given, message):
    """Russian stamps read in another Cyrillic encoding fail with the right one."""
    text = (FIXTURES / "cp1251.csv").read_bytes().decode("cp1251")
    path = tmp_path / f"{written}.csv"
    path.write_bytes(text.encode(written))

    assert f"{path}: {message}" == error_of(path, given)


@pytest.mark.parametrize("encoding", ["cp1251", "koi8-r", "cp866", "iso8859-5"])
def test_right_cyrillic_encoding_loads(tmp_path, encoding):
    """Russian stamps and names in their own encoding load as written."""
    text = (FIXTURES / "cp1251.csv").read_bytes().decode("cp1251")
    path = tmp_path / f"{encoding}.csv"
    path.write_bytes((text + "иван,2018-11-26 10:00:00 UTC,1,найм\n").encode(encoding))

    rows = read(path, encoding)

    assert [
        ("loaded", 2, "ned", "2018-11-26T14:47:00+00:00", "8", "bizdev"),
        ("loaded", 3, "arya", "2018-05-01T09:05:00+00:00", "2", "разработка"),
        ("loaded", 4, "иван", "2018-11-26T10:00:00+00:00", "1", "найм"),
    ] == outcomes(rows)


def test_undefined_byte_in_encoding_raises():
    """A byte the given encoding leaves undefined fails naming its line."""
    path = FIXTURES / "cp1251_undefined_byte.csv"

    message = error_of(path, "cp1251")

    assert (
        f"{path}: line 3 is not valid cp1251 text (character maps to "
        "<undefined>); pass --encoding with the encoding the file was saved in"
    ) == message


def test_undecodable_line_past_first_block(tmp_path):
    """The line of a decoding error is exact past the text layer's first block."""
    path = tmp_path / "export.csv"
    path.write_bytes((HEADER + (ROW + "\n") * 2000).encode() + b"biz\xffdev\n")

    message = error_of(path)

    assert (
        f"{path}: line 2002 is not valid UTF-8 text (invalid start byte); "
        "pass --encoding with the file's encoding, for example cp1251"
    ) == message


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        (
            "no-such-encoding",
            "unknown encoding 'no-such-encoding'; pass --encoding with an "
            "encoding name Python knows, such as utf-8, utf-16 or cp1251",
        ),
        (
            "",
            "unknown encoding ''; pass --encoding with an encoding name Python "
            "knows, such as utf-8, utf-16 or cp1251",
        ),
        (
            "utf\x00-8",
            "unknown encoding 'utf\\x00-8'; pass --encoding with an encoding name "
            "Python knows, such as utf-8, utf-16 or cp1251",
        ),
        (
            "base64",
            "'base64' is not a text encoding; pass --encoding with a text "
            "encoding, such as utf-8, utf-16 or cp1251",
        ),
        (
            "undefined",
            "'undefined' is not a text encoding; pass --encoding with a text "
            "encoding, such as utf-8, utf-16 or cp1251",
        ),
    ],
)
def test_unknown_encoding_raises(encoding, message):
    """An encoding name Python cannot decode text with fails before reading."""
    path = FIXTURES / "utf8_bom.csv"

    assert f"{path}: {message}" == error_of(path, encoding)


def test_unknown_encoding_exits_with_one_line(capsys):
    """The command line prints an unknown encoding as one error line."""
    path = FIXTURES / "utf8_bom.csv"

    status = cli.main(["load", str(path), "--encoding", "no-such-encoding"])

    assert 1 == status
    assert (
        f"checkins: error: {path}: unknown encoding 'no-such-encoding'; pass "
        "--encoding with an encoding name Python knows, such as utf-8, utf-16 "
        "or cp1251\n"
    ) == capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "encoding", "message"),
    [
        (
            "utf8_bom.csv",
            "cp1251",
            "file starts with a UTF-8 byte order mark, but --encoding cp1251 was "
            "given; leave out --encoding to read it as UTF-8",
        ),
        (
            "utf16le_bom.csv",
            "utf-8",
            "file starts with a UTF-16 byte order mark, but --encoding utf-8 was "
            "given; leave out --encoding to read it as UTF-16",
        ),
    ],
)
def test_bom_against_encoding_raises(name, encoding, message):
    """An encoding that contradicts the byte order mark fails."""
    path = FIXTURES / name

    assert f"{path}: {message}" == error_of(path, encoding)


@pytest.mark.parametrize(
    ("name", "encoding", "message"),
    [
        (
            "utf16le_no_bom.csv",
            "utf-16",
            "--encoding utf-16 needs a byte order mark, but the file does not "
            "start with one; pass --encoding utf-16-le",
        ),
        (
            "crlf.csv",
            "utf-32",
            "--encoding utf-32 needs a byte order mark, but the file does not "
            "start with one; pass --encoding utf-32-le or utf-32-be",
        ),
    ],
)
def test_utf_encoding_without_bom_raises(name, encoding, message):
    """Plain utf-16 or utf-32 without a byte order mark fails with the fix."""
    path = FIXTURES / name

    assert f"{path}: {message}" == error_of(path, encoding)


def test_codec_error_without_position_raises():
    """A codec that raises a bare UnicodeError still fails with one line."""
    path = FIXTURES / "crlf.csv"

    message = error_of(path, "punycode")

    assert (
        f"{path}: line 1 or a later one is not valid punycode text (Invalid "
        "extended code point ' '); pass --encoding with the encoding the file "
        "was saved in"
    ) == message


@pytest.mark.parametrize(
    ("name", "encoding", "expected"),
    [
        ("utf8_bom.csv", "utf-8", [NED]),
        ("utf16le_bom.csv", "utf-16-le", RUSSIAN_ROWS),
        ("utf16be_bom.csv", "UTF-16", RUSSIAN_ROWS),
    ],
)
def test_bom_with_agreeing_encoding_is_read(name, encoding, expected):
    """An encoding that agrees with the byte order mark reads the file."""
    assert expected == read(FIXTURES / name, encoding)


@pytest.mark.parametrize("name", ["crlf.csv", "lone_cr.csv"])
def test_line_endings_are_read(name):
    """CR LF and old Mac lone CR line ends both end records."""
    rows = read(FIXTURES / name)

    assert NED_AND_ARYA == rows
    assert NED_AND_ARYA_LOADED == outcomes(rows)


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_stray_cr_stays_inside_record(tmp_path, line_end):
    """In a file of LF or CR LF lines, a lone CR does not split a record."""
    path = tmp_path / "export.csv"
    path.write_bytes(
        line_end.join(
            [
                "user,timestamp,hours,project",
                "ned,2018-11-26 14:47:36 UTC,8,biz\rdev",
                "arya,2018-11-26 10:00:00 UTC,4,learning",
                "",
            ]
        ).encode()
    )

    rows = read(path)

    assert [
        ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "biz dev"),
        ("loaded", 3, "arya", "2018-11-26T10:00:00+00:00", "4", "learning"),
    ] == outcomes(rows)
    assert "ned,2018-11-26 14:47:36 UTC,8,biz\rdev" == rows[0].text


def test_missing_final_newline_is_read():
    """The last record needs no line end."""
    rows = read(FIXTURES / "no_final_newline.csv")

    assert [NED] == rows
    assert [NED_LOADED] == outcomes(rows)


def test_header_only_gives_no_rows():
    """A header with no data rows is an empty export, not an error."""
    rows = read(FIXTURES / "header_only.csv")

    assert [] == rows
    assert [] == outcomes(rows)


def test_quoted_fields_are_read():
    """Quoted fields keep commas, doubled quotes and line breaks."""
    source = CsvFileSource(FIXTURES / "quoted_fields.csv")

    rows = list(source.rows())

    assert [
        RawRow(
            2,
            'ned,2018-11-26 14:47:36 UTC,8,"biz, dev","said ""hi"""',
            "ned",
            "2018-11-26 14:47:36 UTC",
            "8",
            "biz, dev",
        ),
        RawRow(
            3,
            'arya,2018-11-26 14:48:00 UTC,"7,5",bizdev,"two\nlines"',
            "arya",
            "2018-11-26 14:48:00 UTC",
            "7,5",
            "bizdev",
        ),
        RawRow(
            5,
            '"sansa", "2018-11-26 14:49:00 UTC", 1, "blogideas", ""',
            "sansa",
            "2018-11-26 14:49:00 UTC",
            "1",
            "blogideas",
        ),
    ] == rows
    assert ["note"] == source.extra_columns
    assert [
        ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "biz, dev"),
        ("loaded", 3, "arya", "2018-11-26T14:48:00+00:00", "7.5", "bizdev"),
        ("loaded", 5, "sansa", "2018-11-26T14:49:00+00:00", "1", "blogideas"),
    ] == outcomes(rows)


def test_unclosed_quote_over_later_lines_raises():
    """A quote never closed that takes in later lines fails the file."""
    path = FIXTURES / "unclosed_quote.csv"

    assert (
        f"{path}: line 2: a quoted field is not closed before the end of the file, "
        "and the record takes in a line after it that would be a record of its "
        "own; check the quotes from line 2 on, then load the file again"
    ) == error_of(path)


def test_lone_cr_in_first_column_stays_inside_record(tmp_path):
    """A CR after a short user name joins it to the rest of its record."""
    path = tmp_path / "export.csv"
    path.write_bytes((HEADER + "ne\rd,2018-11-26 14:47:36 UTC,8,bizdev\n").encode())

    rows = read(path)

    assert [
        ("loaded", 2, "ne d", "2018-11-26T14:47:36+00:00", "8", "bizdev")
    ] == outcomes(rows)


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
@pytest.mark.parametrize(
    "header",
    [
        "user,timestamp,hours,\rproject",
        "user,timestamp\r,hours\r,project",
        "user,\rtimestamp,hours,project",
    ],
)
def test_lone_cr_in_header_is_stray(tmp_path, line_end, header):
    """A CR inside a header ending with LF or CR LF is not a line end."""
    path = tmp_path / "export.csv"
    path.write_bytes((header + line_end + ROW + line_end).encode())

    rows = read(path)

    assert [NED_LOADED] == outcomes(rows)


@pytest.mark.parametrize("last_end", ["\n", "\r\n"])
@pytest.mark.parametrize(
    ("row", "hours"),
    [
        ("ned,2018-11-26 14:47:36 UTC,1,a", "1"),
        # A quoted comma, and an empty field past the header's columns.
        ('ned,2018-11-26 14:47:36 UTC,"7,5",a', "7.5"),
        ("ned,2018-11-26 14:47:36 UTC,1,a,", "1"),
    ],
)
def test_lone_cr_after_header_ends_it(tmp_path, last_end, row, hours):
    """An old Mac file whose only row ends with LF or CR LF keeps that row."""
    path = tmp_path / "export.csv"
    path.write_bytes(("user,timestamp,hours,project\r" + row + last_end).encode())

    rows = read(path)

    assert [
        ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", hours, "a"),
    ] == outcomes(rows)


@pytest.mark.parametrize(
    ("header", "last_end"),
    [
        # Empty names that end a header do not count as commas of a record.
        ("user,timestamp,hours,project,,,\n", "\n"),
        (HEADER, "\r"),
    ],
)
def test_lone_cr_between_records_ends_one(tmp_path, header, last_end):
    """Two whole records on either side of a lone CR stay apart."""
    path = tmp_path / "export.csv"
    path.write_bytes((header + ROW + "\r" + ARYA_ROW + last_end).encode())

    rows = read(path)

    assert [
        ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "bizdev"),
        ("loaded", 3, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
    ] == outcomes(rows)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The CR after ned's record ends it; the next CR splits robert's.
        (
            ROW + "\rrobert,2019-09-26 00:00:00 UTC\r,8.0,bizdev\n",
            [
                ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "bizdev"),
                ("loaded", 3, "robert", "2019-09-26T00:00:00+00:00", "8.0", "bizdev"),
            ],
        ),
        # A CR in ned's last field, then one that splits robert's record.
        (
            "ned,2018-11-26 14:47:36 UTC,8,biz\rdev\rrobert,2019-09-26\r"
            " 00:00:00 UTC,8.0,bizdev\n",
            [
                ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "biz dev"),
                ("loaded", 3, "robert", "2019-09-26T00:00:00+00:00", "8.0", "bizdev"),
            ],
        ),
        # A quoted comma in ned's record makes no difference.
        (
            'ned,2018-11-26 14:47:36 UTC,8,"biz,dev"\rrobert,2019-09-26 00:00:00'
            " UTC\r,8.0,bizdev\n",
            [
                ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "biz,dev"),
                ("loaded", 3, "robert", "2019-09-26T00:00:00+00:00", "8.0", "bizdev"),
            ],
        ),
        # The same with quotes, which take the reader's careful path.
        (
            ROW + '\r"robert",2019-09-26 00:00:00 UTC\r,8.0,"bizdev"\n',
            [
                ("loaded", 2, "ned", "2018-11-26T14:47:36+00:00", "8", "bizdev"),
                ("loaded", 3, "robert", "2019-09-26T00:00:00+00:00", "8.0", "bizdev"),
            ],
        ),
    ],
)
def test_lone_cr_after_whole_record_ends_it(tmp_path, text, expected):
    """A whole record before a lone CR ends there when text with commas follows."""
    path = tmp_path / "export.csv"
    path.write_bytes((HEADER + text).encode())

    assert expected == outcomes(read(path))


def test_stray_quotes_over_whole_records_raise(tmp_path):
    """Text after a closing quote fails the file when the record takes in rows."""
    path = tmp_path / "export.csv"
    lines = [ROW[:-6] + '"bizdev', ARYA_ROW, ARYA_ROW, ROW + '"x']
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")

    assert (
        f"{path}: line 2: text follows the closing quote of a quoted field; a "
        'quote inside a quoted field is written as two quotes (""), and the '
        "record takes in 3 lines after it that would be records of their own; "
        "check the quotes from line 2 on, then load the file again"
    ) == error_of(path)


def test_unclosed_quote_on_last_line_is_quarantined(tmp_path):
    """A quote never closed on the last line takes in nothing else."""
    path = tmp_path / "export.csv"
    path.write_text(HEADER + ARYA_ROW + '\nned,2018-11-26 14:47:36 UTC,8,"bizdev\n')

    rows = read(path)

    problem = "a quoted field is not closed before the end of the file"
    assert [
        ("loaded", 2, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
        ("quarantined", 3, "malformed_record", problem),
    ] == outcomes(rows)


def test_text_after_quote_is_quarantined():
    """Text after a closing quote quarantines the whole record, all its lines."""
    rows = read(FIXTURES / "text_after_quote.csv")

    problem = (
        "text follows the closing quote of a quoted field; a quote inside a "
        'quoted field is written as two quotes ("")'
    )
    text = 'ned,2018-11-26 14:47:36 UTC,8,"biz"dev,"first\nsecond"'
    assert [
        RawRow(line=2, text=text, problem=problem),
        RawRow(4, ARYA_ROW + ",", "arya", "2018-11-26 14:48:00 UTC", "2", "hiring"),
    ] == rows
    assert [
        ("quarantined", 2, "malformed_record", problem),
        ("loaded", 4, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
    ] == outcomes(rows)


def test_ragged_rows_are_quarantined():
    """Too few fields, or extra non-empty fields, quarantine the record."""
    rows = read(FIXTURES / "ragged.csv")

    assert [
        RawRow(
            line=2,
            text="ned,2018-11-26 14:47:36 UTC,8",
            problem="expected 4 fields, found 3",
        ),
        RawRow(
            line=3,
            text="ned,2018-11-26 14:47:36 UTC,7,5,bizdev",
            problem="expected 4 fields, found 5",
        ),
        RawRow(4, ARYA_ROW + ",,", "arya", "2018-11-26 14:48:00 UTC", "2", "hiring"),
    ] == rows
    assert [
        ("quarantined", 2, "malformed_record", "expected 4 fields, found 3"),
        ("quarantined", 3, "malformed_record", "expected 4 fields, found 5"),
        ("loaded", 4, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
    ] == outcomes(rows)


def test_header_names_match_loosely():
    """Column names match in any case, spacing, quoting and order."""
    rows = read(FIXTURES / "header_variants.csv")

    assert [
        RawRow(
            2,
            "bizdev,8,ned,2018-11-26 14:47:36 UTC",
            "ned",
            "2018-11-26 14:47:36 UTC",
            "8",
            "bizdev",
        )
    ] == rows
    assert [NED_LOADED] == outcomes(rows)


def test_extra_columns_are_ignored_and_listed():
    """Extra columns are listed, and empty trailing header names dropped."""
    source = CsvFileSource(FIXTURES / "extra_columns.csv")

    rows = list(source.rows())

    assert [
        RawRow(
            2,
            "ned,hello,2018-11-26 14:47:36 UTC,x,8,bizdev,,",
            "ned",
            "2018-11-26 14:47:36 UTC",
            "8",
            "bizdev",
        ),
        RawRow(
            3,
            "arya,,2018-11-26 14:48:00 UTC,,2,hiring",
            "arya",
            "2018-11-26 14:48:00 UTC",
            "2",
            "hiring",
        ),
        RawRow(
            line=4,
            text="sansa,,2018-11-26 14:49:00 UTC,,1,hiring,,stray",
            problem="expected 6 fields, found 8",
        ),
    ] == rows
    assert ["note", "column 4"] == source.extra_columns
    assert [
        NED_LOADED,
        ("loaded", 3, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
        ("quarantined", 4, "malformed_record", "expected 6 fields, found 8"),
    ] == outcomes(rows)


def test_blank_lines_are_counted():
    """Empty, white-space and comma-only lines are skipped and counted."""
    source = CsvFileSource(FIXTURES / "blank_lines.csv")

    rows = list(source.rows())

    assert [
        RawRow(3, ROW, "ned", "2018-11-26 14:47:36 UTC", "8", "bizdev"),
        RawRow(7, "arya,x,1,y", "arya", "x", "1", "y"),
    ] == rows
    assert 6 == source.blank_lines
    assert [
        ("loaded", 3, "ned", "2018-11-26T14:47:36+00:00", "8", "bizdev"),
        (
            "quarantined",
            7,
            "invalid_timestamp",
            "timestamp 'x' matches no supported form (ISO 8601, MM/DD/YYYY "
            "hh:mm AM, or '26 ноября 2018 14:47')",
        ),
    ] == outcomes(rows)


def test_nul_byte_quarantines_its_row():
    """A NUL byte in a data row quarantines only that row."""
    rows = read(FIXTURES / "nul_in_row.csv")

    assert [
        RawRow(
            line=2,
            text="ned,2018-11-26 14:47:36 UTC,8,biz\x00dev",
            problem="contains a NUL byte",
        ),
        RawRow(3, ARYA_ROW, "arya", "2018-11-26 14:48:00 UTC", "2", "hiring"),
    ] == rows
    assert [
        ("quarantined", 2, "malformed_record", "contains a NUL byte"),
        ("loaded", 3, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
    ] == outcomes(rows)


def test_nul_byte_in_header_raises():
    """A NUL byte in the header means a binary file."""
    path = FIXTURES / "nul_in_header.csv"

    message = error_of(path)

    assert f"{path}: binary content (NUL bytes), not a CSV text file" == message


def test_stamp_forms_are_cleaned():
    """Midnight, noon, long fractions, one-digit days, T, Z and offsets parse."""
    rows = read(FIXTURES / "stamps.csv")

    cleaned = [
        (
            outcome.line,
            outcome.checkin_at.isoformat(),
            outcome.stamp_format.value,
            outcome.minute_precision,
        )
        for outcome in clean(rows)
    ]

    assert [
        (2, "2018-11-26T00:00:00+00:00", "us", True),
        (3, "2018-11-26T12:00:00+00:00", "us", True),
        (4, "2018-11-26T14:47:36.123456+00:00", "iso", False),
        (5, "2018-05-01T09:05:00+00:00", "russian", True),
        (6, "2018-11-26T14:47:36+00:00", "iso", False),
        (7, "2018-11-26T14:47:36+00:00", "iso", False),
    ] == cleaned


def test_long_field_is_quarantined(tmp_path):
    """A field past the CSV field size limit quarantines its row, text whole."""
    long_row = "ned,2018-11-26 14:47:36 UTC,8," + "x" * 200_000
    path = tmp_path / "export.csv"
    path.write_text(HEADER + long_row + "\n" + ARYA_ROW + "\n", encoding="utf-8")

    rows = read(path)

    problem = (
        "field 4 is 200,000 characters long, over the CSV field size limit of 131,072"
    )
    assert [
        RawRow(line=2, text=long_row, problem=problem),
        RawRow(3, ARYA_ROW, "arya", "2018-11-26 14:48:00 UTC", "2", "hiring"),
    ] == rows
    assert [
        ("quarantined", 2, "malformed_record", problem),
        ("loaded", 3, "arya", "2018-11-26T14:48:00+00:00", "2", "hiring"),
    ] == outcomes(rows)


def test_long_quoted_field_hides_no_rows(tmp_path):
    """A long quoted field that takes in a whole record fails the file."""
    long_record = (
        'ned,2018-11-26 14:47:36 UTC,8,"pasted\n' + "x" * 200_000 + "\n" + ROW + '"'
    )
    path = tmp_path / "export.csv"
    path.write_text(HEADER + long_record + "\n" + ARYA_ROW + "\n", encoding="utf-8")

    assert (
        f"{path}: line 2: field 4 is 200,044 characters long, over the CSV field "
        "size limit of 131,072, and the record takes in a line after it that would "
        "be a record of its own; check the quotes from line 2 on, then load the "
        "file again"
    ) == error_of(path)


def test_closed_quotes_over_whole_records_raise(tmp_path):
    """Two stray quotes that make a valid field of whole records fail the file."""
    path = tmp_path / "export.csv"
    lines = [ROW[:-6] + '"bizdev', ARYA_ROW, ROW + '"', ARYA_ROW]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")

    assert (
        f"{path}: line 2: a quoted field spans several lines, and the record takes "
        "in 2 lines after it that would be records of their own; check the quotes "
        "from line 2 on, then load the file again"
    ) == error_of(path)


def test_line_at_record_limit_is_quarantined(tmp_path):
    """A line of exactly MAX_RECORD_CHARS characters is still one row."""
    prefix = "ned,2018-11-26 14:47:36 UTC,8,"
    line = prefix + "x" * (MAX_RECORD_CHARS - len(prefix) - 1)
    path = tmp_path / "export.csv"
    path.write_text(HEADER + line + "\n", encoding="utf-8")

    (row,) = read(path)

    assert 2 == row.line
    assert line == row.text
    assert (
        "field 4 is 1,048,545 characters long, over the CSV field size limit of 131,072"
    ) == row.problem


def test_line_over_record_limit_raises(tmp_path):
    """A line one character past MAX_RECORD_CHARS fails the whole file."""
    prefix = "ned,2018-11-26 14:47:36 UTC,8,"
    line = prefix + "x" * (MAX_RECORD_CHARS - len(prefix))
    path = tmp_path / "export.csv"
    path.write_text(HEADER + line + "\n", encoding="utf-8")

    message = error_of(path)

    assert (
        f"{path}: line 2 is longer than 1,048,576 characters, too long for a "
        "check-in record; remove that line or check that the file is a check-in "
        "CSV export"
    ) == message


def test_file_without_newlines_raises(tmp_path):
    """A huge file on one line fails at its first line, without reading it all."""
    path = tmp_path / "export.csv"
    path.write_bytes(b"user," + b"a" * (2 * MAX_RECORD_CHARS))

    message = error_of(path)

    assert (
        f"{path}: line 1 is longer than 1,048,576 characters, too long for a "
        "check-in record; remove that line or check that the file is a check-in "
        "CSV export"
    ) == message


def test_unclosed_quote_past_record_limit_raises(tmp_path):
    """A quote that swallows over MAX_RECORD_CHARS fails, naming where it opens."""
    rows = (ARYA_ROW + "\n") * (MAX_RECORD_CHARS // len(ARYA_ROW) + 1)
    path = tmp_path / "export.csv"
    path.write_text(HEADER + ROW + "\n" + 'ned,x,1,"oops\n' + rows, encoding="utf-8")

    message = error_of(path)

    assert (
        f"{path}: the record that starts on line 3 is longer than 1,048,576 "
        "characters, which happens when a quote is never closed; check the "
        "quotes from line 3 on"
    ) == message


def test_latin1_accents_are_not_misread(tmp_path):
    """Western European names in latin-1 load as written."""
    path = tmp_path / "export.csv"
    content = HEADER + "José,2018-11-26 14:47:36 UTC,1,crème brûlée\n"
    path.write_bytes(content.encode("latin-1"))

    rows = read(path, "latin-1")

    assert [
        ("loaded", 2, "josé", "2018-11-26T14:47:36+00:00", "1", "crème brûlée")
    ] == outcomes(rows)


def test_explicit_utf8_reads_accents(tmp_path):
    """Non-ASCII text in a UTF-8 file given as utf-8 is not taken as misread."""
    path = tmp_path / "export.csv"
    path.write_bytes(codecs.BOM_UTF8 + (HEADER + "ned,x,1,café\n").encode())

    (row,) = read(path, "utf-8")

    assert "café" == row.project
