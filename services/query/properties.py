"""Property references shared by the funnel and the retention queries: an event's property or its
person's (`"plan"`, `"person.plan"` or `{"property": "plan", "source": "person"}`), read as a breakdown
bucket (kind, number, text) by the typing rule (shared/contracts/property_types.py), as breakdowns and
held properties compare them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from services.query.filters import PropertyFilter, PropertyName, PropertyRef, json_sql
from shared.contracts import property_types as pt

__all__ = ["KEY_TYPE", "NO_KEY", "Filters", "Property", "PropertyRef", "key_sql"]

MAX_PROPERTY_NAME_LENGTH = 200  # as filters.PropertyName
NO_KEY = f"(toUInt8({pt.BUCKET_NONE}), toFloat64(0), '')"
KEY_TYPE = "Tuple(UInt8, Float64, String)"
Filters = Annotated[list[PropertyFilter], Field(max_length=20)]


def ref_of(value: Any) -> Any:
    """A bare name is a property (checked here, so a bad name is reported where it was given)."""
    if not isinstance(value, str):
        return value
    if not 1 <= len(value) <= MAX_PROPERTY_NAME_LENGTH:
        raise ValueError(f"a property name has 1 to {MAX_PROPERTY_NAME_LENGTH} characters")
    return {"property": value}


Property = Annotated[PropertyRef, BeforeValidator(ref_of, json_schema_input_type=PropertyName | PropertyRef)]


def key_sql(param: str, ref: PropertyRef) -> str:
    """The bucket (kind, number, text) of the property named by `{param:String}` in the event's
    properties (or its person's): values are equal when their buckets are."""
    return pt.bucket(pt.raw(json_sql(ref), f"{{{param}:String}}"))
