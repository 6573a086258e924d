"""Saved insights and dashboards over HTTP (the routes in-process, over real ClickHouse): who may create,
open, change and delete them, what makes one valid, and that only a digest of the creator's key is kept."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager

import httpx

from services.query import saved_routes
from services.query.saved_store import owner_hash
from shared.clickhouse import ClickHouse
from shared.contracts.storage import SAVED_ITEMS_TABLE
from tests.query.app import query_client
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, auth

OTHER_READ_KEY = "test-other-read-key-0123456789"
FUNNEL = {
    "name": "Signup to purchase",
    "type": "funnel",
    "query": {"steps": ["signup", "purchase"], "mode": "strict", "breakdown": "plan"},
    "date_range": {"last_days": 30},
}


def saved_client(clickhouse: ClickHouse) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client for the saved-item routes over `clickhouse`; pass each request's key in `headers`."""
    return query_client(
        clickhouse, None, router=saved_routes.build_router(), read_keys=(READ_KEY, OTHER_READ_KEY)
    )


async def test_an_insight_is_saved_listed_opened_and_normalized(clickhouse: ClickHouse) -> None:
    async with saved_client(clickhouse) as client:
        created = await client.post("/api/v1/insights", json=FUNNEL, headers=auth(READ_KEY))
        assert created.status_code == 201, created.text
        insight = created.json()
        assert insight["name"] == "Signup to purchase" and insight["can_edit"] is True
        # The query as the funnel endpoint reads it: bare step names become steps, defaults are filled.
        assert insight["query"]["steps"] == [
            {"event": "signup", "filters": []},
            {"event": "purchase", "filters": []},
        ]
        assert insight["query"]["window_seconds"] == 14 * 24 * 3600
        assert insight["date_range"] == {"last_days": 30} and insight["timezone"] == "UTC"

        listed = (await client.get("/api/v1/insights", headers=auth(OTHER_READ_KEY))).json()["insights"]
        assert [i["id"] for i in listed] == [insight["id"]]
        assert listed[0]["can_edit"] is False  # another read key sees it, but did not create it
        opened = await client.get(f"/api/v1/insights/{insight['id']}", headers=auth(ADMIN_KEY))
        assert opened.json()["can_edit"] is True  # admin keys may change anything
        assert (await client.get("/api/v1/insights?type=retention", headers=auth(READ_KEY))).json() == {
            "insights": []
        }


async def test_invalid_insights_are_refused_naming_the_field(clickhouse: ClickHouse) -> None:
    cases = {
        "one step": ({**FUNNEL, "query": {"steps": ["signup"]}}, "query.steps"),
        "dates in the query": ({**FUNNEL, "query": {**FUNNEL["query"], "start_date": "2023-01-01"}}, "query"),
        "unknown mode": ({**FUNNEL, "query": {**FUNNEL["query"], "mode": "sideways"}}, "query.mode"),
        "unknown type": ({**FUNNEL, "type": "pie"}, "type"),
        "blank name": ({**FUNNEL, "name": "   "}, "name"),
        "backwards range": (
            {**FUNNEL, "date_range": {"start_date": "2023-02-01", "end_date": "2023-01-01"}},
            "",
        ),
        "no days": ({**FUNNEL, "date_range": {"last_days": 0}}, "date_range"),
        "retention field": ({**FUNNEL, "type": "retention", "query": {"cohort": "weekly"}}, "cohort"),
        "metric name": ({**FUNNEL, "type": "metric", "query": {"metric": "DAU; DROP"}}, "query.metric"),
        "huge number": (  # valid JSON, and valid for the funnel, but beyond what storage holds
            {
                **FUNNEL,
                "query": {**FUNNEL["query"], "filters": [{"property": "n", "op": "eq", "value": 10**30}]},
            },
            "too large",
        ),
    }
    async with saved_client(clickhouse) as client:
        for case, (body, named) in cases.items():
            response = await client.post("/api/v1/insights", json=body, headers=auth(READ_KEY))
            assert response.status_code == 422, (case, response.text)
            error = response.json()
            assert error["error"] in ("validation_error", "invalid_request"), case
            assert named in error["message"], (case, error["message"])
        assert (await client.get("/api/v1/insights", headers=auth(READ_KEY))).json() == {"insights": []}


