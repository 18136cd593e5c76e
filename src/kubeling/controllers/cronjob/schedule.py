"""Cron arithmetic for the CronJob controller: the next and the most recent run times.

The fields are parsed by the same parser the API server validates with
(`api.validation.batch.parse_schedule`, robfig/cron's rules), so a schedule the
server accepts is one the controller understands. Times are computed on the
wall clock of the CronJob's `timeZone` (the controller's UTC by default), so
"0 9 * * *" in Europe/Paris fires at 09:00 Paris time across DST changes.
As in robfig/cron, when both day-of-month and day-of-week are restricted a
day matching *either* fires.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from kubeling.api.validation.batch import parse_schedule

_FULL_DOM = set(range(1, 32))
_FULL_DOW = set(range(0, 7))
_MAX_STEPS = 100_000  # enough to cross several years of a sparse schedule


@dataclass(frozen=True)
class Schedule:
    """A parsed 5-field schedule bound to a time zone."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_star: bool
    dow_star: bool
    tz: dt.tzinfo

    @classmethod
    def parse(cls, spec: str, time_zone: str | None = None) -> Schedule:
        """Raises ValueError for a bad spec or zone (`@every` is not supported by Kubernetes CronJobs)."""
        text = spec.strip()
        tz: dt.tzinfo = dt.UTC
        if text.startswith(("TZ=", "CRON_TZ=")):
            zone, _, text = text.partition(" ")
            tz = ZoneInfo(zone.split("=", 1)[1])
        if time_zone:
            tz = ZoneInfo(time_zone)
        fields = parse_schedule(text)
        if not fields:
            raise ValueError(f"unsupported schedule {spec!r}")
        minutes, hours, days, months, weekdays = fields
        return cls(frozenset(minutes), frozenset(hours), frozenset(days), frozenset(months), frozenset(weekdays),
                   days == _FULL_DOM, weekdays == _FULL_DOW, tz)

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, when: dt.datetime) -> dt.datetime | None:
        """The first scheduled time strictly after `when` (aware, UTC), or None if none within years."""
        local = when.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0) + dt.timedelta(minutes=1)
        for _ in range(_MAX_STEPS):
            if local.month not in self.months:
                year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
                local = dt.datetime(year, month, 1)
            elif not self._day_matches(local):
                local = dt.datetime(local.year, local.month, local.day) + dt.timedelta(days=1)
            elif local.hour not in self.hours:
                local = local.replace(minute=0) + dt.timedelta(hours=1)
            elif local.minute not in self.minutes:
                local += dt.timedelta(minutes=1)
            else:
                return local.replace(tzinfo=self.tz).astimezone(dt.UTC)
        return None

    def most_recent(self, earliest: dt.datetime, now: dt.datetime) -> tuple[dt.datetime | None, int]:
        """(the latest scheduled time in (earliest, now], how many were missed before it).

        After 100 misses the search jumps to the last two days, as Kubernetes
        gives up counting and only cares about the newest missed time.
        """
        last: dt.datetime | None = None
        missed = 0
        t = self.next_after(earliest)
        while t is not None and t <= now:
            if last is not None:
                missed += 1
            last = t
            if missed > 100:
                jump = self.next_after(max(t, now - dt.timedelta(days=2)))
                t = jump if jump is not None and jump > t else self.next_after(t)
                continue
            t = self.next_after(t)
        return last, missed
