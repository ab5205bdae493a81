"""Generate synthetic check-in exports with the quirks of a real one.

Usage: ``python bench/generate.py --rows N --seed S --output FILE``, or
``write_checkins(path, rows, seed)`` from Python. The output is a CSV file with
the header ``user,timestamp,hours,project`` and its rows newest first, like the
export. The same row count and seed give the same bytes, because only
``random.Random.random`` draws numbers. The random module's documentation (Notes
on Reproducibility) promises that its sequence for a given seed stays the same
across Python versions.

NOTE: the draws pass through math.log, math.exp and math.cos, which come from
the platform's C library, so another platform may in rare cases round an hours
value differently.

The proportions below were measured on a real export of 20,500 rows from 40
people over about 18 months. Each is given as export / generated, the latter
from 1,000,000 rows with seed 1. No row, user name or run of values of the
export is reused: every value comes from the models in this file.

Stamps, chosen for each row on its own:

- ISO-like ``2018-11-26 14:47:36.0429 UTC``: 90.0% / 90.1% of rows. A batch
  is either a day entry at ``00:00:00`` with no fraction (37.0% / 37.4% of ISO
  rows) or a timed stamp. The fraction of a timed stamp has no trailing zero.
  It has 6, 5, 4 or 3 digits in 65%, 7%, 27% and 0.6% of timed rows in both,
  except 0.5% generated with 3 digits;
- US 12-hour ``11/26/2018 02:47 PM``: 5.0% / 5.0%;
- Russian with the month in the genitive, ``26 ноября 2018 14:47``: 5.0% / 5.0%.

US and Russian rows carry the true instant of their batch at minute
precision, so that the loader can recover the full stamp from an ISO row of the
same batch. Minute-precision rows in a batch without an ISO row keep their
minute: 12.0% / 13.2% of them.

Batches: a batch is one submission of a person, several rows sharing one stamp,
with 2.95 / 3.00 rows on average. People submit one batch on 80% / 80% of their
active days and two on 15% / 15%, on weekdays except for 3.3% / 3.4% of rows,
mostly between 08:00 and 16:00 UTC. A batch of several rows adds up to about a
working day, split in the proportions of typical entries.

People: one per 512 rows (40 in the export), so that each person's volume stays
realistic at any size. Volumes are skewed, from a few rows to about 2.7 times
the mean, and each person works in a window of the 18-month span sized to their
volume, with 60% of them still active at its end.

Hours: 1.0, 0.5 and 2.0 are the most frequent values, 20.6% / 22.9% of rows
have two decimals, and the mean is 2.07 / 1.97 hours. About 1 person in 6
writes two-decimal values such as ``0.45`` on most rows.

Projects: named projects such as ``opsandadmin`` (53.0% / 53.0% of rows) and
numbered ones such as ``project-07``, both Zipf-shaped. The numbered pool grows
with the number of people.

Quirks, each at the export's rate, and at least once in any file of 100 rows or
more so that small files still exercise every cleaning rule:

- batches with an empty user: 2 per 20,500 rows;
- hours of 0: 2 per 20,500 rows; hours over 24: 1 per 20,500 rows;
- project typos: 19 per 20,500 rows. Half of them are misspellings listed in
  the shipped alias table. The other half are new slips in a frequent name (a
  dropped, doubled, swapped or neighbouring-key letter), which no table lists,
  so they load as projects of their own;
- lines identical to another line of the same batch: 2.8% / 3.0% of rows;
- person-days adding up to over 24 hours: 0.63% / 0.65% of person-days;
- batches dated far outside the span: 9 per 20,500 rows, 45% of them up to 13
  months after its end and 55% from 1 month to 8 years before its start.
"""

import argparse
import bisect
import dataclasses
import datetime as dt
import gc
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from checkins.domain.projects import ProjectAliases


logger = logging.getLogger("generate")

HEADER = "user,timestamp,hours,project\n"

ROWS_PER_USER = 512.5
SPAN_START = dt.date(2017, 6, 1)
SPAN_END = dt.date(2018, 11, 30)

