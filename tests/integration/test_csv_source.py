import codecs

import pytest

from checkins.adapters.csv_source import CsvFileSource, _LineRecorder
from checkins.domain.model import RawRow
from checkins.ports import SourceError


HEADER = "user,timestamp,hours,project\n"


def write(tmp_path, content: bytes | str, name: str = "export.csv"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_rows_carry_line_and_text(tmp_path):
    """Each row keeps its starting line number and its raw text."""
    path = write(tmp_path, HEADER + "ned,2018-11-26 14:47:36 UTC,8.0,bizdev\n")

    rows = list(CsvFileSource(path).rows())

    assert [
        RawRow(
            2,
            "ned,2018-11-26 14:47:36 UTC,8.0,bizdev",
            "ned",
            "2018-11-26 14:47:36 UTC",
            "8.0",
            "bizdev",
        )
    ] == rows


def test_bom_and_crlf_are_read(tmp_path):
    """A UTF-8 byte order mark and CRLF line ends are handled."""
    content = (
        codecs.BOM_UTF8
        + (HEADER + "ned,26 ноября 2018 14:47,1,x\n").replace("\n", "\r\n").encode()
    )
    path = write(tmp_path, content)

    (row,) = CsvFileSource(path).rows()

    assert "ned" == row.user
    assert "26 ноября 2018 14:47" == row.timestamp
    assert "x" == row.project
    assert "ned,26 ноября 2018 14:47,1,x" == row.text


def test_utf16_with_bom_is_read(tmp_path):
    """A UTF-16 file with a byte order mark is decoded as such."""
    path = write(tmp_path, (HEADER + "ned,26 ноября 2018 14:47,1,x\n").encode("utf-16"))

    (row,) = CsvFileSource(path).rows()

    assert "26 ноября 2018 14:47" == row.timestamp


def test_header_order_and_case_are_free(tmp_path):
    """Columns are found by name, in any order, case and spacing."""
    path = write(
        tmp_path,
        " Project ,HOURS,User,timestamp,note\nx,2,ned,2018-11-26 14:47 UTC,hi\n",
    )
    source = CsvFileSource(path)

    (row,) = source.rows()

    assert ("ned", "2018-11-26 14:47 UTC", "2", "x") == (
        row.user,
        row.timestamp,
        row.hours,
        row.project,
    )
    assert ["note"] == source.extra_columns


def test_quoted_fields_keep_commas_and_newlines(tmp_path):
    """Quoted fields may contain commas, quotes and line breaks."""
    path = write(
        tmp_path,
        HEADER
        + 'ned,2018-11-26 14:47 UTC,1,"a, ""b""\nc"\narya,2018-11-26 14:47 UTC,2,y\n',
    )

    first, second = CsvFileSource(path).rows()

    assert 'a, "b"\nc' == first.project
    assert 2 == first.line
    assert 'ned,2018-11-26 14:47 UTC,1,"a, ""b""\nc"' == first.text
    assert 4 == second.line


def test_ragged_rows_are_marked(tmp_path):
    """A record with too few or too many fields carries a problem."""
    path = write(tmp_path, HEADER + "ned,2018-11-26 14:47 UTC,1\nned,x,1,p,extra\n")

    short, long = CsvFileSource(path).rows()

    assert "expected 4 fields, found 3" == short.problem
    assert "ned,2018-11-26 14:47 UTC,1" == short.text
    assert "expected 4 fields, found 5" == long.problem


def test_empty_trailing_fields_are_accepted(tmp_path):
    """Empty fields after the last column, as spreadsheets write them, are harmless."""
    path = write(tmp_path, HEADER + "ned,2018-11-26 14:47 UTC,1,x,,\n")

    (row,) = CsvFileSource(path).rows()

    assert row.problem is None
    assert "x" == row.project


def test_blank_lines_are_skipped(tmp_path):
    """Blank lines are counted, not read as rows."""
    path = write(tmp_path, HEADER + "\nned,2018-11-26 14:47 UTC,1,x\n\n")
    source = CsvFileSource(path)

    rows = list(source.rows())

    assert [3] == [row.line for row in rows]
    assert 2 == source.blank_lines


def test_nul_byte_in_row_is_marked(tmp_path):
    """A NUL byte inside a data row makes that row malformed, not the file."""
    path = write(tmp_path, HEADER + "ned,2018-11-26 14:47 UTC,1,x\x00y\n")

    (row,) = CsvFileSource(path).rows()

    assert "contains a NUL byte" == row.problem


ONE_BLANK_LINE = (
    "export.csv: line 1 is blank, but the header user,timestamp,hours,project "
    "must be the first line; remove the blank line before the header"
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"",
            "export.csv: file is empty, expected a header line "
            "user,timestamp,hours,project",
        ),
        (
            b"user,when,hours,project\nned,x,1,y\n",
            "export.csv: not a check-in CSV: missing column timestamp in header "
            "'user,when,hours,project'; expected columns user,timestamp,hours,project",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "export.csv: binary content (NUL bytes), not a CSV text file",
        ),
        (
            b"user,timestamp,hours,project,user\n",
            "export.csv: column user appears more than once in the header",
        ),
        (
            "user,timestamp,hours,project\nned,26 ноября 2018 14:47,1,x\n".encode(
                "cp1251"
            ),
            "export.csv: line 2 is not valid UTF-8 text (invalid continuation byte); "
            "pass --encoding with the file's encoding, for example cp1251",
        ),
        (b"\n" + HEADER.encode(), ONE_BLANK_LINE),
        (b"   \r\n" + HEADER.encode(), ONE_BLANK_LINE),
        (b",,,\n" + HEADER.encode(), ONE_BLANK_LINE),
        # An old Mac file whose only LF ends its last line.
        (
            b"\ruser,timestamp,hours,project\rarya,11/26/2018 10:00 AM,2,bizdev\n",
            ONE_BLANK_LINE,
        ),
        # A header that csv.reader rejects, with a quote that is never closed.
        (b'\n"' + HEADER.encode(), ONE_BLANK_LINE),
        (
            b"\n \t\n, ,\n" + HEADER.encode() + b"ned,2018-11-26 14:47 UTC,1,x\n",
            "export.csv: lines 1 to 3 are blank, but the header "
            "user,timestamp,hours,project must be the first line; remove the "
            "blank lines before the header",
        ),
        # Old Mac line ends, a lone CR.
        (
            b"\r\r" + HEADER.replace("\n", "\r").encode(),
            "export.csv: lines 1 to 2 are blank, but the header "
            "user,timestamp,hours,project must be the first line; remove the "
            "blank lines before the header",
        ),
        (
            b"\n,,\n  \n",
            "export.csv: file has only blank lines, expected a header line "
            "user,timestamp,hours,project",
        ),
    ],
)
def test_unreadable_files_raise(tmp_path, content, message):
    """A file that is not a check-in CSV raises SourceError naming the problem."""
    path = write(tmp_path, content)

    with pytest.raises(SourceError) as raised:
        list(CsvFileSource(path).rows())

    assert message == str(raised.value).replace(str(tmp_path) + "/", "")


