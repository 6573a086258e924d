"""Fuzzing with schemathesis against the OpenAPI schema of the all-in-one process: every operation,
with and without valid keys. No 5xx, every response matches its documented schema, errors are JSON."""

from __future__ import annotations

import os
import traceback

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from deploy.processes import ServiceProcess
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, module_all_in_one

# Cases per operation for each key kind: a few hundred per operation in all.
KEY_CASES = {
    "none": (None, 25),
    "unknown": ("unknown-key-0123456789abcdef", 25),
    "ingest": (INGEST_KEY, 60),
    "read": (READ_KEY, 80),
    "admin": (ADMIN_KEY, 80),
}
SEGMENT_PREFIX = "/v1/"
# Conformance only: business rules the schema cannot express (e.g. "user_id or anonymous_id", a range of
# at most 366 days) make schemathesis' positive/negative data checks report valid 422s as failures.
CONFORMANCE = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


fuzz_system = module_all_in_one(
    "fuzz",
    {
        "ETL_SCHEDULE_ENABLED": "false",
        "ANALYTICS_RATE_LIMIT_QUERY": "0",
        "ANALYTICS_RATE_LIMIT_INGEST": "0",
        "ETL_MAX_RUN_DAYS": "31",
    },
)


def operations(url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def headers_for(operation: schemathesis.APIOperation, key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    if operation.path.startswith(SEGMENT_PREFIX):
        import base64

        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    return {"Authorization": f"Bearer {key}"}


def fuzz(operation: schemathesis.APIOperation, url: str, headers: dict[str, str], examples: int) -> None:
    """Run `examples` generated cases against one operation; raise on the first kind of failure."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, headers={**(case.headers or {}), **headers}, timeout=60)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
        if response.status_code >= 400:
            content_type = response.headers.get("content-type") or [""]
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            assert content_type.startswith("application/json"), response.text[:200]
            body = response.json()
            assert "error" in body or ("type" in body and "detail" in body)  # ours, or PostHog's shape
        case.validate_response(response, checks=CONFORMANCE)

    check()


@pytest.mark.parametrize("kind", list(KEY_CASES))
def test_fuzz_every_operation(fuzz_system: ServiceProcess, kind: str) -> None:
    key, examples = KEY_CASES[kind]
    examples = max(1, int(examples * float(os.environ.get("FUZZ_SCALE", "1"))))
    failures: list[str] = []
    for operation in operations(fuzz_system.url):
        try:
            fuzz(operation, fuzz_system.url, headers_for(operation, key), examples)
        except Exception as exc:  # collect every operation's failures, then report them together
            details = [
                "".join(traceback.format_exception(e)[-4:])[:1500] for e in getattr(exc, "exceptions", [exc])
            ]
            failures.append(f"{operation.method.upper()} {operation.path}:\n" + "\n".join(details))
    assert not failures, "\n\n".join(failures)


def test_the_schema_is_served_and_valid(fuzz_system: ServiceProcess) -> None:
    spec = httpx.get(f"{fuzz_system.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert len(operations(fuzz_system.url)) == sum(len(v) for v in spec["paths"].values())
