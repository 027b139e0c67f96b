"""``backupVaults``: PUT (create or update), GET, PATCH, DELETE, the lists, and checkNameAvailability.

A thin translator over `vaults.services`, the services the vault pages call. Creating and deleting a
vault complete inside the request (the deployment the portal's bell follows finishes there too), so
their long-running operation is already Succeeded when the SDK first polls it; a refusal or a bad
input answers the PUT or DELETE itself, before any operation exists.
"""

from __future__ import annotations

from django.db.models import Q
from ninja import Router

from portal.api import envelope, lookups, lro
from portal.api.errors import ArmError
from portal.models import Region, ResourceGroup
from security import operations as ops
from security.rbac import authorize
from vaults import services
from vaults.api import changes, shapes
from vaults.api import lookups as vault_lookups
from vaults.api.schemas import CheckNameIn, VaultIn, VaultPatchIn
from vaults.models import (
    SOFT_DELETE_DEFAULT_DAYS,
    CrossRegionRestoreState,
    CrossSubscriptionRestoreState,
    ImmutabilityState,
    SoftDeleteState,
    StorageRedundancy,
)

router = Router(tags=["BackupVaults"])

RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
VAULTS = RG + "/backupVaults"
VAULT = VAULTS + "/{vaultName}"
VAULTS_IN_SUBSCRIPTION = "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection/backupVaults"
CHECK_NAME = RG + "/locations/{location}/checkNameAvailability"


def _region(location: str) -> Region:
    key = (location or "").replace(" ", "").lower()
    region = Region.objects.filter(pk=key).first()
    if region is None:
        raise ArmError(400, "LocationNotAvailableForResourceType",
                       f"The provided location '{location}' is not available for resource type '{ops.VAULT_TYPE}'. "
                       f"List of available regions: '{', '.join(Region.objects.values_list('pk', flat=True))}'.",
                       target="location")
    return region


def _create(request, group, vault_name: str, payload: VaultIn):
    region = _region(payload.location)
    want = changes.wanted(payload.tags, payload.identity, payload.properties, replace_tags=True)
    with changes.fields(changes.CREATE_FIELDS):
        return services.create_vault(
            request.auth,
            name=vault_name,
            region=region,
            resource_group=group,
            storage_redundancy=want.redundancy or StorageRedundancy.GEO_REDUNDANT,
            soft_delete_state=want.soft_delete or SoftDeleteState.ON,
            soft_delete_retention_days=want.retention or SOFT_DELETE_DEFAULT_DAYS,
            immutability_state=want.immutability or ImmutabilityState.DISABLED,
            cross_region_restore_state=want.cross_region or CrossRegionRestoreState.DISABLED,
            cross_subscription_restore_state=want.cross_subscription or CrossSubscriptionRestoreState.ENABLED,
            identity_enabled=bool(want.identity),  # ARM: no identity unless the request asks for one
            tags=want.tags,
            acknowledge_irreversible=True,  # an explicit AlwaysOn is the API's acknowledgement
            storage_location=want.location,  # the same checks as the portal's (bucket, prefix, Object Lock)
        )


def _same_location(vault, location: str) -> None:
    if (location or "").replace(" ", "").lower() != vault.region_id.lower():
        raise ArmError(400, "InvalidResourceLocation",
                       f"The resource '{vault.name}' already exists in location '{vault.region_id}' in resource group "
                       f"'{vault.resource_group.name}'. A resource with the same name cannot be created in location "
                       f"'{location}'. Please select a new resource name.", target="location")


@router.put(VAULT, url_name="backup_vault_put")
def put_vault(request, subscriptionId: str, resourceGroupName: str, vaultName: str, payload: VaultIn):
    group = vault_lookups.group_for_write(request, subscriptionId, resourceGroupName, vaultName, action=ops.VAULT_WRITE)
    vault = vault_lookups.vault_in(group, vaultName)
    if vault is None:
        vault, status = _create(request, group, vaultName, payload), 201
    else:
        _same_location(vault, payload.location)
        want = changes.wanted(payload.tags, payload.identity, payload.properties, replace_tags=True)
        changes.apply(request.auth, vault, want)
        status = 200
    vault = vault_lookups.vault_in(group, vault.name)
    op = lro.succeed(lro.start(request, kind=ops.VAULT_WRITE, resource_id=vault.resource_id, location=vault.region_id))
    return lro.created(request, op, shapes.vault_json(vault), status=status)


