"""Issue 16, "Done when": schemathesis over every operation of the OpenAPI document, on SQLite and
PostgreSQL, as an administrator: no 5xx and every documented answer matches its declared schema.

Bounded: ``MAX_EXAMPLES`` positive cases per operation (plus its explicit examples), no shrinking
database, no deadline; the whole test stays well under a minute per backend. A failure lists every
operation and check that failed, each with a curl-like reproduction from schemathesis.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlmodel import Session

from confsvc.users.models import Role
from tests.factories import bearer, make_user

MAX_EXAMPLES = 3
#: Operations left out, and why (each one an issue to fix, never a silent gap).
SKIPPED: dict[tuple[str, str], str] = {}


def test_every_operation_answers_without_5xx_and_as_declared(client: TestClient, session: Session) -> None:
    headers = bearer(session, make_user(session, Role.admin, username="schemathesis"))
    session.commit()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        operations += 1

        @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - every operation is tried; all failures are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:3000]}")
    assert operations > 60
    assert failures == [], "\n\n".join(failures)


@pytest.mark.pure
def test_schemathesis_skips_nothing_silently() -> None:
    assert all(reason for reason in SKIPPED.values())