US_SHARE = 0.05
RUSSIAN_SHARE = 0.05
DAY_ENTRY_SHARE_MAX = 0.74
# Number of fraction digits of timed ISO stamps and the share of each.
FRACTION_DIGITS = ((6, 0.654), (5, 0.068), (4, 0.272), (3, 0.006))
FRACTION_LEADING_ZERO_SHARE = 0.9
# Share of timed batches in each UTC hour of the day.
HOUR_WEIGHTS = (
    0.4, 0.7, 0.8, 0.3, 0.2, 0.15, 0.25, 1.4, 6.8, 12.4, 24.7, 20.8,
    9.0, 9.6, 10.4, 10.0, 2.1, 1.0, 0.7, 0.3, 0.05, 0.05, 0.4, 0.1,
)  # fmt: skip

BATCH_SIZE_P = 0.35
MAX_BATCH_SIZE = 40
BATCHES_PER_DAY = 1.33
EXTRA_BATCH_CLUSTERING = 0.2
WEEKEND_DAY_SHARE = 0.09
STILL_ACTIVE_SHARE = 0.6

# The drawn total of a batch of several rows: its median grows from 7.4 h for 2
# rows to 9.5 h, and 80% of batches are within 0.68 to 1.47 times it. A day with
# several batches is then scaled down to a drawn day total of median 9 h.
BATCH_HOURS_MEDIAN_BASE = 6.8
BATCH_HOURS_MEDIAN_MAX = 9.5
BATCH_HOURS_SIGMA = 0.3
DAY_HOURS_MEDIAN = 9.0
# The drawn mean of a batch of one row. Capping busy days brings it down to
# about 3.4 h, close to the export's 3.71 h.
SINGLE_ROW_MEAN_HOURS = 4.2
SINGLE_ROW_PRECISE_MEDIAN = 2.4
SINGLE_ROW_PRECISE_SIGMA = 0.9
MAX_ROW_HOURS = 12.0
HALF_HOUR_SHARE = 0.9
PRECISE_USER_SHARE = 0.17
PRECISE_ROW_SHARE = 0.65
QUARTER_HOURS = (
    ("1.0", 220.4), ("0.5", 152.8), ("2.0", 120.0), ("1.5", 91.7),
    ("3.0", 68.2), ("4.0", 44.3), ("2.5", 35.3), ("0.25", 34.2),
    ("5.0", 30.6), ("6.0", 28.0), ("0.75", 27.4), ("7.0", 21.4),
    ("3.5", 19.2), ("8.0", 17.1), ("1.25", 12.5), ("4.5", 11.8),
    ("5.5", 10.3), ("6.5", 7.6), ("7.5", 6.4), ("1.75", 6.3),
    ("2.25", 3.4), ("9.0", 3.3), ("8.5", 2.5), ("10.0", 2.2),
    ("2.75", 2.0), ("3.25", 1.2), ("3.75", 1.0), ("5.25", 1.0),
    ("4.75", 0.8), ("9.5", 0.8), ("4.25", 0.8), ("11.0", 0.8),
    ("7.25", 0.7), ("6.25", 0.6), ("5.75", 0.5), ("12.0", 0.5),
)  # fmt: skip

# Hours rounded to the nearest half or quarter hour, by number of halves or
# quarters; 0 rounds up to 0.25 because a row needs positive hours.
_HALF_HOUR_TEXTS = ["0.25"] + [
    repr(i / 2) for i in range(1, int(MAX_ROW_HOURS * 2) + 1)
]
_QUARTER_HOUR_TEXTS = ["0.25"] + [
    repr(i / 4) for i in range(1, int(MAX_ROW_HOURS * 4) + 1)
]

_QUARTER_MEAN = sum(float(text) * weight for text, weight in QUARTER_HOURS) / sum(
    weight for _, weight in QUARTER_HOURS
)

# The first names are the canonical names of the shipped alias table, so that
# its misspellings have a project to stand for. The rest are generic.
NAMED_PROJECTS = (
    "opsandadmin", "bizdev", "cultureandmanagement", "learning", "website",
    "blogideas", "hiring", "research", "support", "planning", "meetings",
    "engineering", "training", "events", "documentation", "finance",
    "infrastructure", "marketing", "analytics", "security", "mentoring",
    "community", "travel", "design", "partnerships", "onboarding",
    "machinelearning", "legal", "writing", "reviews", "procurement",
    "facilities", "conferences", "accounting", "communications", "sales",
    "testing", "tooling", "strategy", "newsletter",
)  # fmt: skip
NUMBERED_PROJECTS_PER_USER = 75 / 40
NUMBERED_PROJECT_WINDOW = 75

