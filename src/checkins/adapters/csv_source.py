"""A streaming CSV source of raw check-in rows."""

import codecs
import csv
import hashlib
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from checkins.domain.model import RawRow
from checkins.ports import CheckinSource, SourceError


logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user", "timestamp", "hours", "project")
_SNIFF_BYTES = 64 * 1024
_ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16"}


class CsvFileSource(CheckinSource):
    """Rows of a check-in CSV file, read one record at a time.

    The header names the columns in any order and letter case. Extra columns
    are ignored and listed in `extra_columns`. A record that cannot be split
    into the header's columns comes out as a row with `problem` set, so that it
    is quarantined instead of stopping the load. Without an explicit
    `encoding`, the file is read as UTF-8 (with or without a byte order mark)
    or as UTF-16 when it starts with a UTF-16 byte order mark.
    """

    def __init__(self, path: str | os.PathLike[str], encoding: str | None = None):
        self.path = Path(path)
        self.name = str(path)
        self.encoding = encoding
        self.extra_columns: list[str] = []
        self.blank_lines = 0

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self._open_binary() as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def rows(self) -> Iterator[RawRow]:
        encoding = self.encoding or self._detect_encoding()
        with self._open_binary() as binary:
            text = io.TextIOWrapper(binary, encoding=encoding, newline="")
            yield from self._read(text, encoding)

    def _open_binary(self):
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

    def _detect_encoding(self) -> str:
        with self._open_binary() as file:
            head = file.read(_SNIFF_BYTES)
        if not head:
            raise SourceError(
                f"{self.name}: file is empty, expected a header line "
                f"{','.join(REQUIRED_COLUMNS)}"
            )
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        # A stray NUL byte in a data row only quarantines that row. NUL bytes
        # in the header, or in more than 1% of the first bytes, mean binary.
        nuls = head.count(b"\x00")
        if b"\x00" in head.split(b"\n", 1)[0] or (nuls > 1 and nuls * 100 > len(head)):
            raise SourceError(
                f"{self.name}: binary content (NUL bytes), not a CSV text file"
            )
        return "utf-8-sig"

    def _read(self, text: TextIO, encoding: str) -> Iterator[RawRow]:
        lines = _LineRecorder(text, self.name, encoding)
        reader = csv.reader(lines)
        header = self._read_header(reader, lines)
        columns = [header.index(name) for name in REQUIRED_COLUMNS]
        width = len(header)

        while True:
            line = lines.line_number + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield RawRow(
                    line=line, text=lines.take(), problem=f"invalid CSV: {error}"
                )
                continue
            raw = lines.take()
            if not record or (len(record) == 1 and not record[0].strip()):
                self.blank_lines += 1
                continue
            problem = _shape_problem(record, width)
            if problem:
                yield RawRow(line=line, text=raw, problem=problem)
                continue
            user, timestamp, hours, project = (record[i] for i in columns)
            yield RawRow(line, raw, user, timestamp, hours, project)

    def _read_header(self, reader, lines: "_LineRecorder") -> list[str]:
        try:
            header = next(reader, None)
        except csv.Error as error:
            raise SourceError(f"{self.name}: invalid CSV header: {error}") from None
        lines.take()
        if header is None:
            raise SourceError(
                f"{self.name}: file is empty, expected a header line "
                f"{','.join(REQUIRED_COLUMNS)}"
            )
        names = [name.strip().lstrip("\ufeff").lower() for name in header]
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            raise SourceError(
                f"{self.name}: not a check-in CSV: missing column "
                f"{', '.join(missing)} in header {','.join(header)[:200]!r}; "
                f"expected columns {','.join(REQUIRED_COLUMNS)}"
            )
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise SourceError(
                f"{self.name}: column {', '.join(duplicated)} appears more than "
                "once in the header"
            )
        self.extra_columns = [name for name in names if name not in REQUIRED_COLUMNS]
        if self.extra_columns:
            logger.info(
                "%s: ignoring extra columns %s",
                self.name,
                ", ".join(self.extra_columns),
            )
        return names


def _shape_problem(record: list[str], width: int) -> str | None:
    if len(record) < width:
        return f"expected {width} fields, found {len(record)}"
    # Spreadsheets often end a line with empty trailing fields, which are harmless.
    if len(record) > width and any(field.strip() for field in record[width:]):
        return f"expected {width} fields, found {len(record)}"
    if any("\x00" in field for field in record):
        return "contains a NUL byte"
    return None


class _LineRecorder:
    """Feeds lines to csv.reader and keeps the text of the current record."""

    def __init__(self, text: TextIO, name: str, encoding: str) -> None:
        self._text = text
        self._name = name
        self._encoding = encoding
        self._pending: list[str] = []
        self.line_number = 0

    def __iter__(self) -> "_LineRecorder":
        return self

    def __next__(self) -> str:
        try:
            line = self._text.readline()
        except UnicodeDecodeError as error:
            line = self._first_undecodable_line() or self.line_number + 1
            raise SourceError(
                f"{self._name}: line {line} is not valid "
                f"{_ENCODING_NAMES.get(self._encoding, self._encoding)} text "
                f"({error.reason}); "
                "pass --encoding with the file's encoding, for example cp1251"
            ) from None
        if not line:
            raise StopIteration
        self.line_number += 1
        self._pending.append(line)
        return line

    def _first_undecodable_line(self) -> int | None:
        """Find the line of a decoding error, which the text layer reports per chunk."""
        self._text.buffer.seek(0)
        decoder = codecs.getincrementaldecoder(self._encoding)()
        for number, line in enumerate(self._text.buffer, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
        return None

    def take(self) -> str:
        """Return the raw text read since the last call, without the final newline."""
        text = "".join(self._pending).rstrip("\r\n")
        self._pending.clear()
        return text
