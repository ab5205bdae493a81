"""Property-based tests of cleaning, timestamp parsing and the CSV source."""

import codecs
import datetime as dt
import encodings
import pkgutil
import warnings
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkins.adapters.csv_source import CsvFileSource
from checkins.domain.cleaning import clean
from checkins.domain.model import CheckIn, Quarantined, RawRow
from checkins.domain.timestamps import TimestampError, parse_timestamp
from checkins.ports import SourceError


# Modest example counts keep the whole module to a few seconds. Deadline is
# off because the first call of a parser pays for regex compilation, and
# derandomize makes every run try the same examples, so a run never fails by
# chance.
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)

GENITIVE_MONTHS = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
]
ODD_VALUES = [
    "",
    " ",
    "\t\r\n",
    "\x00",
    "\u00a0",
    "\u2028",
    "NaN",
    "-nan",
    "sNaN",
    "Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "0",
    "-0",
    "24",
    "24.000000001",
    "7,5",
    "1,5,5",
    "9" * 400,
    "٣",
]

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
# Hypothesis takes naive bounds and attaches a zone drawn from `timezones`.
aware_datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2100, 12, 31, 23, 59, 59, 999999),  # noqa: DTZ001
    timezones=offsets,
)


def column(valid: list[str]) -> st.SearchStrategy[str]:
    """Return values of one column: valid ones, odd ones or any text."""
    return st.one_of(
        st.sampled_from(valid), st.sampled_from(ODD_VALUES), st.text(max_size=30)
    )


raw_fields = st.tuples(
    column(["ned", " Ned ", "ARYA", "İstanbul", "ß"]),
    column(
        [
            "2018-11-26 14:47:36.0429 UTC",
            "2018-11-26 14:47 UTC",
            "2018-11-26T22:47:36+08:00",
            "11/26/2018 12:00 AM",
            "11/26/2018 2:47 PM",
            "26 ноября 2018 14:47",
            "1 мая 2018 9:05",
        ]
    ),
    column(["8", "0.5", "24", "7,5", " 3 ", "1E1"]),
    column(["bizdev", " BizDev ", "hirng", "opsandadmin"]),
    st.one_of(st.none(), st.text(min_size=1, max_size=20)),
)


def raw_row(line: int, fields: tuple) -> RawRow:
    user, timestamp, hours, project, problem = fields
    text = ",".join((user, timestamp, hours, project))
    if problem is not None:
        return RawRow(line=line, text=text, problem=problem)
    return RawRow(line, text, user, timestamp, hours, project)


@PROPERTY_SETTINGS
@given(st.lists(raw_fields, max_size=25))
def test_clean_gives_one_outcome_per_row(fields):
    """Every row comes out once, in order, loaded valid or quarantined whole."""
    rows = [raw_row(line, row) for line, row in enumerate(fields, start=2)]

    outcomes = list(clean(rows))

    assert len(rows) == len(outcomes)
    assert [row.line for row in rows] == [outcome.line for outcome in outcomes]
    for row, outcome in zip(rows, outcomes, strict=True):
        assert isinstance(outcome, CheckIn | Quarantined)
        if isinstance(outcome, Quarantined):
            assert row.text == outcome.text
            continue
        assert Decimal(0) < outcome.hours
        assert Decimal(24) >= outcome.hours
        for name in (outcome.user, outcome.project):
            assert "" != name
            assert name.strip() == name
            assert name.lower() == name
        assert dt.timedelta(0) == outcome.checkin_at.utcoffset()


def minute_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(second=0, microsecond=0)


@PROPERTY_SETTINGS
@given(aware_datetimes, st.integers(min_value=0, max_value=6))
def test_iso_utc_stamp_round_trips(moment, digits):
    """An export-style ISO stamp with 0 to 6 fraction digits parses back."""
    instant = moment.astimezone(dt.UTC)
    fraction = f"{instant.microsecond:06d}"[:digits]
    text = instant.strftime("%Y-%m-%d %H:%M:%S")
    if digits:
        text += "." + fraction
    expected = instant.replace(microsecond=int(fraction.ljust(6, "0")))

    assert expected == parse_timestamp(text + " UTC").instant


@PROPERTY_SETTINGS
@given(aware_datetimes)
def test_iso_t_z_stamp_round_trips(moment):
    """An ISO 8601 stamp with T and Z parses back to the same instant."""
    instant = moment.astimezone(dt.UTC)
    text = instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    assert instant == parse_timestamp(text).instant


