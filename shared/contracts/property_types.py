"""The typing rule for property values, as SQL (README, Definitions: "Property values").

Every reader of a property goes through this module: the query service's filters, breakdowns and trend
maths, the schema catalogue, and the ETL's money sums. A value keeps the JSON kind it was sent with
(string, number, boolean, null, object or array) and kinds never mix: `1`, `"1"`, `true` and `"true"`
are four different values, `"12.5"` is a string and never a number. Null and a missing key are the same
("not set"); objects and arrays are set but equal nothing and are neither numbers nor strings.

Each function takes `source`, the SQL of a JSON object's text (`properties`, or a person's properties),
and `key`, the SQL of the key: a server-side parameter (`{k:String}`) or one of our own constants; or
`key` None and `source` the SQL of the value's JSON text itself (a materialized column holding
`raw(properties, key)`: shared/contracts/materialized.py), so both read the same text.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

EPOCH = datetime(1970, 1, 1)
# JSONType's names for JSON numbers.
NUMBER_TYPES = "('Int64', 'UInt64', 'Double')"
# Arithmetic reads a number as Decimal(38, 6): integers exactly, other numbers as trunc(x * 10^6) / 10^6
# of the 64-bit float. Magnitudes from 10^32 do not fit and are skipped like non-numbers.
DECIMAL_LIMIT = "1e32"
# Breakdown buckets sort numbers, then strings, then booleans, then "no value" (missing, null, object
# or array); within a kind by value (numbers ascending, strings by bytes, false before true).
BUCKET_NUMBER, BUCKET_STRING, BUCKET_BOOLEAN, BUCKET_NONE = 0, 1, 2, 3
# A string holding an ISO 8601 date or date-time (the date ops and the "datetime" discovery type):
# YYYY-MM-DD, optionally followed by T or a space, HH:MM, optionally :SS and a fraction (read to the
# millisecond, the rest dropped), and optionally Z or +HH:MM / -HH:MM (none: UTC).
DATE_PATTERN = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)


def raw(source: str, key: str | None) -> str:
    """The value's JSON text ('' when the key is missing). Every test below reads this small text
    instead of parsing the whole object again (ClickHouse computes the same expression once)."""
    return source if key is None else f"JSONExtractRaw({source}, {key})"


def json_type(source: str, key: str | None) -> str:
    """ClickHouse's JSONType of the value: 'Null' for a missing key too."""
    return f"JSONType({raw(source, key)})"


def is_set(source: str, key: str | None) -> str:
    return f"({raw(source, key)} NOT IN ('', 'null'))"


def is_string(source: str, key: str | None) -> str:
    return f"startsWith({raw(source, key)}, '\"')"


def is_number(source: str, key: str | None) -> str:
    return f"({json_type(source, key)} IN {NUMBER_TYPES})"


def is_boolean(source: str, key: str | None) -> str:
    return f"({raw(source, key)} IN ('true', 'false'))"


def as_string(source: str, key: str | None) -> str:
    """The text of a string value (meaningful only where `is_string`)."""
    return string_text(raw(source, key))


def string_text(raw_value: str) -> str:
    """The text of a string value from its JSON text: without a backslash (no escapes), the JSON text
    is the string between its quotes, which is cut out rather than parsed; else JSONExtractString."""
    return (
        f"if(position({raw_value}, '\\\\') = 0, substring({raw_value}, 2, length({raw_value}) - 2), "
        f"JSONExtractString({raw_value}))"
    )


def as_float(source: str, key: str | None) -> str:
    """A number as Float64, what comparisons use (meaningful only where `is_number`: JSONExtractFloat
    would also read the string "12" as 12)."""
    return f"JSONExtractFloat({raw(source, key)})"


def as_boolean(source: str, key: str | None) -> str:
    return f"toUInt8({raw(source, key)} = 'true')"


def as_decimal(source: str, key: str | None) -> str:
    """A number as Nullable(Decimal(38, 6)) for arithmetic; NULL for anything else (skipped)."""
    fits = f"{is_number(source, key)} AND abs({as_float(source, key)}) < {DECIMAL_LIMIT}"
    return f"if({fits}, JSONExtract({raw(source, key)}, 'Nullable(Decimal(38, 6))'), NULL)"