def test_cp1251_with_encoding_is_read(tmp_path):
    """A cp1251 file reads correctly when its encoding is given."""
    content = (HEADER + "ned,26 ноября 2018 14:47,1,x\n").encode("cp1251")
    path = write(tmp_path, content)

    (row,) = CsvFileSource(path, encoding="cp1251").rows()

    assert "26 ноября 2018 14:47" == row.timestamp


def test_missing_file_raises(tmp_path):
    """A path that does not exist raises SourceError naming it."""
    source = CsvFileSource(tmp_path / "absent.csv")

    with pytest.raises(SourceError) as raised:
        source.sha256()

    assert f"{tmp_path}/absent.csv: file not found" == str(raised.value)


def test_directory_raises(tmp_path):
    """A folder given as a file raises SourceError naming it."""
    with pytest.raises(SourceError) as raised:
        list(CsvFileSource(tmp_path).rows())

    assert f"{tmp_path}: is a directory, not a CSV file" == str(raised.value)


def test_sha256_of_file(tmp_path):
    """The digest is that of the file's bytes."""
    path = write(tmp_path, HEADER)

    digest = CsvFileSource(path).sha256()

    # sha256 of the header line alone, as printed by `sha256sum`.
    assert "6ec09ca4b3792aa6906b1f70cf04039533c54911de8ada98fb1bcd54d390a0ee" == digest


def test_space_after_closing_quote_is_dropped(tmp_path):
    """Spaces between a closing quote and the next comma are not an error."""
    path = write(tmp_path, HEADER + 'ned, "2018-11-26 14:47 UTC" ,1,x\n')

    (row,) = CsvFileSource(path).rows()

    assert row.problem is None
    assert "2018-11-26 14:47 UTC" == row.timestamp


def test_quote_after_closing_quote_is_marked(tmp_path):
    """A second quoted text after a closing quote makes the record malformed."""
    path = write(tmp_path, HEADER + 'ned,2018-11-26 14:47 UTC,1,"biz" "dev"\n')

    (row,) = CsvFileSource(path).rows()

    assert (
        "text follows the closing quote of a quoted field; a quote inside a "
        'quoted field is written as two quotes ("")'
    ) == row.problem
    assert 'ned,2018-11-26 14:47 UTC,1,"biz" "dev"' == row.text


