"""``backupResourceGuardProxies``: a vault's link to a Resource Guard (MUA), through `security.mua`'s
link services, as the vault's Properties > Multi-user authorization page makes it.

Strongroom keeps one link per vault, named ``DppResourceGuardProxy`` as Azure names it. Linking needs
Reader on the guard (the MUA guard's ``LinkedAuthorizationFailed`` otherwise); removing it is the
mandatory protected operation, refused with the MUA code and words unless the caller holds an approved,
unexpired grant on the guard.

``unlockDelete``: in Azure a caller first unlocks the proxy's deletion with a linked access check and
then deletes within the window. Strongroom checks the grant when the delete itself runs, so nothing is
stored here: unlockDelete asks the same MUA guard about ``backupResourceGuardProxies/delete`` now and
answers with the end of the caller's grant as ``unlockDeleteExpiryTime`` (no time when a standing role
on the guard lets them through), or the guard's refusal.
"""

from __future__ import annotations

from ninja import Router

from django.http import HttpResponse

from portal.api import envelope
from portal.api.errors import ArmError
from security import mua
from security import operations as ops
from security.guards import GuardDenied, evaluate
from security.models import ResourceGuardProxy
from vaults.api import changes, shapes
from vaults.api import lookups as vault_lookups
from vaults.api.schemas import ProxyIn, UnlockDeleteIn

router = Router(tags=["DppResourceGuardProxy"])

VAULT = vault_lookups.VAULT_PATH
PROXIES = VAULT + "/backupResourceGuardProxies"
PROXY = PROXIES + "/{resourceGuardProxyName}"
NAME = ResourceGuardProxy.DEFAULT_NAME


def _not_found(vault, name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{shapes.PROXY_TYPE}/{name}' of the Backup vault '{vault.name}' was not found.")


def _proxy(vault, name: str) -> ResourceGuardProxy:
    proxy = mua.proxy_for(vault.resource_id)
    if proxy is None or proxy.name.lower() != name.lower():
        raise _not_found(vault, name)
    return proxy


def _vault(request, sub, group, vault_name, action):
    """The vault, with ``action`` (a read) authorized at the vault first."""
    return vault_lookups.vault(request, sub, group, vault_name, action=action)


def _vault_for_write(request, sub, group, vault_name, action):
    """The vault, left to the write's service to authorize (403 before 404 when it does not exist)."""
    return vault_lookups.vault_for_write(request, sub, group, vault_name, action=action)


@router.get(PROXIES, url_name="resource_guard_proxies_list")
def list_proxies(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    vault = _vault(request, subscriptionId, resourceGroupName, vaultName, ops.PROXY_READ)
    proxy = mua.proxy_for(vault.resource_id)
    return {"value": [shapes.proxy_json(proxy)] if proxy else []}


@router.get(PROXY, url_name="resource_guard_proxy_get")
def get_proxy(request, subscriptionId: str, resourceGroupName: str, vaultName: str, resourceGuardProxyName: str):
    vault = _vault(request, subscriptionId, resourceGroupName, vaultName, ops.PROXY_READ)
    return shapes.proxy_json(_proxy(vault, resourceGuardProxyName))


@router.put(PROXY, url_name="resource_guard_proxy_put")
def put_proxy(request, subscriptionId: str, resourceGroupName: str, vaultName: str, resourceGuardProxyName: str,
              payload: ProxyIn):
    vault = _vault_for_write(request, subscriptionId, resourceGroupName, vaultName, ops.PROXY_WRITE)
    if resourceGuardProxyName.lower() != NAME.lower():
        raise ArmError(400, "InvalidParameter", f"A Backup vault's Resource Guard proxy is named '{NAME}'.",
                       target="resourceGuardProxyName")
    guard_id = payload.properties.resourceGuardResourceId.strip()
    current = mua.proxy_for(vault.resource_id)
    if current is not None and current.guard.resource_id.lower() == guard_id.rstrip("/").lower():
        decision = evaluate(request.auth, ops.PROXY_WRITE, vault)  # the same link again: nothing to change
        if not decision.allowed:
            raise GuardDenied(decision)
        return shapes.proxy_json(current)
    with changes.fields({"resource_guard_id": "properties.resourceGuardResourceId"}):
        proxy = mua.link_resource_guard(request.auth, vault, guard_id=guard_id, region=vault.region_id)
    return shapes.proxy_json(proxy)


@router.delete(PROXY, url_name="resource_guard_proxy_delete")
def delete_proxy(request, subscriptionId: str, resourceGroupName: str, vaultName: str, resourceGuardProxyName: str):
    vault = _vault_for_write(request, subscriptionId, resourceGroupName, vaultName, ops.PROXY_DELETE)
    _proxy(vault, resourceGuardProxyName)
    mua.unlink_resource_guard(request.auth, vault)
    return HttpResponse(status=204)


@router.post(PROXY + "/unlockDelete", url_name="resource_guard_proxy_unlock_delete")
def unlock_delete(request, subscriptionId: str, resourceGroupName: str, vaultName: str, resourceGuardProxyName: str,
                  payload: UnlockDeleteIn):
    vault = _vault_for_write(request, subscriptionId, resourceGroupName, vaultName, ops.PROXY_DELETE)
    proxy = _proxy(vault, resourceGuardProxyName)
    target = (payload.resourceToBeDeleted or "").strip().rstrip("/")
    if target and target.lower() != proxy.resource_id.lower():
        raise ArmError(400, "InvalidParameter", f"resourceToBeDeleted must be this proxy, '{proxy.resource_id}'.",
                       target="resourceToBeDeleted")
    decision = evaluate(request.auth, ops.PROXY_DELETE, vault)
    if not decision.allowed:
        raise GuardDenied(decision)
    grant = mua.active_grant(request.auth, proxy.guard)
    return {"unlockDeleteExpiryTime": envelope.timestamp(grant.expires_at)} if grant else {}
