"""Property filters on events: the request model and its SQL, every name and value a bound parameter.

`properties` is JSON text. A filter compares one top-level key, and only values of the same JSON kind
match: a string value matches string properties, a number matches numbers (compared as Float64), a
boolean matches booleans. `neq` is the negation of `eq`, so it also holds when the key is missing;
`is_set` holds when the key is present and not null.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
PropertyName = Annotated[str, Field(min_length=1, max_length=200, description="Top-level key of properties")]
FilterOp = Literal["eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "is_set"]
COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_IN_VALUES = 1000

JSON_TYPE = "JSONType(properties, {{{key}:String}})"
IS_STRING = JSON_TYPE + " = 'String'"
IS_NUMBER = JSON_TYPE + " IN ('Int64', 'UInt64', 'Double')"
IS_BOOL = JSON_TYPE + " = 'Bool'"
AS_STRING = "JSONExtractString(properties, {{{key}:String}})"
AS_NUMBER = "JSONExtractFloat(properties, {{{key}:String}})"
AS_BOOL = "JSONExtractBool(properties, {{{key}:String}})"


class PropertyFilter(BaseModel):
    """`{"property": p, "op": ..., "value": v}` on an event's properties."""

    model_config = ConfigDict(extra="forbid")

    property: PropertyName
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
    if op == "is_set":
        return None
    if op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
            return f"value must be a list of 1 to {MAX_IN_VALUES} strings, numbers or booleans"
        return None
    if value is None or isinstance(value, list):
        return "value must be a string, number or boolean"
    if op in COMPARISONS and not is_number(value):
        return "value must be a number"
    if op == "contains" and not isinstance(value, str):
        return "value must be a string"
    return None


def filter_sql(flt: PropertyFilter, name: str, params: dict[str, Any]) -> str:
    """A boolean SQL expression for one filter; its key and values go into `params` under `name`."""
    key = f"{name}_k"
    params[key] = flt.property
    if flt.op == "is_set":
        return f"({JSON_TYPE.format(key=key)} != 'Null')"
    if flt.op == "in":
        return in_sql(key, flt.value if isinstance(flt.value, list) else [], f"{name}_v", params)
    if flt.op in COMPARISONS:
        params[f"{name}_v"] = float(cast(float, flt.value))  # a number: checked by the model
        compare = f"{AS_NUMBER.format(key=key)} {COMPARISONS[flt.op]} {{{name}_v:Float64}}"
        return f"({IS_NUMBER.format(key=key)} AND {compare})"
    if flt.op == "contains":
        params[f"{name}_v"] = flt.value
        found = f"position({AS_STRING.format(key=key)}, {{{name}_v:String}}) > 0"
        return f"({IS_STRING.format(key=key)} AND {found})"
    equal = equals_sql(key, flt.value, f"{name}_v", params)
    return f"(NOT {equal})" if flt.op == "neq" else equal


def equals_sql(key: str, value: Any, name: str, params: dict[str, Any]) -> str:
    """The property equals `value`, compared within the value's JSON kind."""
    if isinstance(value, bool):
        params[name] = int(value)
        return f"({IS_BOOL.format(key=key)} AND {AS_BOOL.format(key=key)} = {{{name}:UInt8}})"
    if is_number(value):
        params[name] = float(value)
        return f"({IS_NUMBER.format(key=key)} AND {AS_NUMBER.format(key=key)} = {{{name}:Float64}})"
    params[name] = value
    return f"({IS_STRING.format(key=key)} AND {AS_STRING.format(key=key)} = {{{name}:String}})"


def in_sql(key: str, values: list[Any], name: str, params: dict[str, Any]) -> str:
    """The property equals one of `values`: one `has()` per JSON kind present in the list."""
    kinds = [
        ([int(v) for v in values if isinstance(v, bool)], "UInt8", IS_BOOL, AS_BOOL),
        ([float(v) for v in values if is_number(v)], "Float64", IS_NUMBER, AS_NUMBER),
        ([v for v in values if isinstance(v, str)], "String", IS_STRING, AS_STRING),
    ]
    parts = []
    for i, (members, ch_type, is_kind, extract) in enumerate(kinds):
        if members:
            params[f"{name}{i}"] = members
            has = f"has({{{name}{i}:Array({ch_type})}}, {extract.format(key=key)})"
            parts.append(f"({is_kind.format(key=key)} AND {has})")
    return f"({' OR '.join(parts)})" if parts else "0"


def all_filters_sql(filters: list[PropertyFilter], prefix: str, params: dict[str, Any]) -> str:
    """The AND of several filters ("1" when there are none)."""
    parts = [filter_sql(f, f"{prefix}{i}", params) for i, f in enumerate(filters)]
    return " AND ".join(parts) if parts else "1"