EMPTY_USER_BATCH_RATE = 2 / 20_500
ZERO_HOURS_RATE = 2 / 20_500
OVER_24_HOURS_RATE = 1 / 20_500
TYPO_RATE = 19 / 20_500
KNOWN_TYPO_SHARE = 0.5
TYPO_SOURCE_PROJECTS = 8
REPEAT_SHARE = 0.012
DAY_OVER_24_SHARE = 34 / 5_423
OUTLIER_BATCH_RATE = 9 / 20_500
OUTLIER_LATER_SHARE = 0.45
MIN_ROWS_FOR_EVERY_QUIRK = 100

PROGRESS_EVERY_ROWS = 1_000_000

_RUSSIAN_MONTHS = (
    "января", "февраля", "марта", "апреля", "мая", "июня", "июля",
    "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NAME_ONSETS = (
    "b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m",
    "n", "p", "r", "s", "sh", "st", "t", "th", "v", "w", "z",
)  # fmt: skip
_NAME_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ia", "y")
_NAME_CODAS = ("", "", "", "n", "r", "s", "l", "th", "ck", "nd", "x")

_ZERO_HOURS = 1
_OVER_24_HOURS = 2
_TYPO = 3


@dataclasses.dataclass
class ExportStats:
    """Counts of what a generated export contains."""

    rows: int = 0
    users: int = 0
    batches: int = 0
    us_rows: int = 0
    russian_rows: int = 0
    day_entry_rows: int = 0
    repeated_rows: int = 0
    empty_user_rows: int = 0
    zero_hours_rows: int = 0
    over_24_hours_rows: int = 0
    typo_rows: int = 0
    days_over_24_hours: int = 0
    outlier_batches: int = 0


@dataclasses.dataclass
class _User:
    name: str
    batch_sizes: list[int]
    day_entry_share: float
    precise: bool
    project_names: list[str]
    project_cum_weights: list[float]


@dataclasses.dataclass(slots=True)
class _Batch:
    user: int
    size: int
    day: "_DayTexts"
    hour: int
    minute: int
    iso: str
    sort_key: int
    day_entry: bool
    total_hours: float = 0.0
    forced_hours: str | None = None

    def us(self) -> str:
        meridiem = "PM" if self.hour >= 12 else "AM"
        hour = (self.hour - 1) % 12 + 1
        return f"{self.day.us} {hour:02d}:{self.minute:02d} {meridiem}"

    def russian(self) -> str:
        return f"{self.day.russian} {self.hour:02d}:{self.minute:02d}"