def test_repeated_extra_column_is_allowed(tmp_path):
    """Only required columns must be unique, and extra ones are all listed."""
    path = write(
        tmp_path,
        "user,timestamp,hours,project,note,note\nned,2018-11-26 14:47 UTC,1,x,a,b\n",
    )
    source = CsvFileSource(path)

    (row,) = source.rows()

    assert "x" == row.project
    assert ["note", "note"] == source.extra_columns


def test_long_header_field_raises(tmp_path):
    """A header field past the CSV field size limit fails the file."""
    path = write(tmp_path, HEADER.rstrip("\n") + "," + "n" * 200_000 + "\n")

    with pytest.raises(SourceError) as raised:
        list(CsvFileSource(path).rows())

    assert (
        f"{path}: invalid CSV header: field 5 is 200,000 characters long, over "
        "the CSV field size limit of 131,072"
    ) == str(raised.value)


def test_quoted_record_across_blocks(tmp_path):
    """A quoted record over two lines reads the same where blocks of lines meet."""
    plain = "ned,2018-11-26 14:47:36 UTC,1,x\n"
    block_lines = _LineRecorder.BLOCK_LINES
    # Line 1 is the header, so the first block contains lines 2 to block_lines + 1
    # and the quoted record starts on its last line.
    content = (
        HEADER
        + plain * (block_lines - 1)
        + 'arya,2018-11-26 14:47:36 UTC,2,"two\nlines"\n'
        + plain
        + "arya,2018-11-26 14:47:36 UTC,3,nul\x00\n"
        + plain * 2
    )
    path = write(tmp_path, content)

    rows = list(CsvFileSource(path).rows())

    quoted_line = block_lines + 1
    assert block_lines + 4 == len(rows)
    assert list(range(2, quoted_line + 1)) == [row.line for row in rows[:block_lines]]
    quoted, after, nul, *rest = rows[block_lines - 1 :]
    assert quoted_line == quoted.line
    assert "two\nlines" == quoted.project
    assert 'arya,2018-11-26 14:47:36 UTC,2,"two\nlines"' == quoted.text
    assert quoted_line + 2 == after.line
    assert "x" == after.project
    assert quoted_line + 3 == nul.line
    assert "contains a NUL byte" == nul.problem
    assert [quoted_line + 4, quoted_line + 5] == [row.line for row in rest]
    assert [None, None] == [row.problem for row in rest]


def test_rows_before_undecodable_line_come_first(tmp_path):
    """Rows before a line that does not decode come out before the error."""
    plain = b"ned,2018-11-26 14:47:36 UTC,1,x\n"
    rows_before = 2 * _LineRecorder.BLOCK_LINES
    path = write(tmp_path, HEADER.encode() + plain * rows_before + b"\xff\n")
    read = []

    with pytest.raises(SourceError, match=f"line {rows_before + 2} is not valid UTF-8"):
        for row in CsvFileSource(path).rows():
            read.append(row.line)

    # The text layer decodes blocks of bytes, so the rows of the last block of
    # bytes before the invalid one do not come out.
    assert len(read) > _LineRecorder.BLOCK_LINES
    assert list(range(2, len(read) + 2)) == read


EXPORT = "user,timestamp,hours,project\nned,2018-11-26 10:00:00 UTC,2,hiring\n"


def cut(path):
    path.write_text("user,timestamp,hours,project\n")


def append(path):
    with path.open("a") as file:
        file.write("bob,2018-11-27 10:00:00 UTC,1,hiring\n")


def replace(path):
    """Put a file of the same content at `path`, as a new inode."""
    path.replace(path.with_name("moved.csv"))
    path.write_text(EXPORT)


@pytest.mark.parametrize("change", [cut, append, replace])
def test_file_changed_after_hashing_is_rejected(tmp_path, change):
    path = write(tmp_path, EXPORT)
    source = CsvFileSource(path)
    source.sha256()
    change(path)

    with pytest.raises(SourceError) as raised:
        list(source.rows())

    assert str(raised.value) == (
        f"{path}: the file changed while it was being read (its size, "
        "modification time or inode differ from when its SHA-256 was taken), "
        "so nothing was stored; load it again once the file is complete"
    )


def test_unchanged_file_reads_after_hashing(tmp_path):
    path = write(tmp_path, EXPORT)
    source = CsvFileSource(path)
    source.sha256()

    assert [row.user for row in source.rows()] == ["ned"]


def test_blank_lines_are_counted_once_per_reading(tmp_path):
    path = write(
        tmp_path,
        "user,timestamp,hours,project\n\nned,2018-11-26 10:00:00 UTC,2,hiring\n",
    )
    source = CsvFileSource(path)
    # The header check reads up to the first row, blank line included.
    next(source.rows())

    rows = list(source.rows())

    assert [row.user for row in rows] == ["ned"]
    assert 1 == source.blank_lines
