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
