"""Property references shared by the funnel and the retention queries: an event's property or its
person's, read as a (missing, value) key, as breakdowns and held properties compare them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.query.filters import PropertyFilter, PropertyName
from shared.contracts.storage import PERSON_PROPERTIES

MAX_PROPERTY_NAME_LENGTH = 200  # as filters.PropertyName
NO_KEY = "(false, '')"
Filters = Annotated[list[PropertyFilter], Field(max_length=20)]


class PropertyRef(BaseModel):
    """A property of the event (`source: event`, the default) or of the event's person."""

    model_config = ConfigDict(extra="forbid")

    property: PropertyName
    source: Literal["event", "person"] = "event"


def ref_of(value: Any) -> Any:
    """A bare name is an event property (checked here, so a bad name is reported where it was given)."""
    if not isinstance(value, str):
        return value
    if not 1 <= len(value) <= MAX_PROPERTY_NAME_LENGTH:
        raise ValueError(f"a property name has 1 to {MAX_PROPERTY_NAME_LENGTH} characters")
    return {"property": value}


Property = Annotated[PropertyRef, BeforeValidator(ref_of, json_schema_input_type=PropertyName | PropertyRef)]


def key_sql(param: str, source: str = "event") -> str:
    """(missing, value) of the property named by `{param:String}`, from one parse of the JSON of the
    event's properties (or its person's): null counts as missing, strings are their text, anything
    else its JSON text. (The typing rule of property values may change with issue 14; it lives here.)"""
    json = "properties" if source == "event" else f"({PERSON_PROPERTIES})"
    raw = f"{param}_raw"
    return (
        f"((JSONExtractRaw({json}, {{{param}:String}}) AS {raw}) IN ('', 'null'), "
        f"multiIf({raw} IN ('', 'null'), '', startsWith({raw}, '\"'), JSONExtractString({raw}), {raw}))"
    )
