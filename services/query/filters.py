"""Property filters and breakdown keys: the request models and their SQL, every name and value a bound
parameter. What each op sees is the typing rule (shared/contracts/property_types.py, README
Definitions: "Property values"): values compare only within their JSON kind.

A filter names an event property (`"plan"`) or a person property (`"person.plan"`, or `"plan"` with
`"source": "person"`; the prefix is read only when `source` is absent). Every negative op (`neq`,
`not_contains`, `not_regex`, `is_not_set`) is the negation of its positive op, so it also holds when
the key is missing.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, cast

import re2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from shared.contracts import property_types as pt
from shared.contracts.materialized import NONE, MaterializedColumns
from shared.contracts.storage import PERSON_PROPERTIES

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
PropertyName = Annotated[str, Field(min_length=1, max_length=200, description="Top-level key of properties")]
Source = Literal["event", "person"]
FilterOp = Literal[
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "contains",
    "not_contains",
    "regex",
    "not_regex",
    "in",
    "is_set",
    "is_not_set",
    "date_before",
    "date_after",
]
COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
NEGATIONS = {"neq": "eq", "not_contains": "contains", "not_regex": "regex", "is_not_set": "is_set"}
NO_VALUE = {"is_set", "is_not_set"}
MAX_IN_VALUES = 1000
MAX_PATTERN_LENGTH = 1000
PERSON_PREFIX = "person."
SOURCES = {"event": "properties", "person": PERSON_PROPERTIES}


def split_source(data: Any) -> Any:
    """`{"property": "person.plan"}` without a source means `{"property": "plan", "source": "person"}`."""
    if isinstance(data, dict) and "source" not in data:
        name = data.get("property")
        if isinstance(name, str) and name.startswith(PERSON_PREFIX) and len(name) > len(PERSON_PREFIX):
            return {**data, "property": name[len(PERSON_PREFIX) :], "source": "person"}
    return data


class PropertyRef(BaseModel):
    """A property of the event or of its person."""

    model_config = ConfigDict(extra="forbid")

    property: PropertyName
    source: Source = "event"

    @model_validator(mode="before")
    @classmethod
    def _person_prefix(cls, data: Any) -> Any:
        return split_source(data)


def json_sql(ref: PropertyRef) -> str:
    """The SQL of the JSON text a property is read from (a function: the field `property` shadows the
    builtin in the model's body)."""
    return SOURCES[ref.source]


def value_source(
    ref: PropertyRef, param: str, params: dict[str, Any], columns: MaterializedColumns = NONE
) -> tuple[str, str | None]:
    """(source, key) for property_types: the materialized column holding the value's JSON text when
    the event property has one (key None), else the JSON object and the key as `{param:String}`."""
    column = columns.column(ref.property) if ref.source == "event" else None
    if column is not None:
        return column, None
    params[param] = ref.property
    return json_sql(ref), f"{{{param}:String}}"


def property_ref(value: Any) -> Any:
    """A bare name (`"plan"`, `"person.plan"`) is shorthand for `{"property": ...}`."""
    return {"property": value} if isinstance(value, str) else value


# A breakdown: `"plan"`, `"person.plan"` or `{"property": "plan", "source": "person"}`.
Breakdown = Annotated[PropertyRef, BeforeValidator(property_ref, json_schema_input_type=str | PropertyRef)]


class PropertyFilter(PropertyRef):
    """`{"property": p, "op": ..., "value": v}` on the event's (or its person's) properties."""

    op: FilterOp
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> PropertyFilter:
        problem = value_problem(self.op, self.value)
        if problem:
            raise ValueError(f"op {self.op!r}: {problem}")
        return self


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_problem(op: str, value: Any) -> str | None:
    """Why `value` does not suit `op`, or None."""
    values = value if isinstance(value, list) else [value]
    if any(is_number(v) and not math.isfinite(v) for v in values):
        return "numbers must be finite"
    if op in NO_VALUE:
        return None if value is None else "takes no value"
    if op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
            return f"value must be a list of 1 to {MAX_IN_VALUES} strings, numbers or booleans"
        return None
    if op == "between":
        return between_problem(value)
    if value is None or isinstance(value, list):
        return "value must be a string, number or boolean (null is refused: use is_set or is_not_set)"
    if op in COMPARISONS and not is_number(value):
        return "value must be a number"
    if op in ("contains", "not_contains") and not isinstance(value, str):
        return "value must be a string"
    if op in ("regex", "not_regex"):
        return pattern_problem(value)
    if op in ("date_before", "date_after") and (not isinstance(value, str) or pt.iso_ms(value) is None):
        return "value must be an ISO 8601 date or date-time (YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM])"
    return None


def between_problem(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) != 2:
        return "value must be [low, high]: two numbers or two ISO 8601 dates"
    low, high = value
    if is_number(low) and is_number(high):
        return None if low <= high else "low must not be above high"
    if isinstance(low, str) and isinstance(high, str):
        low_ms, high_ms = pt.iso_ms(low), pt.iso_ms(high)
        if low_ms is None or high_ms is None:
            return "dates must be ISO 8601 (YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM])"
        return None if low_ms <= high_ms else "low must not be after high"
    return "value must be [low, high]: two numbers or two ISO 8601 dates"


def pattern_options() -> Any:
    """RE2 as ClickHouse's match() compiles it: `.` also matches a newline."""
    options = re2.Options()
    options.dot_nl = True
    options.log_errors = False
    return options


def pattern_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "value must be a string (an RE2 pattern)"
    if len(value) > MAX_PATTERN_LENGTH:
        return f"patterns are at most {MAX_PATTERN_LENGTH} characters"
    try:
        re2.compile(value, pattern_options())
    except re2.error as exc:
        return f"not an RE2 pattern: {exc}"
    return None


def filter_sql(
    flt: PropertyFilter, name: str, params: dict[str, Any], columns: MaterializedColumns = NONE
) -> str:
    """A boolean SQL expression for one filter; its key and values go into `params` under `name`
    (the key read from its materialized column when `columns` has one)."""
    source, key = value_source(flt, f"{name}_k", params, columns)
    if flt.op in NEGATIONS:
        return f"(NOT {positive_sql(NEGATIONS[flt.op], flt, name, params, (source, key))})"
    return positive_sql(flt.op, flt, name, params, (source, key))


def positive_sql(
    op: str, flt: PropertyFilter, name: str, params: dict[str, Any], read: tuple[str, str | None]
) -> str:
    (source, key), value_name = read, f"{name}_v"
    if op == "is_set":
        return pt.is_set(source, key)
    if op == "in":
        return in_sql(source, key, flt.value if isinstance(flt.value, list) else [], value_name, params)
    if op in COMPARISONS:
        params[value_name] = float(cast(float, flt.value))  # a number: checked by the model
        compare = f"{pt.as_float(source, key)} {COMPARISONS[op]} {{{value_name}:Float64}}"
        return f"({pt.is_number(source, key)} AND {compare})"
    if op == "between":
        return between_sql(source, key, flt.value, value_name, params)
    if op in ("date_before", "date_after"):
        params[value_name] = pt.iso_ms(str(flt.value))
        sign = "<" if op == "date_before" else ">"
        moment = pt.date_ms(pt.as_string(source, key))
        return f"({pt.is_string(source, key)} AND coalesce({moment} {sign} {{{value_name}:Int64}}, 0))"
    params[value_name] = flt.value
    if op == "contains":
        found = f"position({pt.as_string(source, key)}, {{{value_name}:String}}) > 0"
        return f"({pt.is_string(source, key)} AND {found})"
    if op == "regex":
        matched = f"match({pt.as_string(source, key)}, {{{value_name}:String}})"
        return f"({pt.is_string(source, key)} AND {matched})"
    return equals_sql(source, key, flt.value, value_name, params)


def between_sql(source: str, key: str | None, value: Any, name: str, params: dict[str, Any]) -> str:
    """low <= value <= high, for numbers or ISO 8601 dates."""
    low, high = value
    if is_number(low):
        params.update({f"{name}0": float(low), f"{name}1": float(high)})
        inside = f"{pt.as_float(source, key)} BETWEEN {{{name}0:Float64}} AND {{{name}1:Float64}}"
        return f"({pt.is_number(source, key)} AND {inside})"
    params.update({f"{name}0": pt.iso_ms(low), f"{name}1": pt.iso_ms(high)})
    moment = pt.date_ms(pt.as_string(source, key))
    inside = f"coalesce({moment} BETWEEN {{{name}0:Int64}} AND {{{name}1:Int64}}, 0)"
    return f"({pt.is_string(source, key)} AND {inside})"


def equals_sql(source: str, key: str | None, value: Any, name: str, params: dict[str, Any]) -> str:
    """The property equals `value`, compared within the value's JSON kind."""
    if isinstance(value, bool):
        params[name] = int(value)
        return f"({pt.is_boolean(source, key)} AND {pt.as_boolean(source, key)} = {{{name}:UInt8}})"
    if is_number(value):
        params[name] = float(value)
        return f"({pt.is_number(source, key)} AND {pt.as_float(source, key)} = {{{name}:Float64}})"
    params[name] = value
    return f"({pt.is_string(source, key)} AND {pt.as_string(source, key)} = {{{name}:String}})"


def in_sql(source: str, key: str | None, values: list[Any], name: str, params: dict[str, Any]) -> str:
    """The property equals one of `values`: one `has()` per JSON kind present in the list."""
    kinds = [
        ([int(v) for v in values if isinstance(v, bool)], "UInt8", pt.is_boolean, pt.as_boolean),
        ([float(v) for v in values if is_number(v)], "Float64", pt.is_number, pt.as_float),
        ([v for v in values if isinstance(v, str)], "String", pt.is_string, pt.as_string),
    ]
    parts = []
    for i, (members, ch_type, is_kind, extract) in enumerate(kinds):
        if members:
            params[f"{name}{i}"] = members
            has = f"has({{{name}{i}:Array({ch_type})}}, {extract(source, key)})"
            parts.append(f"({is_kind(source, key)} AND {has})")
    return f"({' OR '.join(parts)})" if parts else "0"


def all_filters_sql(
    filters: list[PropertyFilter], prefix: str, params: dict[str, Any], columns: MaterializedColumns = NONE
) -> str:
    """The AND of several filters ("1" when there are none)."""
    parts = [filter_sql(f, f"{prefix}{i}", params, columns) for i, f in enumerate(filters)]
    return " AND ".join(parts) if parts else "1"


def bucket_sql(
    breakdown: PropertyRef, name: str, params: dict[str, Any], columns: MaterializedColumns = NONE
) -> str:
    """The breakdown bucket (kind, number, text) of a row for `breakdown` (its name goes into `params`)."""
    return pt.bucket(pt.raw(*value_source(breakdown, name, params, columns)))