class _Random:
    """Random draws built only on random.Random.random, for reproducible output."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def weighted(self, cum_weights: Sequence[float]) -> int:
        return bisect.bisect_right(cum_weights, self.random() * cum_weights[-1])

    def normal(self) -> float:
        # Box-Muller; 1 - random() lies in (0, 1], so the log is finite.
        radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
        return radius * math.cos(2.0 * math.pi * self.random())

    def geometric(self, p: float) -> int:
        return 1 + int(math.log(1.0 - self.random()) / math.log(1.0 - p))

    def sample(self, items: Sequence[int], k: int) -> list[int]:
        pool = list(items)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def write_checkins(path: str | os.PathLike[str], rows: int, seed: int) -> ExportStats:
    """Write a synthetic export of `rows` rows to `path`, determined by `seed`.

    The file is written next to `path` and renamed into place when complete,
    so that a reader never sees a partial file under `path`.
    """
    if rows < 0:
        raise ValueError(f"invalid row count {rows}: expected 0 or more")
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    rng = _Random(seed)
    stats = ExportStats()
    started = time.perf_counter()
    # The plan contains millions of small objects that never form cycles, and
    # the cyclic garbage collector's full passes over them would make the run
    # time grow faster than the row count.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with partial.open("w", encoding="utf-8", newline="") as file:
            file.write(HEADER)
            if rows:
                _Writer(file, rng, rows, stats).run()
    finally:
        if collecting:
            gc.enable()
    os.replace(partial, target)
    logger.info(
        "wrote %d rows for %d users to %s in %.1f s",
        stats.rows,
        stats.users,
        target,
        time.perf_counter() - started,
    )
    return stats


class _Writer:
    """Plans users, batches and quirks, then writes the rows newest first."""

    def __init__(self, file, rng: _Random, rows: int, stats: ExportStats) -> None:
        self.file = file
        self.rng = rng
        self.rows = rows
        self.stats = stats
        self.days = [
            SPAN_START + dt.timedelta(days=i)
            for i in range((SPAN_END - SPAN_START).days + 1)
        ]
        self.hour_cum_weights = _cumulate(HOUR_WEIGHTS)
        self.fraction_cum_weights = _cumulate([w for _, w in FRACTION_DIGITS])
        self.quarter_values = [float(text) for text, _ in QUARTER_HOURS]
        self.quarter_cum_weights = _cumulate([w for _, w in QUARTER_HOURS])
        self.known_typos = sorted(
            (alias.canonical, alias.alias)
            for alias in ProjectAliases.shipped().by_alias.values()
            if alias.canonical in NAMED_PROJECTS
        )
        self.row_index = 0
        self.next_progress = PROGRESS_EVERY_ROWS

    def run(self) -> None:
        users = self._plan_users()
        outliers = self._take_outlier_batches(users)
        day_plan, person_days = self._plan_days(users)
        self.quirk_rows = self._plan_quirk_rows()
        self.over_24_person_days = set(
            self._pick(person_days, _quirk_count(person_days, DAY_OVER_24_SHARE))
        )
        if self.rows < MIN_ROWS_FOR_EVERY_QUIRK:
            self.over_24_person_days = set()
        self.person_day = 0
        self.pending_over_24 = False
        self.users = users

        outliers.sort(key=_batch_order, reverse=True)
        later = [batch for batch in outliers if batch.sort_key > 0]
        earlier = [batch for batch in outliers if batch.sort_key < 0]
        self._write_batches(later)
        for day_index in range(len(self.days) - 1, -1, -1):
            self._write_batches(self._day_batches(day_index, day_plan[day_index]))
        self._write_batches(earlier)
        if self.row_index != self.rows:
            raise AssertionError(
                f"generator wrote {self.row_index} rows, expected {self.rows}"
            )

    def _plan_users(self) -> list[_User]:
        rng = self.rng
        count = max(1, min(self.rows, round(self.rows / ROWS_PER_USER)))
        self.stats.users = count
        # Skewed volumes: the largest is about 2.7 times the mean, as in the export.
        weights = [0.01 + rng.random() ** 1.7 for _ in range(count)]
        volumes = _apportion(self.rows, weights)
        names = _user_names(rng, count)

        numbered = max(
            NUMBERED_PROJECT_WINDOW, round(NUMBERED_PROJECTS_PER_USER * count)
        )
        width = max(2, len(str(numbered - 1)))
        users = []
        for index, volume in enumerate(volumes):
            sizes = self._batch_sizes(volume)
            projects, cum_weights = self._user_projects(
                index, count, volume, numbered, width
            )
            users.append(
                _User(
                    name=names[index],
                    batch_sizes=sizes,
                    day_entry_share=rng.between(0.0, DAY_ENTRY_SHARE_MAX),
                    precise=rng.random() < PRECISE_USER_SHARE,
                    project_names=projects,
                    project_cum_weights=cum_weights,
                )
            )
        return users

    def _batch_sizes(self, volume: int) -> list[int]:
        """Split a person's `volume` rows into batches of geometric sizes."""
        sizes = []
        remaining = volume
        while remaining:
            size = min(self.rng.geometric(BATCH_SIZE_P), MAX_BATCH_SIZE, remaining)
            sizes.append(size)
            remaining -= size
        return sizes

    def _user_projects(
        self, index: int, users: int, volume: int, numbered: int, width: int
    ) -> tuple[list[str], list[float]]:
        """Pick a person's projects: more for larger volumes, popular ones first."""
        rng = self.rng
        total = max(2, round(1.6 * volume**0.48))
        named_count = min(len(NAMED_PROJECTS), max(1, round(total * 0.5)))
        numbered_count = min(NUMBERED_PROJECT_WINDOW, max(1, total - named_count))
        named = _zipf_pick(rng, len(NAMED_PROJECTS), named_count)
        # Each person works on numbered projects from a window of the pool,
        # like a team, so that every numbered project keeps a few people.
        window_start = (index * (numbered - NUMBERED_PROJECT_WINDOW)) // max(
            1, users - 1
        )
        window = _zipf_pick(rng, NUMBERED_PROJECT_WINDOW, numbered_count)
        named_share = rng.between(0.25, 0.8)
        names = []
        weights = []
        for rank, project in enumerate(named):
            names.append(NAMED_PROJECTS[project])
            weights.append(named_share / (rank + 1))
        for rank, offset in enumerate(window):
            names.append(f"project-{window_start + offset:0{width}d}")
            weights.append((1.0 - named_share) / (rank + 1))
        return names, _cumulate(weights)

    def _take_outlier_batches(self, users: list[_User]) -> list[_Batch]:
        """Move some batches of people with several batches far outside the span."""
        rng = self.rng
        eligible = [i for i, user in enumerate(users) if len(user.batch_sizes) >= 2]
        count = _quirk_count(self.rows, OUTLIER_BATCH_RATE)
        if self.rows < MIN_ROWS_FOR_EVERY_QUIRK or not eligible:
            count = 0
        cum_weights = _cumulate([len(users[i].batch_sizes) for i in eligible])
        outliers = []
        for _ in range(count):
            index = eligible[rng.weighted(cum_weights)]
            user = users[index]
            if len(user.batch_sizes) < 2:
                continue
            size = user.batch_sizes.pop()
            if rng.random() < OUTLIER_LATER_SHARE:
                day = SPAN_END + dt.timedelta(days=1 + rng.below(400))
            else:
                day = SPAN_START - dt.timedelta(days=30 + rng.below(2900))
            batch = self._make_batch(index, size, _DayTexts(day), user)
            # Keys count microseconds from the span's first day, so that a batch
            # before the span has a negative key and one after it a large one.
            days_from_span = (day - SPAN_START).days
            batch.sort_key += days_from_span * 86_400_000_000
            outliers.append(batch)
        self.stats.outlier_batches = len(outliers)
        return outliers

    def _plan_days(self, users: list[_User]) -> tuple[list[list[tuple[int, int]]], int]:
        """Spread each person's batches over active days in a window of the span."""
        rng = self.rng
        weekdays = [i for i, day in enumerate(self.days) if day.weekday() < 5]
        plan: list[list[tuple[int, int]]] = [[] for _ in self.days]
        person_days = 0
        for index, user in enumerate(users):
            batches = len(user.batch_sizes)
            if not batches:
                continue
            target_days = max(1, round(batches / BATCHES_PER_DAY))
            activity = rng.between(0.55, 1.0)
            length = min(len(weekdays), math.ceil(target_days / activity))
            if rng.random() < STILL_ACTIVE_SHARE:
                end = len(weekdays)
            else:
                end = length + rng.below(len(weekdays) - length + 1)
            first, last = weekdays[end - length], weekdays[end - 1]
            candidates = [
                i
                for i in range(first, last + 1)
                if self.days[i].weekday() < 5 or rng.random() < WEEKEND_DAY_SHARE
            ]
            chosen = rng.sample(candidates, min(target_days, len(candidates), batches))
            counts = [1] * len(chosen)
            busy = rng.below(len(chosen))
            for _ in range(batches - len(chosen)):
                # Extra batches cluster on busy days, as in the export.
                if rng.random() >= EXTRA_BATCH_CLUSTERING:
                    busy = rng.below(len(chosen))
                counts[busy] += 1
            for day_index, count in zip(chosen, counts, strict=True):
                plan[day_index].append((index, count))
            person_days += len(chosen)
        # The walk consumes each person's batches from the newest day down.
        for entries in plan:
            entries.sort()
        return plan, person_days

    def _plan_quirk_rows(self) -> dict[int, int]:
        """Pick the rows of each row quirk, and the rows whose batch has no user."""
        count = _quirk_count(self.rows, EMPTY_USER_BATCH_RATE)
        if self.rows < MIN_ROWS_FOR_EVERY_QUIRK:
            count = 0
        # Sorted from the last row down so that the writer pops the next one.
        self.empty_user_rows = sorted(self._pick(self.rows, count), reverse=True)
        quirks = {}
        for kind, rate in (
            (_ZERO_HOURS, ZERO_HOURS_RATE),
            (_OVER_24_HOURS, OVER_24_HOURS_RATE),
            (_TYPO, TYPO_RATE),
        ):
            count = _quirk_count(self.rows, rate)
            if self.rows < MIN_ROWS_FOR_EVERY_QUIRK:
                count = 0
            for row in self._pick(self.rows, count):
                quirks.setdefault(row, kind)
        return quirks

    def _pick(self, population: int, count: int) -> list[int]:
        """Pick `count` distinct integers below `population`, at most all of them."""
        picked: dict[int, None] = {}
        count = min(count, population)
        while len(picked) < count:
            picked[self.rng.below(population)] = None
        return list(picked)

    def _day_batches(
        self, day_index: int, entries: list[tuple[int, int]]
    ) -> list[_Batch]:
        if not entries:
            return []
        texts = _DayTexts(self.days[day_index])
        batches = []
        for user_index, count in entries:
            user = self.users[user_index]
            day_batches = [
                self._make_batch(user_index, user.batch_sizes.pop(), texts, user)
                for _ in range(count)
            ]
            if count > 1:
                self._cap_day_hours(day_batches)
            self._mark_over_24(day_batches)
            batches.extend(day_batches)
        batches.sort(key=_batch_order, reverse=True)
        return batches

    def _cap_day_hours(self, day_batches: list[_Batch]) -> None:
        """Shrink the batches of a busy day to about one working day in total.

        Several submissions on one day split that day's work, which keeps days
        over 24 hours as rare as in the export.
        """
        cap = DAY_HOURS_MEDIAN * math.exp(BATCH_HOURS_SIGMA * self.rng.normal())
        total = sum(batch.total_hours for batch in day_batches)
        if total > cap:
            for batch in day_batches:
                batch.total_hours *= cap / total

    def _mark_over_24(self, day_batches: list[_Batch]) -> None:
        """Raise the hours of a chosen person-day so that it adds up to over 24."""
        if self.person_day in self.over_24_person_days:
            self.pending_over_24 = True
        self.person_day += 1
        rows = sum(batch.size for batch in day_batches)
        # One row cannot pass 24 hours without being invalid, so the quirk
        # moves on to the next person-day with two rows or more.
        if not self.pending_over_24 or rows < 2:
            return
        self.pending_over_24 = False
        self.stats.days_over_24_hours += 1
        total = self.rng.between(24.5, 40.0)
        quarters = min(96, math.ceil(total / rows * 4))
        hours = repr(quarters / 4)
        for batch in day_batches:
            batch.forced_hours = hours

    def _make_batch(
        self, user_index: int, size: int, day: "_DayTexts", user: _User
    ) -> _Batch:
        random_ = self.rng.random
        total_hours = self._draw_batch_hours(size, user.precise)
        if random_() < user.day_entry_share:
            return _Batch(
                user_index,
                size,
                day,
                0,
                0,
                f"{day.iso} 00:00:00 UTC",
                0,
                True,
                total_hours,
            )
        hour = bisect.bisect_right(
            self.hour_cum_weights, random_() * self.hour_cum_weights[-1]
        )
        minute = int(random_() * 60)
        second = int(random_() * 60)
        digits = FRACTION_DIGITS[self.rng.weighted(self.fraction_cum_weights)][0]
        fraction, microsecond = _fraction(self.rng, digits)
        return _Batch(
            user_index,
            size,
            day,
            hour,
            minute,
            f"{day.iso} {hour:02d}:{minute:02d}:{second:02d}{fraction} UTC",
            ((hour * 60 + minute) * 60 + second) * 1_000_000 + microsecond,
            False,
            total_hours,
        )

    def _draw_batch_hours(self, size: int, precise: bool) -> float:
        """Draw the hours that a batch of `size` rows adds up to."""
        rng = self.rng
        if size > 1:
            median = min(BATCH_HOURS_MEDIAN_MAX, BATCH_HOURS_MEDIAN_BASE + 0.3 * size)
            return median * math.exp(BATCH_HOURS_SIGMA * rng.normal())
        if precise:
            return SINGLE_ROW_PRECISE_MEDIAN * math.exp(
                SINGLE_ROW_PRECISE_SIGMA * rng.normal()
            )
        value = self.quarter_values[rng.weighted(self.quarter_cum_weights)]
        return value * SINGLE_ROW_MEAN_HOURS / _QUARTER_MEAN

    def _batch_hours(self, batch: _Batch, precise: bool) -> list[str]:
        """Split a batch's hours over its rows, in the style of its person."""
        if batch.forced_hours is not None:
            return [batch.forced_hours] * batch.size
        random_ = self.rng.random
        if batch.size == 1:
            shares = [batch.total_hours]
        else:
            # Rows take shares in the proportions of typical entries, so that
            # round values such as 1.0 and 0.5 stay the most frequent.
            values = self.quarter_values
            cum_weights = self.quarter_cum_weights
            total_weight = cum_weights[-1]
            weights = [
                values[bisect.bisect_right(cum_weights, random_() * total_weight)]
                for _ in range(batch.size)
            ]
            scale = batch.total_hours / sum(weights)
            shares = [weight * scale for weight in weights]
        half_texts = _HALF_HOUR_TEXTS
        quarter_texts = _QUARTER_HOUR_TEXTS
        texts = []
        for share in shares:
            if share > MAX_ROW_HOURS:
                share = MAX_ROW_HOURS
            if precise and random_() < PRECISE_ROW_SHARE:
                texts.append(repr(max(0.01, round(share, 2))))
            elif random_() < HALF_HOUR_SHARE:
                texts.append(half_texts[int(share * 2 + 0.5)])
            else:
                texts.append(quarter_texts[int(share * 4 + 0.5)])
        return texts

    def _write_batches(self, batches: list[_Batch]) -> None:
        """Write `batches` in the order given, applying the row quirks."""
        random_ = self.rng.random
        bisect_right = bisect.bisect_right
        quirks = self.quirk_rows
        users = self.users
        stats = self.stats
        us_rows = russian_rows = day_entry_rows = repeated_rows = 0
        lines = []
        row = self.row_index

        for batch in batches:
            user = users[batch.user]
            start = row
            end = row + batch.size
            name = user.name
            if self.empty_user_rows and self.empty_user_rows[-1] < end:
                while self.empty_user_rows and self.empty_user_rows[-1] < end:
                    self.empty_user_rows.pop()
                name = ""
                stats.empty_user_rows += batch.size

            project_names = user.project_names
            project_cum = user.project_cum_weights
            project_total = project_cum[-1]
            hours_texts = self._batch_hours(batch, user.precise)
            previous = None

            while row < end:
                if previous is not None and random_() < REPEAT_SHARE:
                    lines.append(previous)
                    repeated_rows += 1
                    row += 1
                    continue
                draw = random_()
                if draw >= US_SHARE + RUSSIAN_SHARE:
                    stamp = batch.iso
                    day_entry_rows += batch.day_entry
                elif draw < US_SHARE:
                    stamp = batch.us()
                    us_rows += 1
                else:
                    stamp = batch.russian()
                    russian_rows += 1
                hours = hours_texts[row - start]
                project = project_names[
                    bisect_right(project_cum, random_() * project_total)
                ]
                if row in quirks:
                    hours, project = self._apply_quirk(quirks[row], hours, project)
                previous = f"{name},{stamp},{hours},{project}\n"
                lines.append(previous)
                row += 1

        self.file.write("".join(lines))
        self.row_index = row
        stats.rows = row
        stats.batches += len(batches)
        stats.us_rows += us_rows
        stats.russian_rows += russian_rows
        stats.day_entry_rows += day_entry_rows
        stats.repeated_rows += repeated_rows
        if row >= self.next_progress:
            logger.info("generated %d of %d rows", row, self.rows)
            self.next_progress += PROGRESS_EVERY_ROWS

    def _apply_quirk(self, kind: int, hours: str, project: str) -> tuple[str, str]:
        if kind == _ZERO_HOURS:
            self.stats.zero_hours_rows += 1
            return "0.0", project
        if kind == _OVER_24_HOURS:
            self.stats.over_24_hours_rows += 1
            return f"{25 + self.rng.below(16)}.0", project
        if kind == _TYPO:
            self.stats.typo_rows += 1
            return hours, self._typo()
        return hours, project

    def _typo(self) -> str:
        rng = self.rng
        if self.known_typos and rng.random() < KNOWN_TYPO_SHARE:
            return self.known_typos[rng.below(len(self.known_typos))][1]
        while True:
            source = NAMED_PROJECTS[rng.below(TYPO_SOURCE_PROJECTS)]
            typo = _misspell(rng, source)
            if typo not in NAMED_PROJECTS:
                return typo


