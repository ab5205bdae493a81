"""A streaming CSV source of raw check-in rows."""

import codecs
import collections
import csv
import functools
import hashlib
import io
import itertools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from checkins.domain.model import RawRow
from checkins.domain.timestamps import is_russian_month
from checkins.ports import CheckinSource, SourceError


logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user", "timestamp", "hours", "project")
# Lines read after a lone CR in the header to find the rest of the header.
_MAX_HEADER_PIECES = 8

# A check-in record is well under a kilobyte. A longer record comes from a
# quote that is never closed or from a file that is not a check-in export, and
# reading on would hold all of it in memory, so the whole file fails instead.
MAX_RECORD_CHARS = 1024 * 1024

_SNIFF_BYTES = 64 * 1024
_DECODE_BLOCK_BYTES = 64 * 1024

# Byte order marks, each with the encoding that reads the file and the
# encodings that agree with the mark when given explicitly. The UTF-32 LE mark
# starts with the UTF-16 LE one, so UTF-32 is tried first.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32", ("utf-32", "utf-32-le")),
    (codecs.BOM_UTF32_BE, "utf-32", ("utf-32", "utf-32-be")),
    (codecs.BOM_UTF8, "utf-8-sig", ("utf-8", "utf-8-sig")),
    (codecs.BOM_UTF16_LE, "utf-16", ("utf-16", "utf-16-le")),
    (codecs.BOM_UTF16_BE, "utf-16", ("utf-16", "utf-16-be")),
)
_ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-32": "UTF-32"}

_SURROGATE = re.compile("[\ud800-\udfff]")
# Cyrillic letters are bytes 0xC0 to 0xFF in cp1251, which latin-1, cp1252 and
# latin-9 decode as U+00C0 to U+00FF. Three such letters in a row are common in
# Russian read that way and very rare in Western European text.
_LATIN1_LETTER_RUN = re.compile("[\u00c0-\u00ff]{3,}")
# Single-byte encodings of Russian text. Each decodes the bytes of the others
# into Cyrillic letters too, so only the words tell them apart.
_CYRILLIC_ENCODINGS = (
    "cp1251",
    "koi8-r",
    "koi8-u",
    "cp866",
    "iso8859-5",
    "mac-cyrillic",
)
_CYRILLIC_WORD = re.compile("[\u0400-\u04ff]+")

# Problems of records whose quotes are misplaced. Such a record can take in
# the lines of whole records after it.
_UNCLOSED_QUOTE = "a quoted field is not closed before the end of the file"
_TEXT_AFTER_QUOTE = (
    "text follows the closing quote of a quoted field; a quote inside a quoted "
    'field is written as two quotes ("")'
)

# States of the excel dialect's parser, for reading a record that csv.reader
# raised an error on.
_FIELD_START, _IN_FIELD, _IN_QUOTES, _AFTER_QUOTE, _SPACE_AFTER_QUOTE = range(5)