def bucket(raw_value: str) -> str:
    """The breakdown bucket of a value from its JSON text: a (kind, number, text) tuple whose equality
    is the filters' equality (numbers by Float64 value, -0 as 0) and whose order is the tie order."""
    return (
        f"multiIf(startsWith({raw_value}, '\"'), "
        f"({BUCKET_STRING}, toFloat64(0), {string_text(raw_value)}), "
        f"{raw_value} = 'true', ({BUCKET_BOOLEAN}, toFloat64(1), ''), "
        f"{raw_value} = 'false', ({BUCKET_BOOLEAN}, toFloat64(0), ''), "
        f"{raw_value} IN ('', 'null') OR startsWith({raw_value}, '{{') OR startsWith({raw_value}, '['), "
        f"({BUCKET_NONE}, toFloat64(0), ''), "
        f"({BUCKET_NUMBER}, JSONExtractFloat({raw_value}) + 0, ''))"
    )


# A bucket tuple's SQL type, for parameters holding buckets.
BUCKET_TYPE = "Tuple(UInt8, Float64, String)"


def bucket_value(kind: int, number: float, text: str) -> str | float | int | bool | None:
    """A bucket as the API returns it, typed JSON: a string, a number (an integral value below 2^53
    as an integer), a boolean, or null for no value."""
    if kind == BUCKET_STRING:
        return text
    if kind == BUCKET_BOOLEAN:
        return bool(number)
    if kind == BUCKET_NUMBER:
        return int(number) if number.is_integer() and abs(number) < 2**53 else float(number)
    return None


def date_ms(text: str) -> str:
    """Milliseconds since 1970 (UTC) of a string holding an ISO 8601 date or date-time
    (`DATE_PATTERN`, a real calendar time, year 0001-9999, offsets under 24 hours), else NULL."""
    g = f"extractGroups({text}, '{DATE_PATTERN.replace(chr(92), chr(92) * 2)}')"
    year, month, day = "toInt64OrZero(g[1])", "toInt64OrZero(g[2])", "toInt64OrZero(g[3])"
    hour, minute, second = "toInt64OrZero(g[4])", "toInt64OrZero(g[5])", "toInt64OrZero(g[6])"
    millis = "toInt64OrZero(rightPad(substring(g[7], 1, 3), 3, '0'))"
    zone = "g[8]"
    offset = (
        f"if({zone} IN ('', 'Z'), 0, (if(startsWith({zone}, '-'), -1, 1)) * "
        f"(toInt64(substring({zone}, 2, 2)) * 60 + toInt64(substring({zone}, 5, 2))))"
    )
    leap = f"(({year} % 4 = 0 AND {year} % 100 != 0) OR {year} % 400 = 0)"
    month_days = f"multiIf({month} = 2, 28 + {leap}, {month} IN (4, 6, 9, 11), 30, 31)"
    valid = (
        f"length(g) = 8 AND {year} >= 1 AND {month} BETWEEN 1 AND 12 AND {day} BETWEEN 1 AND {month_days} "
        f"AND {hour} <= 23 AND {minute} <= 59 AND {second} <= 59 "
        f"AND ({zone} IN ('', 'Z') OR (toInt64(substring({zone}, 2, 2)) <= 23 "
        f"AND toInt64(substring({zone}, 5, 2)) <= 59))"
    )
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y = f"({year} - ({month} <= 2))"
    era = f"intDiv({y}, 400)"
    yoe = f"({y} - {era} * 400)"
    doy = f"intDiv(153 * (({month} + 9) % 12) + 2, 5) + {day} - 1"
    doe = f"({yoe} * 365 + intDiv({yoe}, 4) - intDiv({yoe}, 100) + {doy})"
    days = f"({era} * 146097 + {doe} - 719468)"
    ms = f"(({days} * 86400 + {hour} * 3600 + {minute} * 60 + {second} - {offset} * 60) * 1000 + {millis})"
    return f"arrayMap(g -> if({valid}, {ms}, NULL), [{g}])[1]"


def iso_ms(text: str) -> int | None:
    """`date_ms` in Python, for the dates a request sends: ms since 1970 (UTC), or None."""
    found = re.fullmatch(DATE_PATTERN, text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    offset = 0
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (-1 if zone[0] == "-" else 1) * (hours * 60 + minutes)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    millis = int((fraction or "")[:3].ljust(3, "0"))
    return (moment - EPOCH) // timedelta(milliseconds=1) + millis - offset * 60_000