class _DayTexts:
    """The date part of a stamp in each of the three forms."""

    def __init__(self, day: dt.date) -> None:
        self.iso = day.isoformat()
        self.us = f"{day.month:02d}/{day.day:02d}/{day.year}"
        self.russian = f"{day.day} {_RUSSIAN_MONTHS[day.month - 1]} {day.year}"


def _batch_order(batch: _Batch) -> tuple[int, int]:
    return batch.sort_key, batch.user


def _fraction(rng: _Random, digits: int) -> tuple[str, int]:
    """Draw a fraction of `digits` digits, no trailing zero, and its microseconds."""
    lead = 0 if rng.random() < FRACTION_LEADING_ZERO_SHARE else 1 + rng.below(9)
    middle = rng.below(10 ** (digits - 2))
    last = 1 + rng.below(9)
    text = f"{lead}{middle:0{digits - 2}d}{last}"
    return "." + text, int(text.ljust(6, "0"))


def _misspell(rng: _Random, name: str) -> str:
    """Apply one typing slip to `name`: drop, double, swap or mistype a letter."""
    position = rng.below(len(name) - 1)
    slip = rng.below(4)
    if slip == 0:
        return name[:position] + name[position + 1 :]
    if slip == 1:
        return name[: position + 1] + name[position:]
    if slip == 2:
        return (
            name[:position] + name[position + 1] + name[position] + name[position + 2 :]
        )
    letter = name[position]
    for keys in _KEYBOARD_ROWS:
        column = keys.find(letter)
        if column >= 0:
            neighbours = (
                keys[max(0, column - 1) : column] + keys[column + 1 : column + 2]
            )
            mistyped = neighbours[rng.below(len(neighbours))]
            return name[:position] + mistyped + name[position + 1 :]
    return name[:position] + name[position + 1 :]


