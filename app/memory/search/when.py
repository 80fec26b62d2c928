"""Dates a question names, as the spans of time in which what it asks about was said.

    >>> spans = asked_spans("What did Maria donate in December 2023?")
    >>> [datetime.fromtimestamp(s).date().isoformat() for s in spans[0]]
    ['2023-12-01', '2024-01-08']

"Who did Maria have dinner with on May 3, 2023?" is about turns said on or shortly after that
day; "in December 2023" about that month. Each span runs from the start of the named day, month
or year to a week past its end, since people tell of a day's events in the days after it
("yesterday", "last week"). A month without a year ("in June") counts in every year. Times are
local, like the stored `created_at` of loaded turns. Relative phrases ("last year") are left
alone: the time the question is asked says nothing about the time the conversation took place.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_MONTH = r"(?P<month>" + "|".join(m[:3] + r"(?:" + m[3:] + r")?" for m in MONTHS) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_FORMS = [re.compile(p, re.IGNORECASE) for p in (
    rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b",   # 3 May 2023, 3rd of May, 2023
    rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b",             # May 3, 2023
    rf"\b{_MONTH},?\s+{_YEAR}\b",                       # May 2023
    rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}\b",               # 3 May
    rf"\b{_MONTH}\s+{_DAY}\b(?!,?\s*(?:19|20)\d\d)",    # May 3
    rf"\b(?:in|during|since|of)\s+{_MONTH}\b",          # in May
    rf"\b(?:in|during|since|of)\s+{_YEAR}\b",           # in 2023
)]
LATER = timedelta(days=7)  # what happened on a day is told up to a week later


def asked_spans(text: str, years: range = range(1990, 2100)) -> list[tuple[float, float]]:
    """Epoch-second spans (start, end) of the dates `text` names; empty when it names none."""
    spans: list[tuple[float, float]] = []
    taken: list[tuple[int, int]] = []
    for form in _FORMS:
        for found in form.finditer(text):
            if any(a < found.end() and found.start() < b for a, b in taken):
                continue  # a longer form already read these words
            taken.append(found.span())
            spans += _spans(found.groupdict(), years)
    return spans


def _spans(parts: dict[str, str | None], years: range) -> list[tuple[float, float]]:
    month = _month(parts.get("month"))
    year = int(parts["year"]) if parts.get("year") else None
    day = int(parts["day"]) if parts.get("day") else None
    if year is None and month is None:
        return []
    if year is None:
        return [s for y in years if (s := _span(y, month, day))] if month else []
    span = _span(year, month, day)
    return [span] if span else []


def _span(year: int, month: int | None, day: int | None) -> tuple[float, float] | None:
    try:
        if month is None:
            start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
        elif day is None:
            start = datetime(year, month, 1)
            end = datetime(year + month // 12, month % 12 + 1, 1)
        else:
            start = datetime(year, month, day)
            end = start + timedelta(days=1)
    except ValueError:  # 31 June
        return None
    return start.timestamp(), (end + LATER).timestamp()


def _month(word: str | None) -> int | None:
    if not word:
        return None
    prefix = word.lower().rstrip(".")[:3]
    return next((i + 1 for i, m in enumerate(MONTHS) if m.startswith(prefix)), None)
