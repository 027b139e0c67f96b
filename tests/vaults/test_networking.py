"""The vault's networking services and guards: public access, private endpoints and their approval, the
private endpoint rules, DNS records, notifications, and the network guard's decisions."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import dns
from portal.inventory.models import DnsRecord, PrivateDnsZone, PrivateEndpoint, VirtualNetworkLink
from portal.models import Operation
from security import operations as ops
from security import roles
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry
from tests.vaults._network_fixtures import grant, make_vnet, network_requester
from vaults.models import PrivateEndpointConnection, PublicNetworkAccess, StorageRedundancy
from vaults.models import PrivateEndpointConnectionState as State
from vaults.networking import guard, names
from vaults.networking import services as net

pytestmark = pytest.mark.django_db


@pytest.fixture
def subnet(lab):
    return make_vnet(lab)


def create(principal, vault, subnet, name="pe-vault", *, group_id=names.PRIMARY, integrate=True, group=None, message=""):
    return net.create_private_endpoint(principal, name=name, resource_group=group or subnet.virtual_network.resource_group,
                                       vault=vault, group_id=group_id, subnet=subnet, integrate_dns=integrate,
                                       tags={"env": "test"}, request_message=message)


def source(subnet=None, name="sa-source"):
    return SimpleNamespace(name=name, network_subnet=subnet)


def deny(trainer, vault):
    return net.set_public_network_access(trainer, vault, PublicNetworkAccess.DISABLED)


# --- public access -------------------------------------------------------------------------------


def test_public_access_deny_and_allow_are_logged(trainer, vault):
    deny(trainer, vault)
    vault.refresh_from_db()
    assert vault.public_network_access == PublicNetworkAccess.DISABLED
    entry = ActivityLogEntry.objects.filter(operation=ops.VAULT_PUBLIC_ACCESS_WRITE).latest("timestamp")
    assert entry.status == "Succeeded" and entry.details["publicNetworkAccess"] == "Disabled"
    net.set_public_network_access(trainer, vault, PublicNetworkAccess.ENABLED)
    vault.refresh_from_db()
    assert vault.public_network_access == PublicNetworkAccess.ENABLED


def test_public_access_refuses_an_unknown_value_and_a_reader(trainer, vault, principal_with):
    with pytest.raises(ValidationError) as exc:
        net.set_public_network_access(trainer, vault, "Sometimes")
    assert "Allow from all networks" in str(exc.value)
    reader = principal_with(roles.READER)
    with pytest.raises(GuardDenied) as denied:
        deny(reader, vault)
    assert denied.value.decision.guard == "RBAC"
    vault.refresh_from_db()
    assert vault.public_network_access == PublicNetworkAccess.ENABLED


# --- create, approval, DNS ----------------------------------------------------------------------


def test_owner_gets_an_approved_endpoint_with_ten_ips_and_dns_records(trainer, vault, subnet):
    connection = create(trainer, vault, subnet)
    assert connection.state == State.APPROVED and connection.decided_by == trainer
    endpoint = connection.private_endpoint
    assert len(endpoint.private_ips) == names.IPS_PER_ENDPOINT == 10
    assert endpoint.private_ips[0] == "10.20.1.4"  # Azure keeps .0–.3
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(subnet.address_prefix) for ip in endpoint.private_ips)
    zones = set(PrivateDnsZone.objects.filter(resource_group=endpoint.resource_group).values_list("name", flat=True))
    assert zones == {dns.backup_zone_name(vault.region), dns.BLOB_ZONE_NAME, dns.QUEUE_ZONE_NAME}
    assert VirtualNetworkLink.objects.filter(virtual_network=subnet.virtual_network).count() == 3
    assert DnsRecord.objects.filter(private_endpoint=endpoint).count() == 10
    answer = dns.resolve(subnet.virtual_network, names.data_fqdn(vault))
    assert answer.private and answer.addresses[0] in endpoint.private_ips
    assert dns.resolve(None, names.data_fqdn(vault)).addresses[0].startswith("203.0.113.")
    entry = ActivityLogEntry.objects.filter(operation=ops.PRIVATE_ENDPOINT_WRITE, status="Succeeded").latest("timestamp")
    assert entry.details["connectionState"] == "Approved" and len(entry.details["privateIps"]) == 10


def test_someone_without_the_approval_action_gets_a_pending_connection_and_the_owner_is_notified(
        lab, trainer, vault, subnet, principal_with, django_capture_on_commit_callbacks):
    person = network_requester(lab, principal_with, subnet)
    with django_capture_on_commit_callbacks(execute=True):
        connection = create(person, vault, subnet, message="Backups of the workload VNet")
    assert connection.state == State.PENDING and connection.description == "Backups of the workload VNet"
    assert not DnsRecord.objects.filter(private_endpoint=connection.private_endpoint).exists()
    assert trainer in net.approvers(vault) and person not in net.approvers(vault)
    assert Operation.objects.filter(principal=trainer, status="Pending", title__contains="waiting for your approval").exists()

    with django_capture_on_commit_callbacks(execute=True):
        net.approve_connection(trainer, connection, description="OK for backups")
    connection.refresh_from_db()
    assert connection.state == State.APPROVED and connection.decided_by == trainer
    assert DnsRecord.objects.filter(private_endpoint=connection.private_endpoint).count() == 10
    assert Operation.objects.filter(principal=person, status="Approved").exists()
    entry = ActivityLogEntry.objects.filter(operation=ops.PE_CONNECTION_APPROVAL, status="Succeeded").latest("timestamp")
    assert entry.details["requestedBy"] == person.display_name and entry.details["decidedBy"] == trainer.display_name


def test_the_requester_cannot_approve_their_own_connection(lab, vault, subnet, principal_with):
    person = network_requester(lab, principal_with, subnet)
    connection = create(person, vault, subnet)
    with pytest.raises(GuardDenied):
        net.approve_connection(person, connection, description="me")


def test_reject_remove_and_delete_take_the_records_away(lab, trainer, vault, subnet, principal_with):
    first = create(trainer, vault, subnet, "pe-one")
    endpoint = first.private_endpoint
    net.reject_connection(trainer, first, description="Not this VNet")
    first.refresh_from_db()
    assert first.state == State.REJECTED and not DnsRecord.objects.filter(private_endpoint=endpoint).exists()
    net.approve_connection(trainer, first, description="After all")
    assert DnsRecord.objects.filter(private_endpoint=endpoint).count() == 10

    net.remove_connection(trainer, first, description="Moving")
    assert not PrivateEndpointConnection.objects.filter(pk=first.pk).exists()
    assert PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert net.endpoint_state(endpoint) == State.DISCONNECTED
    assert not DnsRecord.objects.filter(private_endpoint=endpoint).exists()

    second = create(trainer, vault, subnet, "pe-two")
    second_endpoint = second.private_endpoint
    assert set(second_endpoint.private_ips).isdisjoint(endpoint.private_ips)  # the first still holds its IPs
    net.delete_private_endpoint(trainer, second_endpoint)
    second.refresh_from_db()
    assert second.state == State.DISCONNECTED and second.private_endpoint is None
    assert not DnsRecord.objects.filter(name__icontains=str(vault.uuid)).exclude(private_endpoint=None).exists()
    with pytest.raises(ValidationError, match="Disconnected"):
        net.approve_connection(trainer, second)


def test_descriptions_are_at_most_140_characters(trainer, vault, subnet):
    connection = create(trainer, vault, subnet)
    with pytest.raises(ValidationError, match="140"):
        net.reject_connection(trainer, connection, description="x" * 141)


# --- the rules --------------------------------------------------------------------------------------


def test_first_endpoint_refused_once_protection_was_attempted_and_says_what_to_do(trainer, vault, subnet):
    from vaults.services import mark_protection_attempted

    mark_protection_attempted(vault)
    decision = evaluate(trainer, ops.PRIVATE_ENDPOINT_WRITE, subnet.resource_id, guard.endpoint_change(vault, names.PRIMARY))
    assert decision.code == guard.FIRST_ENDPOINT_CODE and "Create a new Backup vault" in decision.remedy
    with pytest.raises(GuardDenied) as exc:
        create(trainer, vault, subnet)
    assert "attempt counts" in exc.value.decision.reason
    assert not PrivateEndpoint.objects.exists()


def test_first_endpoint_refused_for_a_vault_that_had_protected_items_but_a_second_is_fine(trainer, vault, subnet):
    create(trainer, vault, subnet, "pe-first")
    vault.has_ever_protected_item = True
    vault.save(update_fields=["has_ever_protected_item"])
    assert create(trainer, vault, subnet, "pe-second").state == State.APPROVED

    other = type(vault).objects.get(pk=vault.pk)
    PrivateEndpointConnection.objects.filter(vault=other).delete()
    with pytest.raises(GuardDenied) as exc:
        create(trainer, other, subnet, "pe-third")
    assert exc.value.decision.code == guard.FIRST_ENDPOINT_CODE and "has had items protected" in exc.value.decision.reason


def test_secondary_endpoint_only_for_a_geo_redundant_vault_in_the_paired_region(lab, trainer, make_vault):
    from portal.models import Region

    lrs = make_vault(storage_redundancy=StorageRedundancy.LOCALLY_REDUNDANT)
    paired = lrs.region.paired_region
    assert paired is not None
    subnet = make_vnet(lab, region=paired)
    with pytest.raises(GuardDenied) as exc:
        create(trainer, lrs, subnet, group_id=names.SECONDARY)
    assert exc.value.decision.code == guard.NO_SECONDARY_CODE

    grs = make_vault(storage_redundancy=StorageRedundancy.GEO_REDUNDANT)
    grs.has_ever_protected_item = True  # secondary endpoints come before or after protection
    grs.save(update_fields=["has_ever_protected_item"])
    connection = create(trainer, grs, subnet, "pe-secondary", group_id=names.SECONDARY)
    assert connection.group_id == names.SECONDARY and connection.private_endpoint.region == paired
    assert connection.private_endpoint.ip_configurations[0]["fqdn"].endswith(dns.backup_zone_name(paired))
    home = make_vnet(lab, prefix="10.30.0.0/16", subnet_prefix="10.30.1.0/24", region=Region.objects.get(pk=grs.region_id))
    with pytest.raises(ValidationError, match="paired region"):
        create(trainer, grs, home, "pe-wrong-region", group_id=names.SECONDARY)


def test_at_most_twelve_endpoints_and_names_are_unique(lab, trainer, vault):
    subnet = make_vnet(lab, prefix="10.40.0.0/16", subnet_prefix="10.40.0.0/20")
    for i in range(12):
        create(trainer, vault, subnet, f"pe-{i}")
    ips = [ip for pe in PrivateEndpoint.objects.all() for ip in pe.private_ips]
    assert len(ips) == len(set(ips)) == 120
    with pytest.raises(GuardDenied) as exc:
        create(trainer, vault, subnet, "pe-12")
    assert exc.value.decision.code == guard.TOO_MANY_CODE
    PrivateEndpointConnection.objects.filter(name__startswith="pe-11.").delete()
    with pytest.raises(ValidationError, match="already exists in the resource group"):
        create(trainer, vault, subnet, "PE-0")


def test_a_full_subnet_says_how_many_addresses_are_free(lab, trainer, vault):
    subnet = make_vnet(lab, prefix="10.50.0.0/16", subnet_prefix="10.50.1.0/28")  # 11 usable
    create(trainer, vault, subnet, "pe-fits")
    with pytest.raises(ValidationError) as exc:
        create(trainer, vault, subnet, "pe-too-many")
    assert "1 free address" in str(exc.value) and "/25" in str(exc.value)


def test_creating_needs_to_join_the_subnet_and_write_endpoints(lab, vault, subnet, principal_with):
    person = principal_with(roles.BACKUP_CONTRIBUTOR)
    with pytest.raises(GuardDenied) as exc:
        create(person, vault, subnet)
    assert exc.value.decision.guard == "RBAC" and ops.SUBNET_JOIN in exc.value.decision.reason
    other = make_vnet(lab, group=lab.target_group, prefix="10.60.0.0/16", subnet_prefix="10.60.1.0/24")
    grant(lab, person, roles.NETWORK_CONTRIBUTOR, other.virtual_network.resource_id)  # the VNet only
    with pytest.raises(GuardDenied) as exc:
        create(person, vault, other, group=lab.target_group)  # joins the subnet, but writes no endpoint there
    assert ops.PRIVATE_ENDPOINT_WRITE in exc.value.decision.reason
    grant(lab, person, roles.NETWORK_CONTRIBUTOR, lab.lab_group.resource_id)
    assert create(person, vault, other, group=lab.lab_group).state == State.PENDING


# --- the network guard ---------------------------------------------------------------------------


def test_guard_allows_everything_while_public_access_is_allowed(vault):
    assert guard.data_path_refusal(vault, source()) is None


def test_guard_refuses_the_public_network_when_denied(trainer, vault):
    deny(trainer, vault)
    refusal = guard.data_path_refusal(vault, source(), what="Backup")
    assert refusal.code == guard.PUBLIC_ACCESS_DENIED
    assert "sa-source" in refusal.reason and vault.name in refusal.reason and "public network" in refusal.reason
    assert "Allow from all networks" in refusal.remedy


def test_guard_needs_an_approved_endpoint_in_the_datasource_vnet(lab, trainer, vault, subnet, principal_with):
    deny(trainer, vault)
    refusal = guard.data_path_refusal(vault, source(subnet))
    assert refusal.code == guard.NOT_APPROVED and subnet.virtual_network.name in refusal.reason
    assert "has no private endpoint" in refusal.reason

    person = network_requester(lab, principal_with, subnet)
    connection = create(person, vault, subnet)
    refusal = guard.data_path_refusal(vault, source(subnet))
    assert refusal.code == guard.NOT_APPROVED and "Pending" in refusal.reason and "approve" in refusal.remedy

    net.approve_connection(trainer, connection)
    assert guard.data_path_refusal(vault, source(subnet)) is None
    other = make_vnet(lab, prefix="10.70.0.0/16", subnet_prefix="10.70.1.0/24")
    assert guard.data_path_refusal(vault, source(other)).code == guard.NOT_APPROVED  # another VNet

    net.reject_connection(trainer, connection)
    assert "Rejected" in guard.data_path_refusal(vault, source(subnet)).reason
    net.approve_connection(trainer, connection)
    net.delete_private_endpoint(person, PrivateEndpoint.objects.get(pk=connection.private_endpoint_id))
    assert guard.data_path_refusal(vault, source(subnet)).code == guard.NOT_APPROVED

    net.set_public_network_access(trainer, vault, PublicNetworkAccess.ENABLED)
    assert guard.data_path_refusal(vault, source(subnet)) is None


def test_guard_needs_the_name_to_resolve_to_the_endpoint_without_dns_integration(trainer, vault, subnet):
    deny(trainer, vault)
    connection = create(trainer, vault, subnet, integrate=False)
    endpoint = connection.private_endpoint
    assert connection.state == State.APPROVED and not DnsRecord.objects.exists()
    refusal = guard.data_path_refusal(vault, source(subnet))
    assert refusal.code == guard.DNS_FAILED
    assert names.data_fqdn(vault) in refusal.reason and "203.0.113." in refusal.reason
    assert any(line.endswith(dns.backup_zone_name(vault.region)) for line in refusal.extra["records"])

    # The trainee adds the listed A record to a zone linked to the VNet by hand.
    data = next(n for n in names.endpoint_names(vault) if n.record.endswith("-prot1"))
    ip = next(c["ip"] for c in endpoint.ip_configurations if c["fqdn"] == data.private_fqdn)
    zone = PrivateDnsZone.objects.create(name=data.zone, resource_group=endpoint.resource_group, region=vault.region)
    DnsRecord.objects.create(zone=zone, name=data.record, ip=ip)
    assert guard.data_path_refusal(vault, source(subnet)).code == guard.DNS_FAILED  # not linked yet
    VirtualNetworkLink.objects.create(zone=zone, virtual_network=subnet.virtual_network, name="link")
    assert guard.data_path_refusal(vault, source(subnet)) is None


def test_management_operations_stay_allowed_while_denied(trainer, vault):
    deny(trainer, vault)
    for operation in (ops.VAULT_WRITE, ops.POLICY_WRITE, ops.VAULT_PUBLIC_ACCESS_WRITE, ops.ROLE_ASSIGNMENT_WRITE):
        assert evaluate(trainer, operation, vault).allowed, operation


def test_an_endpoint_deleted_from_the_inventory_side_leaves_the_connection_disconnected(trainer, vault, subnet):
    connection = create(trainer, vault, subnet)
    endpoint = connection.private_endpoint
    PrivateEndpoint.objects.filter(pk=endpoint.pk).delete()  # as a delete outside vaults would
    connection.refresh_from_db()
    assert connection.state == State.DISCONNECTED and connection.private_endpoint is None
    assert not DnsRecord.objects.exists()
