"""The API's own OpenAPI document, fuzzed with schemathesis: whatever a client sends, no 500 and no
answer that breaks the document (ARM's error envelope included). Bounded for CI by
STRONGROOM_FUZZ_EXAMPLES examples per operation (the full run: set it higher)."""

import os

import pytest
import schemathesis
from schemathesis import checks
from hypothesis import HealthCheck, settings

from portal.wsgi import application

schema = schemathesis.openapi.from_wsgi("/providers/Strongroom/openapi.json", application)
EXAMPLES = int(os.environ.get("STRONGROOM_FUZZ_EXAMPLES", "12"))


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
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_every_input_within_its_document(case, fuzz_world):
    # Half the cases address the seeded lab's subscription and resource group, so they reach real lookups.
    if case.path_parameters and hash(repr(case.path_parameters)) % 2:
        for name, value in fuzz_world["paths"].items():
            if name in case.path_parameters:
                case.path_parameters[name] = value
    # Not failures here: a schema-valid body ARM refuses on meaning (a location no region has: 400), and an
    # unknown query parameter ARM ignores (accepted). Both turn up once the run is longer than CI's.
    case.call_and_validate(headers=fuzz_world["headers"],
                           excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection])