class CsvFileSource(CheckinSource):
    """Rows of a check-in CSV file, read one record at a time.

    The header names the columns in any order, letter case and spacing. Extra
    columns are ignored and listed in `extra_columns`. A record that cannot be
    split into the header's columns comes out as a row with `problem` set, so
    that it is quarantined instead of stopping the load. Records whose fields
    are all blank are skipped and counted in `blank_lines`.

    Without an explicit `encoding`, the file is read as UTF-8, or as UTF-16 or
    UTF-32 when it starts with that byte order mark. With an explicit
    single-byte encoding, a loaded field that reads as UTF-8 or as cp1251
    Russian text misread in that encoding fails the file instead of loading
    garbled text.
    """

    def __init__(self, path: str | os.PathLike[str], encoding: str | None = None):
        self.path = Path(path)
        self.name = str(path)
        self.encoding = encoding
        self.extra_columns: list[str] = []
        self.blank_lines = 0
        self._sha256: str | None = None
        # Inode, size and modification time when the digest was taken.
        self._version: tuple[int, int, int] | None = None

    def sha256(self) -> str:
        # A load asks for the digest more than once, and hashing a large file
        # takes a while, so it is computed once per source.
        if self._sha256 is None:
            digest = hashlib.sha256()
            with self._open_binary() as file:
                self._version = _file_version(file)
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def rows(self) -> Iterator[RawRow]:
        encoding = self._choose_encoding()
        # The header check reads the first rows too, so each reading counts
        # blank lines afresh.
        self.blank_lines = 0
        with (
            self._open_binary() as binary,
            io.TextIOWrapper(binary, encoding=encoding, newline="") as text,
        ):
            yield from self._read(text, encoding)
            self._check_unchanged(binary)

    def _check_unchanged(self, binary: BinaryIO) -> None:
        """Raise SourceError when the file read differs from the one hashed.

        A load is recorded under the file's SHA-256, so rows read from a file
        that was rewritten, cut or replaced since then would be stored under
        the digest of other content.
        """
        if self._version is not None and _file_version(binary) != self._version:
            raise SourceError(
                f"{self.name}: the file changed while it was being read (its "
                "size, modification time or inode differ from when its SHA-256 "
                "was taken), so nothing was stored; load it again once the "
                "file is complete"
            )

    def _open_binary(self) -> BinaryIO:
        # A load reads the file more than once (digest, header check, rows),
        # which a pipe or a device cannot replay.
        if self.path.exists() and not self.path.is_file() and not self.path.is_dir():
            raise SourceError(
                f"{self.name}: not a regular file (a pipe or a device); save the "
                "export to a file and load that"
            )
        try:
            return self.path.open("rb")
        except FileNotFoundError:
            raise SourceError(f"{self.name}: file not found") from None
        except IsADirectoryError:
            raise SourceError(f"{self.name}: is a directory, not a CSV file") from None
        except PermissionError:
            raise SourceError(f"{self.name}: permission denied") from None
        except OSError as error:
            raise SourceError(f"{self.name}: cannot open: {error.strerror}") from None

    def _choose_encoding(self) -> str:
        """Return the codec to read the file with, or raise SourceError."""
        if self.encoding is not None:
            self._check_encoding_name(self.encoding)
        with self._open_binary() as file:
            head = file.read(_SNIFF_BYTES)
        if not head:
            raise SourceError(
                f"{self.name}: file is empty, expected a header line "
                f"{','.join(REQUIRED_COLUMNS)}"
            )
        mark = next(
            (entry for entry in _BYTE_ORDER_MARKS if head.startswith(entry[0])), None
        )
        if self.encoding is not None:
            return self._agree_with_mark(self.encoding, mark, head)
        if mark is not None:
            return mark[1]
        self._reject_binary(head)
        return "utf-8-sig"

    def _check_encoding_name(self, encoding: str) -> None:
        examples = "such as utf-8, utf-16 or cp1251"
        try:
            codecs.lookup(encoding)
        except (LookupError, ValueError):
            raise SourceError(
                f"{self.name}: unknown encoding {encoding!r}; pass --encoding with "
                f"an encoding name Python knows, {examples}"
            ) from None
        try:
            with io.TextIOWrapper(io.BytesIO(), encoding=encoding):
                pass
            # The "undefined" codec passes the check above but raises on any
            # input, even none.
            codecs.getincrementaldecoder(encoding)().decode(b"")
        except (LookupError, UnicodeError):
            raise SourceError(
                f"{self.name}: {encoding!r} is not a text encoding; pass --encoding "
                f"with a text encoding, {examples}"
            ) from None

    def _agree_with_mark(
        self,
        encoding: str,
        mark: tuple[bytes, str, tuple[str, ...]] | None,
        head: bytes,
    ) -> str:
        """Return the codec for an explicit `encoding`, checked against the mark."""
        codec = codecs.lookup(encoding).name
        if mark is None and codec in ("utf-16", "utf-32"):
            # These codecs read the byte order from the mark and raise without it.
            suggestion = _utf16_without_mark(head) or f"{codec}-le or {codec}-be"
            raise SourceError(
                f"{self.name}: --encoding {encoding} needs a byte order mark, but "
                f"the file does not start with one; pass --encoding {suggestion}"
            )
        if mark is None:
            return encoding
        _, marked_encoding, agreeing = mark
        if codec in agreeing:
            # The marked codec drops the mark, which would otherwise start the
            # first column name.
            return marked_encoding
        marked_name = _ENCODING_NAMES[marked_encoding]
        raise SourceError(
            f"{self.name}: file starts with a {marked_name} byte order mark, but "
            f"--encoding {encoding} was given; leave out --encoding to read it as "
            f"{marked_name}"
        )

    def _reject_binary(self, head: bytes) -> None:
        # A stray NUL byte in a data row only quarantines that row. NUL bytes
        # in the header, or in more than 1% of the first bytes, mean binary.
        nuls = head.count(b"\x00")
        if b"\x00" in head.split(b"\n", 1)[0] or (nuls > 1 and nuls * 100 > len(head)):
            utf16 = _utf16_without_mark(head)
            if utf16 is not None:
                raise SourceError(
                    f"{self.name}: file looks like {utf16} text without a byte "
                    f"order mark; pass --encoding {utf16}"
                )
            raise SourceError(
                f"{self.name}: binary content (NUL bytes), not a CSV text file"
            )

    def _read(self, text: TextIO, encoding: str) -> Iterator[RawRow]:
        if self.encoding is not None:
            decode_fix = "pass --encoding with the encoding the file was saved in"
        elif encoding in ("utf-16", "utf-32"):
            decode_fix = (
                f"the file starts with a {_ENCODING_NAMES[encoding]} byte order "
                "mark, so it is damaged; export it again"
            )
        else:
            decode_fix = "pass --encoding with the file's encoding, for example cp1251"
        lines = _LineRecorder(
            text,
            self.name,
            encoding,
            self.encoding or _ENCODING_NAMES.get(encoding, encoding),
            decode_fix,
        )
        # With strict=True, csv.reader raises on text after a closing quote and
        # on a quote left open at the end of the file, which it would otherwise
        # read as data, and _split_record then reads the record. With
        # skipinitialspace=True, `a, "b, c"` is two fields.
        reader = csv.reader(lines, strict=True, skipinitialspace=True)
        header = self._read_header(reader, lines)
        user_at, timestamp_at, hours_at, project_at = (
            header.index(name) for name in REQUIRED_COLUMNS
        )
        columns = (user_at, timestamp_at, hours_at, project_at)
        width = len(header)
        lines.record_commas = width - 1
        while block := lines.read_block():
            if _is_plain(block):
                yield from self._plain_rows(
                    block, lines.line_number + 1, columns, width
                )
                lines.line_number += len(block)
            else:
                lines.push_back(block)
                yield from self._careful_rows(reader, lines, columns, width)

    def _plain_rows(
        self,
        block: list[str],
        first_line: int,
        columns: tuple[int, int, int, int],
        width: int,
    ) -> Iterator[RawRow]:
        """Read the rows of a block of lines that _is_plain accepted.

        Such a block has no quotes, so each line is one record and its text is
        the line without its line break.
        """
        user_at, timestamp_at, hours_at, project_at = columns
        check_misread = self.encoding is not None
        # tuple.__new__ builds the row in C, and RawRow's own constructor is
        # a Python function.
        new_row = tuple.__new__
        reader = csv.reader(block, strict=True, skipinitialspace=True)
        for line, (text, record) in enumerate(
            zip(block, reader, strict=True), start=first_line
        ):
            raw = text.rstrip("\r\n")
            if len(record) != width or not record[0].strip():
                if _is_blank(record):
                    self.blank_lines += 1
                    continue
                problem = _shape_problem(record, width, raw)
                if problem:
                    yield RawRow(line=line, text=raw, problem=problem)
                    continue
            fields = (
                record[user_at],
                record[timestamp_at],
                record[hours_at],
                record[project_at],
            )
            if check_misread and not raw.isascii():
                self._reject_misread(line, fields)
            yield new_row(RawRow, (line, raw, *fields, None))

    def _careful_rows(
        self,
        reader: Iterator[list[str]],
        lines: "_LineRecorder",
        columns: tuple[int, int, int, int],
        width: int,
    ) -> Iterator[RawRow]:
        """Read records one at a time until the lines pushed back are used up.

        This path handles quotes, records over several lines, NUL bytes, lone
        surrogates, over-long lines and records that csv.reader rejects.
        """
        user_at, timestamp_at, hours_at, project_at = columns
        check_misread = self.encoding is not None
        while lines.has_pushed_back():
            line = lines.line_number + 1
            try:
                record = next(reader)
                raw = lines.take()
                problem = None
            except StopIteration:
                return
            except csv.Error:
                lines.read_rest_of_record()
                raw = lines.take()
                record, problem = _split_record(raw)
            # A record over several lines whose later lines would be records
            # of their own comes from misplaced quotes, closed or not, and
            # reading it as one record would hide those rows.
            if lines.line_number > line:
                taken_in = _records_after_first_line(raw, width, lines.line_break)
                if taken_in:
                    raise self._taken_in_error(line, problem, taken_in) from None
            if problem is None:
                if _is_blank(record):
                    self.blank_lines += 1
                    continue
                problem = _shape_problem(record, width, raw)
            if problem:
                yield RawRow(line=line, text=raw, problem=problem)
                continue
            user = record[user_at]
            timestamp = record[timestamp_at]
            hours = record[hours_at]
            project = record[project_at]
            if check_misread and not raw.isascii():
                self._reject_misread(line, (user, timestamp, hours, project))
            yield RawRow(line, raw, user, timestamp, hours, project)

    def _taken_in_error(
        self, line: int, problem: str | None, taken_in: int
    ) -> SourceError:
        """Describe a record on `line` that takes in whole records."""
        if taken_in == 1:
            records = "a line after it that would be a record of its own"
        else:
            records = f"{taken_in:,} lines after it that would be records of their own"
        problem = problem or "a quoted field spans several lines"
        return SourceError(
            f"{self.name}: line {line}: {problem}, and the record takes in "
            f"{records}; check the quotes from line {line} on, then load the file "
            "again"
        )

    def _read_header(
        self, reader: Iterator[list[str]], lines: "_LineRecorder"
    ) -> list[str]:
        try:
            header = next(reader, None)
            lines.take()
        except csv.Error:
            lines.read_rest_of_record()
            header, problem = _split_record(lines.take())
            if problem:
                raise SourceError(
                    f"{self.name}: invalid CSV header: {problem}"
                ) from None
        if header is None:
            raise SourceError(
                f"{self.name}: file is empty, expected a header line "
                f"{','.join(REQUIRED_COLUMNS)}"
            )
        if _is_blank(header):
            raise self._blank_start_error(reader, lines)

        names = [name.lstrip("\ufeff").strip().lower() for name in header]
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            raise SourceError(
                f"{self.name}: not a check-in CSV: missing column "
                f"{', '.join(missing)} in header {','.join(header)[:200]!r}; "
                f"expected columns {','.join(REQUIRED_COLUMNS)}"
            )
        duplicated = [name for name in REQUIRED_COLUMNS if names.count(name) > 1]
        if duplicated:
            raise SourceError(
                f"{self.name}: column {', '.join(duplicated)} appears more than "
                "once in the header"
            )

        # Spreadsheets end the header with empty names for columns that were
        # only formatted. Those columns count as past the end of the header.
        while not names[-1]:
            names.pop()

        extra_columns = [
            name or f"column {number}"
            for number, name in enumerate(names, start=1)
            if name not in REQUIRED_COLUMNS
        ]
        # A load reads the header twice, once to check it and once to load, so
        # only the first reading logs.
        if extra_columns and extra_columns != self.extra_columns:
            logger.info(
                "%s: ignoring extra columns %s",
                self.name,
                ", ".join(extra_columns),
            )
        self.extra_columns = extra_columns
        return names

    def _blank_start_error(
        self, reader: Iterator[list[str]], lines: "_LineRecorder"
    ) -> SourceError:
        """Describe a file whose first line, where the header belongs, is blank.

        The lines are blank when they are empty or contain only white space
        and commas. Reading stops at the first line that is not blank.
        """
        last_blank = lines.line_number
        try:
            while (record := next(reader, None)) is not None and _is_blank(record):
                last_blank = lines.line_number
            finished = record is None
        except csv.Error:
            # A record that csv.reader rejects counts as a line that is not blank.
            finished = False
        expected = ",".join(REQUIRED_COLUMNS)
        if finished:
            return SourceError(
                f"{self.name}: file has only blank lines, expected a header line "
                f"{expected}"
            )
        if last_blank == 1:
            blank, remove = "line 1 is blank", "the blank line"
        else:
            blank, remove = f"lines 1 to {last_blank} are blank", "the blank lines"
        return SourceError(
            f"{self.name}: {blank}, but the header {expected} must be the first "
            f"line; remove {remove} before the header"
        )

    def _reject_misread(self, line: int, fields: Sequence[str]) -> None:
        """Raise SourceError when a field is text of another encoding misread."""
        for field in fields:
            misread = _misread_as(field, self.encoding)
            if misread is None:
                continue
            actual, reread = misread
            raise SourceError(
                f"{self.name}: line {line}: {_preview(field)} reads as "
                f"{_preview(reread)} in {actual}, so the file is not "
                f"{self.encoding} text; pass --encoding {actual}"
            )