@PROPERTY_SETTINGS
@given(aware_datetimes)
def test_offset_stamp_round_trips(moment):
    """An ISO 8601 stamp with a +HH:MM offset parses back to the same instant."""
    offset_minutes = moment.utcoffset() // dt.timedelta(minutes=1)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{hours:02d}:{minutes:02d}"

    assert moment == parse_timestamp(text).instant


@PROPERTY_SETTINGS
@given(aware_datetimes, st.booleans())
def test_us_stamp_round_trips_to_minute(moment, padded):
    """A US 12-hour stamp parses back to the instant's minute."""
    instant = moment.astimezone(dt.UTC)
    hour = instant.hour % 12 or 12
    meridiem = "AM" if instant.hour < 12 else "PM"
    width = 2 if padded else 1
    text = (
        f"{instant.month:0{width}d}/{instant.day:0{width}d}/{instant.year} "
        f"{hour:0{width}d}:{instant.minute:02d} {meridiem}"
    )

    assert minute_of(moment) == parse_timestamp(text).instant


@PROPERTY_SETTINGS
@given(aware_datetimes, st.booleans(), st.booleans())
def test_russian_stamp_round_trips_to_minute(moment, padded, capitalised):
    """A Russian stamp with the month in the genitive parses to the minute."""
    instant = moment.astimezone(dt.UTC)
    month = GENITIVE_MONTHS[instant.month - 1]
    if capitalised:
        month = month.capitalize()
    day = f"{instant.day:02d}" if padded else str(instant.day)
    text = f"{day} {month} {instant.year} {instant.hour:02d}:{instant.minute:02d}"

    assert minute_of(moment) == parse_timestamp(text).instant


stamp_pieces = st.sampled_from(
    list("0123456789-:/ TZtz+.,")
    + ["AM", "PM", "pm", "UTC", "GMT", "г.", "\u00a0", "\n", "٣"]
    + GENITIVE_MONTHS
    + ["Ноября", "май", "брюмера"]
)
stamp_like_texts = st.one_of(
    st.text(), st.lists(stamp_pieces, max_size=30).map("".join)
)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(stamp_like_texts)
def test_parse_timestamp_raises_only_its_error(text):
    """Any text parses to an instant in UTC or raises TimestampError."""
    try:
        parsed = parse_timestamp(text)
    except TimestampError:
        return

    assert dt.timedelta(0) == parsed.instant.utcoffset()


csv_pieces = st.sampled_from(
    [
        b",",
        b'"',
        b'""',
        b"\n",
        b"\r",
        b"\r\n",
        b" ",
        b"\x00",
        b"\xff",
        b"\xd0\xbd",
        b"\xed\xee",
        b"ned",
        b"8",
        b"2018-11-26 14:47:36 UTC",
        b"26 \xd0\xbd\xd0\xbe\xd1\x8f\xd0\xb1\xd1\x80\xd1\x8f 2018 14:47",
    ]
)
# Every codec module of this Python, text codecs or not, as --encoding values.
PYTHON_CODECS = sorted(
    module.name
    for module in pkgutil.iter_modules(encodings.__path__)
    if module.name != "aliases"
)
csv_like_bytes = st.tuples(
    st.sampled_from(
        [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF32_BE, b"\x00"]
    ),
    st.sampled_from([b"user,timestamp,hours,project\n", b'"user", timestamp,hours,']),
    st.lists(csv_pieces, max_size=40).map(b"".join),
).map(b"".join)


# The test writes one file, overwritten by each example, so sharing tmp_path
# between examples is safe.
@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(st.binary(max_size=200), csv_like_bytes),
    st.one_of(st.none(), st.sampled_from(PYTHON_CODECS), st.text(max_size=12)),
)
def test_csv_source_raises_only_source_error(tmp_path, content, encoding):
    """Any bytes give well-formed rows or one SourceError, whatever the encoding."""
    path = tmp_path / "export.csv"
    path.write_bytes(content)

    try:
        # unicode_escape warns about invalid escapes in the data, which the
        # filterwarnings = error setting of pytest would raise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            rows = list(CsvFileSource(path, encoding=encoding).rows())
    except SourceError:
        return

    lines = [row.line for row in rows]
    assert sorted(set(lines)) == lines
    for row in rows:
        assert 2 <= row.line
        assert isinstance(row.text, str)
        if row.problem is not None:
            assert ("", "", "", "") == (row.user, row.timestamp, row.hours, row.project)
            continue
        for field in (row.user, row.timestamp, row.hours, row.project):
            assert isinstance(field, str)
