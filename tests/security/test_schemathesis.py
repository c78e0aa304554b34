"""Schemathesis against /openapi.json: valid and invalid requests generated for every operation, with and
without the API key, a bounded number of examples each; zero server errors (5xx) allowed.

Driven through hypothesis directly: schemathesis 4.32's pytest plugin (`from_fixture`) reads
`request.node._nodeid`, which pytest 9 no longer has, and loading the schema at import would need the
stack before collection."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from lab.config import settings
from tests.security.conftest import KEY

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]
MAX_EXAMPLES = 15  # per operation, mode and key setting: bounded, so the suite's time stays predictable


def operations() -> list:
    schema = schemathesis.openapi.from_url(f"{settings.api_base}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("headers", [KEY, {}], ids=["with key", "without key"])
def test_no_generated_request_gets_a_server_error(mode, headers, api):
    server_errors: list[str] = []
    started: list[str] = []
    for operation in operations():
        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                             database=None)
        def call(case) -> None:
            response = case.call(headers=headers)
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path}: {response.status_code} "
                                     f"{response.text[:200]}")
            if response.status_code == 201 and case.formatted_path == "/streams/start":
                started.append(response.json()["stream_id"])
            case.validate_response(response, checks=[not_a_server_error])

        call()
    for stream_id in started:  # leave no generated live stream running for the suites after this one
        api.post("/streams/end", headers=KEY, json={"stream_id": stream_id})
    assert not server_errors, server_errors
