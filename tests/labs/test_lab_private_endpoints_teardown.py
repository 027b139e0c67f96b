"""A sandbox that did the private endpoint lab can be taken down: its endpoints go (through the inventory's
service, as the sandbox provisioner) before its DNS zones and VNets."""

import pytest

from labs import services, teardown
from labs.models import Sandbox
from portal.inventory.models import PrivateDnsZone, PrivateEndpoint, VirtualNetwork
from tests.labs.conftest import solve
from vaults.models import PrivateEndpointConnection

pytestmark = pytest.mark.django_db


def test_take_down_after_the_private_endpoint_lab(lab, trainee, start):
    run = start("private-endpoints")
    for key in ("network", "vault", "deny", "endpoint", "dns"):
        solve(run, key)
    subscription_id = run.sandbox.subscription_id
    assert PrivateEndpoint.objects.filter(resource_id__istartswith=subscription_id + "/").exists()

    services.reset_lab(trainee, run, run_jobs_inline=True)
    gone = teardown.take_down(Sandbox.objects.get(pk=run.sandbox.pk))

    assert (gone.status, gone.kept_because) == (Sandbox.Status.DELETED, "")
    for model in (PrivateEndpoint, PrivateDnsZone, VirtualNetwork):
        assert not model.objects.filter(resource_id__istartswith=subscription_id + "/").exists(), model
    assert not PrivateEndpointConnection.objects.filter(vault__resource_id__istartswith=subscription_id + "/").exists()


def test_two_trainees_do_the_private_endpoint_lab(lab, make_trainee):
    """Each sandbox has its own 'pe-backup': an endpoint's name is unique in its resource group, as in Azure."""
    runs = [services.start_lab(make_trainee(), "private-endpoints", run_jobs_inline=True) for _ in range(2)]
    for run in runs:
        for key in ("network", "vault", "deny", "endpoint"):
            solve(run, key)
    endpoints = [PrivateEndpoint.objects.get(resource_id__istartswith=f"{run.sandbox.subscription_id}/")
                 for run in runs]
    assert endpoints[0].name == endpoints[1].name and endpoints[0].resource_group != endpoints[1].resource_group