async def test_only_the_creator_or_an_admin_changes_or_deletes(clickhouse: ClickHouse) -> None:
    async with saved_client(clickhouse) as client:
        made = (await client.post("/api/v1/insights", json=FUNNEL, headers=auth(READ_KEY))).json()
        path = f"/api/v1/insights/{made['id']}"
        renamed = {**FUNNEL, "name": "Renamed"}

        for method, body in (("PUT", renamed), ("DELETE", None)):
            refused = await client.request(method, path, json=body, headers=auth(OTHER_READ_KEY))
            assert refused.status_code == 403, refused.text
            assert "only the key that created" in refused.json()["message"]
            assert (
                await client.request(method, path, json=body, headers=auth(INGEST_KEY))
            ).status_code == 403
            assert (await client.request(method, path, json=body)).status_code == 401

        changed = (await client.put(path, json=renamed, headers=auth(READ_KEY))).json()
        assert changed["name"] == "Renamed" and changed["created_at"] == made["created_at"]
        assert changed["updated_at"] > made["updated_at"]
        deleted = await client.delete(path, headers=auth(READ_KEY))
        assert deleted.json() == {"id": made["id"], "deleted": True}
        gone = await client.get(path, headers=auth(READ_KEY))
        assert gone.status_code == 404 and gone.json()["error"] == "not_found"
        assert (await client.delete(path, headers=auth(READ_KEY))).status_code == 404

        others = (await client.post("/api/v1/insights", json=FUNNEL, headers=auth(OTHER_READ_KEY))).json()
        by_admin = await client.delete(f"/api/v1/insights/{others['id']}", headers=auth(ADMIN_KEY))
        assert by_admin.status_code == 200
        assert (await client.get("/api/v1/insights", headers=auth(READ_KEY))).json() == {"insights": []}


async def test_only_a_digest_of_the_creators_key_is_stored(clickhouse: ClickHouse) -> None:
    async with saved_client(clickhouse) as client:
        await client.post("/api/v1/insights", json=FUNNEL, headers=auth(READ_KEY))
        await client.post("/api/v1/dashboards", json={"name": "d", "tiles": []}, headers=auth(READ_KEY))
    rows = await clickhouse.query(f"SELECT * FROM {SAVED_ITEMS_TABLE}")
    assert len(rows) == 2
    for row in rows:
        assert READ_KEY not in repr(row)
        assert owner_hash(READ_KEY) in row
    assert owner_hash(READ_KEY) != owner_hash(OTHER_READ_KEY)


async def test_a_dashboard_arranges_insights_and_opens_for_any_read_key(clickhouse: ClickHouse) -> None:
    async with saved_client(clickhouse) as client:
        funnel = (await client.post("/api/v1/insights", json=FUNNEL, headers=auth(READ_KEY))).json()
        events = {
            "name": "Top",
            "type": "events",
            "date_range": {"start_date": "2023-01-01", "end_date": "2023-01-31"},
        }
        top = (await client.post("/api/v1/insights", json=events, headers=auth(READ_KEY))).json()
        tiles = [{"insight_id": top["id"], "width": "full"}, {"insight_id": funnel["id"]}]
        made = await client.post(
            "/api/v1/dashboards", json={"name": "Growth", "tiles": tiles}, headers=auth(READ_KEY)
        )
        assert made.status_code == 201, made.text
        dashboard = made.json()
        assert [(t["insight_id"], t["width"]) for t in dashboard["tiles"]] == [
            (top["id"], "full"),
            (funnel["id"], "half"),
        ]
        assert dashboard["tiles"][0]["insight"]["query"] == {"limit": 10}

        shared = (
            await client.get(f"/api/v1/dashboards/{dashboard['id']}", headers=auth(OTHER_READ_KEY))
        ).json()
        assert shared["name"] == "Growth" and shared["can_edit"] is False
        assert [t["insight"]["name"] for t in shared["tiles"]] == ["Top", "Signup to purchase"]
        rearranged = {"name": "Growth", "tiles": list(reversed(tiles))}
        path = f"/api/v1/dashboards/{dashboard['id']}"
        assert (await client.put(path, json=rearranged, headers=auth(OTHER_READ_KEY))).status_code == 403
        moved = (await client.put(path, json=rearranged, headers=auth(READ_KEY))).json()
        assert [t["insight_id"] for t in moved["tiles"]] == [funnel["id"], top["id"]]

        await client.delete(f"/api/v1/insights/{top['id']}", headers=auth(READ_KEY))
        after = (await client.get(path, headers=auth(READ_KEY))).json()
        assert [t["insight"] is None for t in after["tiles"]] == [False, True]
        listed = (await client.get("/api/v1/dashboards", headers=auth(OTHER_READ_KEY))).json()["dashboards"]
        assert [(d["name"], d["tiles"], d["can_edit"]) for d in listed] == [("Growth", 2, False)]


async def test_a_dashboard_refuses_tiles_of_unknown_insights(clickhouse: ClickHouse) -> None:
    missing = str(uuid.uuid4())
    async with saved_client(clickhouse) as client:
        body = {"name": "Growth", "tiles": [{"insight_id": missing}]}
        refused = await client.post("/api/v1/dashboards", json=body, headers=auth(READ_KEY))
        assert refused.status_code == 422
        assert refused.json()["details"][0]["loc"] == ["body", "tiles", 0, "insight_id"]
        assert missing in refused.json()["message"]
        absent = await client.get(f"/api/v1/dashboards/{missing}", headers=auth(READ_KEY))
        assert absent.status_code == 404 and absent.json()["error"] == "not_found"
        malformed = await client.get("/api/v1/dashboards/not-a-uuid", headers=auth(READ_KEY))
        assert malformed.status_code == 422 and malformed.json()["error"] == "validation_error"