def _user_names(rng: _Random, count: int) -> list[str]:
    """Make `count` distinct lower-case names from syllables."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        syllables = 2 if rng.random() < 0.7 else 3
        name = (
            "".join(
                _NAME_ONSETS[rng.below(len(_NAME_ONSETS))]
                + _NAME_VOWELS[rng.below(len(_NAME_VOWELS))]
                for _ in range(syllables)
            )
            + _NAME_CODAS[rng.below(len(_NAME_CODAS))]
        )
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _zipf_pick(rng: _Random, population: int, count: int) -> list[int]:
    """Pick `count` distinct ranks below `population`, low ranks more often."""
    cum_weights = _cumulate([1.0 / (rank + 1) for rank in range(population)])
    picked: dict[int, None] = {}
    while len(picked) < min(count, population):
        picked[rng.weighted(cum_weights)] = None
    return list(picked)


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integers proportional to `weights`, each at least 1."""
    scale = (total - len(weights)) / sum(weights)
    shares = [w * scale for w in weights]
    counts = [1 + int(share) for share in shares]
    remainders = sorted(
        range(len(weights)), key=lambda i: (int(shares[i]) - shares[i], i)
    )
    for i in remainders[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _cumulate(weights: Sequence[float]) -> list[float]:
    cum_weights = []
    running = 0.0
    for weight in weights:
        running += weight
        cum_weights.append(running)
    return cum_weights


def _quirk_count(population: int, rate: float) -> int:
    return max(1, round(population * rate)) if population else 0


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Write a synthetic check-in CSV export with the quirks of a real one. "
            "The same --rows and --seed always give the same bytes."
        )
    )
    parser.add_argument(
        "--rows", type=int, required=True, help="number of data rows to write"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (default: %(default)s)"
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="path of the CSV file to write"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator's command line and return the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    arguments = _parse_arguments(argv)
    if arguments.rows < 0:
        print(
            f"generate: error: invalid --rows {arguments.rows}: expected 0 or more",
            file=sys.stderr,
        )
        return 1
    folder = arguments.output.parent
    if not folder.is_dir():
        print(
            f"generate: error: folder {str(folder)!r} of --output not found; "
            "create it first",
            file=sys.stderr,
        )
        return 1
    stats = write_checkins(arguments.output, arguments.rows, arguments.seed)
    logger.info(
        "%d batches; %d US and %d Russian stamps; %d repeated lines; "
        "%d rows without user, %d with 0 hours, %d over 24 hours, %d project "
        "typos; %d person-days over 24 hours; %d batches outside the span",
        stats.batches,
        stats.us_rows,
        stats.russian_rows,
        stats.repeated_rows,
        stats.empty_user_rows,
        stats.zero_hours_rows,
        stats.over_24_hours_rows,
        stats.typo_rows,
        stats.days_over_24_hours,
        stats.outlier_batches,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
