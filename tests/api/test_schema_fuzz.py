"""The API's own OpenAPI document, fuzzed with schemathesis: whatever a client sends, no 500 and no
answer that breaks the document (ARM's error envelope included). Bounded for CI by
STRONGROOM_FUZZ_EXAMPLES examples per operation (the full run: set it higher)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from portal.wsgi import application

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, ignored_auth, response_schema_conformance, status_code_conformance,
)

schema = schemathesis.openapi.from_wsgi("/providers/Strongroom/openapi.json", application)
# The document types ARM's bodies loosely (any object), so "a schema-valid request must be accepted" does
# not hold; these do: no 500, answers as documented (ARM's error envelope included), and no route that
# answers without a token.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance, ignored_auth]
EXAMPLES = int(os.environ.get("STRONGROOM_FUZZ_EXAMPLES", "40"))


@pytest.fixture
def fuzz_world(lab, backup_admin):
    from django.core import signals
    from django.db import close_old_connections

    from portal.api import tokens

    # As django.test.Client does: the WSGI app must not close the test's connection after a request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    group = lab.lab_group
    token, _ = tokens.issue(backup_admin)
    yield {
        "headers": {"Authorization": f"Bearer {token}"},
        "paths": {"subscriptionId": str(group.subscription.subscription_id), "resourceGroupName": group.name},
    }
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_api_answers_every_input_within_its_document(fuzz_world):
    """One test over every operation (the lab world is built once): each gets EXAMPLES generated
    requests; every operation's first failure is reported."""
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def fuzz(case):
            # Half the cases address the seeded lab's subscription and resource group, so they reach real lookups.
            if case.path_parameters and hash(repr(sorted(case.path_parameters.items()))) % 2:
                for name, value in fuzz_world["paths"].items():
                    if name in case.path_parameters:
                        case.path_parameters[name] = value
            case.call_and_validate(headers=fuzz_world["headers"], checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001  (reported with the others)
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert len(operations) > 40
    assert not failures, "\n\n".join(failures)
