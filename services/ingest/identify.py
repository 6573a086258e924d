"""POST /api/v1/identify: an anonymous visitor is the user who just signed in (one person from now on,
and retroactively). Stored as an `$identify` event of the user that links the anonymous id to it; its
`properties` are the person's properties (shared/contracts/persons.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.ingest.intake import IngestResult, ingest_items
from shared.contracts.events import AcceptedEvent, IncomingEvent, check_properties, check_timestamp
from shared.contracts.limits import MAX_ID_LENGTH
from shared.contracts.persons import IDENTIFY_EVENT
from shared.deps import IngestKey, ProducerDep, TopicsDep
from shared.http import ERROR_RESPONSES


class IdentifyRequest(BaseModel):
    """`anonymous_id` (the id the visitor had) is `user_id` (the id they have now)."""

    model_config = ConfigDict(extra="forbid")

    anonymous_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    timestamp: datetime | None = Field(None, description="ISO 8601; UTC when no zone; default: time received")
    properties: dict[str, Any] = Field(default_factory=dict, description="The person's properties ($set)")
    event_id: uuid.UUID | None = Field(None, description="Idempotency key; generated when absent")

    @field_validator("user_id")
    @classmethod
    def _two_ids(cls, user_id: str, info: ValidationInfo) -> str:
        if user_id == info.data.get("anonymous_id"):
            raise ValueError("must differ from anonymous_id (an id cannot be linked to itself)")
        return user_id

    @field_validator("timestamp")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_timestamp(value)

    @field_validator("properties")
    @classmethod
    def _fit(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_properties(value)

    def as_event(self, received_at: datetime) -> AcceptedEvent:
        return IncomingEvent(
            event=IDENTIFY_EVENT,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            timestamp=self.timestamp,
            properties=self.properties,
            event_id=self.event_id,
        ).accept(received_at)


def build_router() -> APIRouter:
    router = APIRouter(tags=["ingest"])

    @router.post(
        "/api/v1/identify",
        status_code=202,
        response_model=IngestResult,
        responses={**ERROR_RESPONSES, 503: {"description": "Kafka did not acknowledge in time; retry"}},
        summary="Link an anonymous id to a user id (202 after Kafka acknowledged)",
    )
    async def identify(
        body: IdentifyRequest, _: IngestKey, producer: ProducerDep, topics: TopicsDep
    ) -> IngestResult:
        """The anonymous id and the user id are one person from now on, and for their past events."""
        return await ingest_items(
            [body], producer=producer, topics=topics, convert=lambda item, now: item.as_event(now)
        )

    return router