def _file_version(file: BinaryIO) -> tuple[int, int, int]:
    status = os.fstat(file.fileno())
    return status.st_ino, status.st_size, status.st_mtime_ns


def _utf16_without_mark(head: bytes) -> str | None:
    """Return the codec of a header in UTF-16 without a byte order mark, or None."""
    sample = head[: min(len(head), 40) // 2 * 2]
    if len(sample) < 4:
        return None
    low, high = sample[0::2], sample[1::2]
    if not high.strip(b"\x00") and b"\x00" not in low:
        return "utf-16-le"
    if not low.strip(b"\x00") and b"\x00" not in high:
        return "utf-16-be"
    return None


def _misread_as(field: str, encoding: str) -> tuple[str, str] | None:
    """Return the encoding `field` was written in and its text in it, if misread.

    Only fields that `encoding` decoded one byte per character are checked.
    UTF-8 is detected by its byte patterns, which single-byte text almost never
    forms. A field with no Russian month name that has one in another Cyrillic
    encoding, such as cp1251 read as koi8-r, is text of that encoding. Other
    Russian cp1251 text is detected by runs of letters that latin-1, cp1252 or
    latin-9 decoded from the bytes of Cyrillic letters.

    NOTE: Russian text without a month name, read in the wrong Cyrillic
    encoding, is not detected, because only month names tell these apart.
    Nor are encodings in which the months read the same, such as cp1251 and
    mac-cyrillic, whose lower-case letters agree.
    """
    if field.isascii():
        return None
    try:
        data = field.encode(encoding)
    except UnicodeError:
        return None
    if len(data) != len(field):
        return None
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    reread = _month_in_other_cyrillic(field, data, encoding)
    if reread is not None:
        return reread
    for run in _LATIN1_LETTER_RUN.finditer(field):
        if all(byte >= 0xC0 for byte in data[run.start() : run.end()]):
            return "cp1251", data.decode("cp1251", errors="replace")
    return None


def _month_in_other_cyrillic(
    field: str, data: bytes, encoding: str
) -> tuple[str, str] | None:
    """Return a Cyrillic encoding in which `data` names a Russian month, and its text.

    Returns None when `field`, the text of `data` in `encoding`, names a month
    itself.
    """
    if any(map(is_russian_month, _CYRILLIC_WORD.findall(field))):
        return None
    given_codec = codecs.lookup(encoding).name
    for candidate in _CYRILLIC_ENCODINGS:
        if codecs.lookup(candidate).name == given_codec:
            continue
        try:
            text = data.decode(candidate)
        except UnicodeDecodeError:
            continue
        if any(map(is_russian_month, _CYRILLIC_WORD.findall(text))):
            return candidate, text
    return None


def _preview(text: str) -> str:
    if len(text) > 60:
        return repr(text[:60]) + "..."
    return repr(text)


def _split_record(text: str) -> tuple[list[str], str | None]:
    """Split the text of a record that csv.reader raised an error on.

    The fields are those csv.reader reads with skipinitialspace and without
    strict, except that spaces and tabs after a closing quote are dropped.
    Returns the fields and the problem that makes the record unusable, or None.
    """
    if not text:
        return [], None
    fields: list[str] = []
    field: list[str] = []
    problem = None
    state = _FIELD_START
    for char in text:
        if state == _IN_QUOTES:
            if char == '"':
                state = _AFTER_QUOTE
            else:
                field.append(char)
        elif state == _AFTER_QUOTE and char == '"':
            field.append(char)
            state = _IN_QUOTES
        elif char == ",":
            fields.append("".join(field))
            field = []
            state = _FIELD_START
        elif state == _FIELD_START and char == '"':
            state = _IN_QUOTES
        elif state == _FIELD_START and char == " ":
            pass
        elif state in (_AFTER_QUOTE, _SPACE_AFTER_QUOTE) and char in " \t":
            state = _SPACE_AFTER_QUOTE
        else:
            if state in (_AFTER_QUOTE, _SPACE_AFTER_QUOTE) and problem is None:
                problem = _TEXT_AFTER_QUOTE
            field.append(char)
            state = _IN_FIELD
    fields.append("".join(field))
    if state == _IN_QUOTES:
        problem = _UNCLOSED_QUOTE
    return fields, problem or _long_field_problem(fields)


def _records_after_first_line(text: str, width: int, line_break: str) -> int:
    """Count the lines of `text` after its first with `width` fields or more."""
    return sum(
        len(_split_record(line)[0]) >= width for line in text.split(line_break)[1:]
    )


def _long_field_problem(fields: list[str]) -> str | None:
    """Describe the first field longer than csv.reader accepts, if any."""
    limit = csv.field_size_limit()
    for number, field in enumerate(fields, start=1):
        if len(field) > limit:
            return (
                f"field {number} is {len(field):,} characters long, over the CSV "
                f"field size limit of {limit:,}"
            )
    return None


def _is_blank(record: list[str]) -> bool:
    # The first field decides for almost every record, so it is tested alone.
    if record and record[0].strip():
        return False
    return all(not field.strip() for field in record)


def _shape_problem(record: list[str], width: int, text: str) -> str | None:
    if len(record) < width:
        return f"expected {width} fields, found {len(record)}"
    # Spreadsheets often end a line with empty trailing fields, which are harmless.
    if len(record) > width and any(field.strip() for field in record[width:]):
        return f"expected {width} fields, found {len(record)}"
    # A NUL byte can only be inside a field, so searching the whole text suffices.
    if "\x00" in text:
        return "contains a NUL byte"
    return None


def _is_plain(block: list[str]) -> bool:
    """Return whether every line of `block` is one record csv.reader accepts.

    Without quotes no record spans lines, and csv.reader, given lines split at
    line breaks, raises only on a field over its size limit. Blocks with NUL
    bytes or lone surrogates take the careful path, which reports them.
    """
    text = "".join(block)
    if '"' in text or "\x00" in text:
        return False
    # csv.reader raises on a CR inside an unquoted field.
    if "\r" in text and any("\r" in line.rstrip("\r\n") for line in block):
        return False
    if not text.isascii() and _SURROGATE.search(text):
        return False
    return max(map(len, block)) <= min(csv.field_size_limit(), MAX_RECORD_CHARS)


def _quote_state(text: str, state: int = _FIELD_START) -> int:
    """Return the excel dialect parser's state after reading `text`.

    It follows csv.reader with skipinitialspace and without strict. A record
    goes on to the next line while the state at the end of a line is
    _IN_QUOTES.
    """
    for char in text:
        if state == _IN_QUOTES:
            if char == '"':
                state = _AFTER_QUOTE
        elif state == _AFTER_QUOTE:
            if char == '"':
                state = _IN_QUOTES
            elif char in ",\r\n":
                state = _FIELD_START
            else:
                state = _IN_FIELD
        elif state == _FIELD_START:
            if char == '"':
                state = _IN_QUOTES
            elif char not in " ,\r\n":
                state = _IN_FIELD
        elif char in ",\r\n":
            state = _FIELD_START
    return state


class _LineRecorder:
    """Feeds lines to csv.reader and keeps the text of the current record.

    Lines also come out in blocks, for the plain path that reads a block
    without quotes with a csv.reader of its own. A block that needs the careful
    path is pushed back and read line by line. Raises SourceError when a line
    does not decode, or when a record grows past MAX_RECORD_CHARS.
    """

    BLOCK_LINES = 4096

    def __init__(
        self,
        text: TextIO,
        name: str,
        encoding: str,
        encoding_name: str,
        decode_fix: str,
    ) -> None:
        self._text = text
        self._name = name
        self._encoding = encoding
        self._encoding_name = encoding_name
        self._decode_fix = decode_fix
        self._pending: list[str] = []
        self._pending_chars = 0
        self._pushed_back: collections.deque[str] = collections.deque()
        self._read_error: UnicodeError | None = None
        # Whether a lone CR ends a line, as in old Mac files: decided by the
        # first line, None until it is read.
        self._lone_cr_ends_line: bool | None = None
        # Commas in a whole record: those of the first line until the header
        # is parsed, then one fewer than its columns.
        self.record_commas = 0
        # Lines longer than MAX_RECORD_CHARS come out cut after one more
        # character, so that memory stays bounded.
        self._lines = iter(functools.partial(text.readline, MAX_RECORD_CHARS + 1), "")
        self.line_number = 0

    def __iter__(self) -> "_LineRecorder":
        return self

    def __next__(self) -> str:
        line = self._read_line()
        if not line:
            raise StopIteration
        return line

    def read_block(self) -> list[str]:
        """Read the next lines, up to BLOCK_LINES of them, without counting them.

        The block ends after the first line over MAX_RECORD_CHARS, which the
        careful path reports when it reaches it. A line that does not decode
        ends the block too, and the error is raised when reading reaches that
        line, so that the rows before it come out first as they would line by
        line.
        """
        if self._read_error is not None:
            raise self._decode_error(self._read_error)
        # Lines pushed back while the header was read come first.
        block: list[str] = list(self._pushed_back)
        self._pushed_back.clear()
        try:
            # list.extend keeps the lines read before an error.
            block.extend(itertools.islice(self._lines, self.BLOCK_LINES - len(block)))
            if not self._lone_cr_ends_line and block:
                block = self._join_lone_cr(block)
        except UnicodeError as error:
            self._read_error = error
            if not block:
                raise self._decode_error(error) from None
        if block and max(map(len, block)) > MAX_RECORD_CHARS:
            long_at = next(
                index
                for index, line in enumerate(block)
                if len(line) > MAX_RECORD_CHARS
            )
            del block[long_at + 1 :]
        return block

    def push_back(self, block: list[str]) -> None:
        """Make `block`, from read_block, the next lines that csv.reader reads."""
        self._pushed_back.extend(block)

    def has_pushed_back(self) -> bool:
        return bool(self._pushed_back)

    def _read_line(self) -> str:
        """Read one line into the current record, or return "" at the end."""
        allowed = MAX_RECORD_CHARS - self._pending_chars
        if self._pushed_back:
            # The line was read with the limit of a record's first line. Cut
            # at MAX_RECORD_CHARS + 1, it is still longer than `allowed`
            # exactly when the whole line is.
            line = self._pushed_back.popleft()
        elif self._read_error is not None:
            raise self._decode_error(self._read_error)
        else:
            try:
                line = self._readline(allowed + 1)
            except UnicodeError as error:
                raise self._decode_error(error) from None
        if len(line) > allowed:
            raise SourceError(self._too_long_message())
        if line:
            self.line_number += 1
            self._pending.append(line)
            self._pending_chars += len(line)
        return line

    def _join_lone_cr(self, block: list[str]) -> list[str]:
        """Join each line of `block` ending with a lone CR to the rest of its record."""
        if not any(line[-1] == "\r" for line in block):
            return block
        joined: list[str] = []
        for line in block:
            if joined and joined[-1][-1] == "\r" and self._continues(joined[-1], line):
                joined[-1] += line
            else:
                joined.append(line)
        while joined[-1][-1] == "\r" and len(joined[-1]) <= MAX_RECORD_CHARS:
            line = self._text.readline(MAX_RECORD_CHARS + 1)
            if not line:
                break
            if self._continues(joined[-1], line):
                joined[-1] += line
            else:
                joined.append(line)
        return joined

    def _readline(self, limit: int) -> str:
        """Read a line of at most `limit` characters, with its line break.

        The text layer ends lines at LF, CR LF and a lone CR. In a file whose
        first line ends with LF, a lone CR joins the text before and after it
        into one record, here and in `read_block`, unless `_continues` finds a
        record ending at the CR. The record then keeps the CR, which cleaning
        treats as white space inside a name. Two whole records stay apart, as
        in a file whose lines end with LF and with lone CRs.
        """
        line = self._text.readline(limit)
        if self._lone_cr_ends_line is None:
            # A blank first line is never joined, so that it fails as one.
            if line.endswith("\r") and line.strip() and not _names_every_column(line):
                line = self._join_stray_header_crs(line, limit)
            if line:
                self._lone_cr_ends_line = not line.endswith("\n")
                self.record_commas = line.count(",")
            return line
        while not self._lone_cr_ends_line and line.endswith("\r") and len(line) < limit:
            rest = self._text.readline(MAX_RECORD_CHARS + 1)
            if not rest:
                break
            if not self._continues(line, rest):
                self._pushed_back.appendleft(rest)
                break
            line += rest
        return line

    def _join_stray_header_crs(self, line: str, limit: int) -> str:
        """Return the header `line` with the text after its stray lone CRs.

        A header that ends with a lone CR before naming every column has a
        stray CR when the text after it, up to a line ending with LF or to the
        missing names, completes it. Otherwise the CR ends the first line of an
        old Mac file, and the text read after it is pushed back.
        """
        header = line
        pieces = []
        while len(header) < limit and len(pieces) < _MAX_HEADER_PIECES:
            rest = self._text.readline(MAX_RECORD_CHARS + 1)
            if not rest:
                break
            pieces.append(rest)
            header += rest
            if not header.endswith("\r") or _names_every_column(header):
                break
        if header.endswith("\n") or _names_every_column(header):
            return header
        self._pushed_back.extendleft(reversed(pieces))
        return line

    @property
    def line_break(self) -> str:
        """Return the character that ends the file's lines: a lone CR or LF."""
        return "\r" if self._lone_cr_ends_line else "\n"

    def _continues(self, before: str, after: str) -> bool:
        """Return whether text before and after a lone CR are one record.

        When the text before has a whole record's commas, the CR ends that
        record unless the text after has no comma. Text without a comma is
        the rest of the last field. Text with commas starts the next record,
        which another lone CR may split.
        """
        return before.count(",") < self.record_commas or "," not in after

    def _decode_error(self, error: UnicodeError) -> SourceError:
        """Describe a text that does not decode, naming its line when known."""
        if isinstance(error, UnicodeDecodeError):
            bad_line = _first_undecodable_line(self._text.buffer, self._encoding)
            return SourceError(
                f"{self._name}: line {bad_line or self.line_number + 1} is not valid "
                f"{self._encoding_name} text ({error.reason}); {self._decode_fix}"
            )
        # Codecs such as punycode raise the base class, with no position.
        return SourceError(
            f"{self._name}: line {self.line_number + 1} or a later one is not "
            f"valid {self._encoding_name} text ({error}); {self._decode_fix}"
        )

    def _too_long_message(self) -> str:
        start = self.line_number - len(self._pending) + 1
        if not self._pending:
            return (
                f"{self._name}: line {start} is longer than {MAX_RECORD_CHARS:,} "
                "characters, too long for a check-in record; remove that line "
                "or check that the file is a check-in CSV export"
            )
        return (
            f"{self._name}: the record that starts on line {start} is longer than "
            f"{MAX_RECORD_CHARS:,} characters, which happens when a quote is "
            f"never closed; check the quotes from line {start} on"
        )

    def read_rest_of_record(self) -> None:
        """Read the rest of a record that csv.reader stopped in after an error.

        csv.reader starts afresh on the next line, which would read the rest of
        a quoted field that spans lines as new records.
        """
        state = _quote_state("".join(self._pending))
        while state == _IN_QUOTES:
            line = self._read_line()
            if not line:
                return
            state = _quote_state(line, state)

    def take(self) -> str:
        """Return the raw text read since the last call, without the final newline."""
        text = "".join(self._pending).rstrip("\r\n")
        self._pending.clear()
        self._pending_chars = 0
        # Strict UTF decoders never yield lone surrogates, but codecs such as
        # utf-7 can, and PostgreSQL cannot store them.
        if not text.isascii() and _SURROGATE.search(text):
            raise SourceError(
                f"{self._name}: line {self.line_number} is not valid "
                f"{self._encoding_name} text (lone surrogate); {self._decode_fix}"
            )
        return text


def _names_every_column(text: str) -> bool:
    """Return whether `text`, read as a header line, names every required column.

    A lone CR inside `text` is white space, as it is inside a record.
    """
    try:
        fields = next(csv.reader([text.rstrip("\r\n").replace("\r", " ")]), [])
    except csv.Error:
        return False
    names = {name.lstrip("\ufeff").strip().lower() for name in fields}
    return all(name in names for name in REQUIRED_COLUMNS)


def _first_undecodable_line(binary: BinaryIO, encoding: str) -> int | None:
    """Return the line of the first byte that `encoding` cannot decode.

    The text layer decodes a block at a time, so its error does not tell the
    line. Lines end at LF, CR LF or a lone CR, as csv.reader counts them.
    """
    binary.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    counter = _LineCounter()
    while block := binary.read(_DECODE_BLOCK_BYTES):
        state = decoder.getstate()
        try:
            counter.add(decoder.decode(block))
            continue
        except UnicodeError:
            decoder.setstate(state)
        for index in range(len(block)):
            try:
                counter.add(decoder.decode(block[index : index + 1]))
            except UnicodeError:
                return counter.line
    try:
        decoder.decode(b"", final=True)
    except UnicodeError:
        return counter.line
    return None


class _LineCounter:
    """Line number reached in text fed piece by piece."""

    def __init__(self) -> None:
        self.line = 1
        self._ends_with_cr = False

    def add(self, text: str) -> None:
        if not text:
            return
        breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
        if self._ends_with_cr and text.startswith("\n"):
            breaks -= 1
        self.line += breaks
        self._ends_with_cr = text.endswith("\r")
