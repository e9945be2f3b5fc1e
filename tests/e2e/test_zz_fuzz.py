"""Property-based fuzzing of the whole API from its own OpenAPI schema: no input gives a 5xx.

Named to run last in the e2e session: fuzzed orders rest in the shared books.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from tests.e2e.conftest import Trader

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def api_schema(stack):
    config = SchemathesisConfig()
    config.projects.default.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES_PER_OPERATION,
        database="none",
    )
    return schemathesis.openapi.from_url(f"{stack.url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def fuzzer_headers(stack) -> dict:
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        return Trader(api, deposit="1000").headers


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gives_a_server_error(case, stack, fuzzer_headers):
    case.call_and_validate(base_url=stack.url, headers=fuzzer_headers, checks=[not_a_server_error])