@router.get(VAULT, url_name="backup_vault_get")
def get_vault(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    return shapes.vault_json(vault_lookups.vault(request, subscriptionId, resourceGroupName, vaultName))


@router.patch(VAULT, url_name="backup_vault_patch")
def patch_vault(request, subscriptionId: str, resourceGroupName: str, vaultName: str, payload: VaultPatchIn):
    vault = vault_lookups.vault_for_write(request, subscriptionId, resourceGroupName, vaultName, action=ops.VAULT_WRITE)
    changes.apply(request.auth, vault, changes.wanted(payload.tags, payload.identity, payload.properties,
                                                      replace_tags=False))
    return shapes.vault_json(vault_lookups.vault_in(vault.resource_group, vault.name))


@router.delete(VAULT, url_name="backup_vault_delete")
def delete_vault(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    vault = vault_lookups.vault_for_write(request, subscriptionId, resourceGroupName, vaultName, action=ops.VAULT_DELETE)
    resource_id, region = vault.resource_id, vault.region_id
    services.delete_vault(request.auth, vault)
    op = lro.succeed(lro.start(request, kind=ops.VAULT_DELETE, resource_id=resource_id, location=region))
    return lro.accepted(request, op)


def _listing(request, scope: str, rows):
    """A list: the vaults the caller may read. A caller who may read neither the scope nor anything
    in it is told 403, as for a GET."""
    if not authorize(request.auth, ops.VAULT_READ, scope).allowed and not rows.exists():
        lookups.require(request.auth, ops.VAULT_READ, scope)
    rows = rows.select_related("storage_location")  # each vault's strongroomStorageLocation, in the same query
    return envelope.page(request, services.with_resource_guard_link(rows), shapes.vault_json)


@router.get(VAULTS, url_name="backup_vaults_in_resource_group")
def list_in_resource_group(request, subscriptionId: str, resourceGroupName: str):
    sub = lookups.subscription(subscriptionId)
    scope = lookups.rg_scope(str(sub.subscription_id), resourceGroupName)
    rows = services.vaults_for(request.auth).filter(resource_group__subscription=sub,
                                                   resource_group__name__iexact=resourceGroupName)
    if not ResourceGroup.objects.filter(subscription=sub, name__iexact=resourceGroupName).exists():
        lookups.require(request.auth, ops.VAULT_READ, scope)
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resourceGroupName}' could not be found.")
    return _listing(request, scope, rows)


@router.get(VAULTS_IN_SUBSCRIPTION, url_name="backup_vaults_in_subscription")
def list_in_subscription(request, subscriptionId: str):
    sub = lookups.subscription(subscriptionId)
    rows = services.vaults_for(request.auth).filter(Q(resource_group__subscription=sub))
    return _listing(request, sub.resource_id, rows)


@router.post(CHECK_NAME, url_name="backup_vault_check_name_availability")
def check_name_availability(request, subscriptionId: str, resourceGroupName: str, location: str, payload: CheckNameIn):
    if payload.type.lower() != ops.VAULT_TYPE.lower():
        raise ArmError(400, "InvalidParameter",
                       f"The type '{payload.type}' is not supported: check names of '{ops.VAULT_TYPE}'.", target="type")
    sub = lookups.subscription(subscriptionId)
    group = ResourceGroup.objects.filter(subscription=sub, name__iexact=resourceGroupName).first()
    if group is not None:
        result = services.check_name_availability(request.auth, name=payload.name, resource_group=group)
    else:  # a group still to be created: the name is free in it, if valid
        result = services.check_name_availability(request.auth, name=payload.name, subscription=sub,
                                                  new_resource_group_name=resourceGroupName)
    body = {"nameAvailable": result.available}
    if result.reason:
        body.update(reason=result.reason, message=result.message)
    return body
