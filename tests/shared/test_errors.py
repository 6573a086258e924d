"""Errors: ClickHouse failures become user-safe kinds; each kind gets its status and a JSON body."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared import errors
from shared.clickhouse import ClickHouse
from shared.http import install_error_handlers


async def test_a_query_over_its_time_limit_is_cancelled(clickhouse: ClickHouse) -> None:
    with pytest.raises(errors.QueryTimeout) as cancelled:
        await clickhouse.query(
            "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1", timeout=0.5
        )
    assert "took too long" in cancelled.value.message


async def test_a_rejected_query_does_not_leak_its_sql(clickhouse: ClickHouse) -> None:
    with pytest.raises(errors.QueryFailed) as failed:
        await clickhouse.query("SELECT secret_column FROM table_that_does_not_exist")
    assert "secret_column" not in failed.value.message
    assert "table_that_does_not_exist" not in failed.value.message


async def test_values_travel_as_parameters_not_sql(clickhouse: ClickHouse) -> None:
    hostile = "x' OR 1=1 --"
    rows = await clickhouse.query("SELECT {v:String} AS v, length({v:String})", {"v": hostile})
    assert rows == [(hostile, len(hostile))]


CASES = [
    (errors.InvalidRequest("bad"), 422, None),
    (errors.MalformedBody("bad json"), 400, None),
    (errors.NotFound("nope"), 404, None),
    (errors.PayloadTooLarge("big"), 413, None),
    (errors.Unauthorized("who"), 401, None),
    (errors.Forbidden("no"), 403, None),
    (errors.RateLimited("slow down", retry_after=3), 429, "3"),
    (errors.BrokerUnavailable("kafka"), 503, "2"),
    (errors.StorageUnavailable("clickhouse"), 503, "5"),
    (errors.QueryTimeout("slow"), 504, "10"),
    (errors.QueryFailed("bug"), 500, None),
]


@pytest.mark.parametrize(("error", "status", "retry_after"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_each_error_kind_has_its_status_and_a_json_body(
    error: Exception, status: int, retry_after: str | None
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    response = TestClient(app).get("/boom")
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error.code and body["message"] == error.message
    assert response.headers.get("Retry-After") == retry_after


def test_unexpected_errors_answer_500_json_without_internals() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail /etc/passwd")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "passwd" not in response.text


def test_unknown_routes_and_methods_answer_json() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/only-get")
    async def only_get() -> dict[str, str]:
        return {}

    client = TestClient(app)
    assert client.get("/missing").json()["error"] == "not_found"
    assert client.post("/only-get").json()["error"] == "method_not_allowed"


def test_a_pattern_clickhouse_cannot_compile_is_the_clients_error() -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    from shared.clickhouse import map_error
    from shared.errors import InvalidRequest

    mapped = map_error(
        DatabaseError("Code: 427. DB::Exception: OptimizedRegularExpression: cannot compile re2")
    )
    assert isinstance(mapped, InvalidRequest) and "RE2" in mapped.message
