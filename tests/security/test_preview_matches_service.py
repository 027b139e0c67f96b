"""The "what happens if I…" preview and the service agree, for every persona of the seeded lab.

The pages preview a guarded operation with `security.guards.evaluate` (the `guard_preview` tag, and the
views that enable a command or say why not). The service then decides for itself when it is called. For
every operation a page previews — on the seeded lab's vaults and instances, some of them soft-deleted,
one past its purge — and for the trainer and each persona, the preview's decision (allowed, or refused by
which guard) must be the service's: called inside a transaction that is rolled back, a service that acts
is "allowed", a `GuardDenied` is "refused by" its guard, and a `ValidationError` (a refusal no preview can
see) fails the test.

The lab vault denies public network access, so its backups are previewed as the network guard refuses them.
Restore is left out: its pages decide with the restore target and the instance's own state rule
(`protection.restores.access`), not with the instance alone.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Callable

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction

from security import operations as ops
from security.guards import GuardDenied, evaluate

pytestmark = [pytest.mark.django_db, pytest.mark.date_sensitive]

ALLOWED = ("allowed", "")
SERVICE_RULE = "the service itself"


@dataclass(frozen=True)
class Case:
    """One previewed operation: what the page asks ``evaluate``, and the service call it previews."""

    label: str
    operation: str
    load: Callable[[], object]  # the target, fresh (inside the rolled-back transaction)
    call: Callable[[object, object], object]  # call(principal, target): the service
    change: Callable[[object], dict] | None = None  # the page's ``change`` for the target


def _decide(case: Case, principal) -> tuple[tuple, tuple]:
    """(the preview's decision, the service's), both inside one transaction that is rolled back."""
    with transaction.atomic():
        target = case.load()
        decision = evaluate(principal, case.operation, target, case.change(target) if case.change else None)
        preview = ALLOWED if decision.allowed else ("refused", decision.guard)
        try:
            case.call(principal, target)
        except GuardDenied as exc:
            outcome = ("refused", exc.decision.guard)
        except ValidationError as exc:
            outcome = ("refused", f"{SERVICE_RULE}: {' '.join(exc.messages)}")
        else:
            outcome = ALLOWED
        transaction.set_rollback(True)
    return preview, outcome


# --- the seeded lab, and the states a page may show ---------------------------------------------------------


@pytest.fixture
def world(monkeypatch):
    """`seed_lab`, then in the lab vault: a soft-deleted instance past its purge time, a soft-deleted one,
    a stopped one, a longer policy per datasource type (and one in the drill vault) to move to."""
    from portal.inventory import lab as inventory_lab
    from portal.inventory import services as inventory
    from portal.inventory.lab import TARGET_ACCOUNT
    from portal.inventory.models import StorageAccount
    from portal.lab import seed_tenancy
    from protection import datasource_types
    from protection.jobs import runner as jobs
    from protection.lab_drill import DRILL_VAULT_NAME
    from protection.models import BackupInstance
    from protection.backups import services as backups
    from protection.deletion import services as deletion
    from protection.policies import services as policy_services
    from protection.policies.services import PolicySpec, Retention
    from security import services as security_services
    from tests.protection._protection_fixtures import protect
    from vaults.lab import LAB_VAULT_NAME
    from vaults.models import BackupVault

    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # no worker here: jobs run inline below
    monkeypatch.setattr(inventory_lab, "_seed_postgres", lambda lab, say, name: (None, None))
    call_command("seed_lab", stdout=io.StringIO())
    lab = seed_tenancy()
    t = lab.trainer
    vault = BackupVault.objects.get(name=LAB_VAULT_NAME)
    drill = BackupVault.objects.get(name=DRILL_VAULT_NAME)

    def policy(in_vault, name, kind, default, extra=None):
        return policy_services.create_policy(t, vault=in_vault, name=name, datasource_type=kind, spec=PolicySpec(
            "Daily", dt.time(4, 0), (), default, extra or {}))

    adls_long = policy(vault, "adls-long", datasource_types.ADLS, Retention(60, "Days"))
    policy(vault, "esan-long", datasource_types.ELASTIC_SAN, Retention(30, "Days"))
    policy(drill, "adls-long", datasource_types.ADLS, Retention(90, "Days"), {"Weekly": Retention(26, "Weeks")})

    def soft_delete(instance):
        jobs.run(deletion.delete_backup_data(t, instance, confirm_name=instance.name).pk)

    instances = {i.datasource_name: i for i in BackupInstance.objects.filter(vault=vault)}
    soft_delete(instances["vol-large"])
    security_services.move_lab_clock(t, forward=dt.timedelta(days=15))  # vol-large is now past its purge
    soft_delete(instances["contosolabsource"])
    account = StorageAccount.objects.get(name=TARGET_ACCOUNT)
    inventory.create_container(t, account, name="reports")
    stopped = protect(lab, vault, adls_long, account, name="bi-stopped")
    backups.stop_backup(t, stopped, retain=backups.RETAIN_FOREVER)
    # The lab vault denies public network access: its datasources reach it through no approved endpoint.
    from vaults.networking import services as networking

    networking.set_public_network_access(t, vault, "Disabled")
    return lab


def _personas(lab) -> dict:
    return {"trainer": lab.trainer, **{key: persona.principal for key, persona in lab.personas.items()}}


def _vault_cases(vault) -> list[Case]:
    from security import mua
    from vaults import services
    from vaults.models import BackupVault

    def load():
        return BackupVault.objects.select_related("region", "identity").get(pk=vault.pk)

    def soft_delete_to(change):
        to = change["to"]
        return lambda p, v: services.update_soft_delete(p, v, state=to["state"], retention_days=to["retentionDays"])

    cases = [
        Case(f"{vault.name}: soft delete blade", ops.VAULT_WRITE, load, lambda p, v: soft_delete_to(
            services.reduction_change(v))(p, v), services.reduction_change),
        # Not offered by the blade on an always-on vault, but asked the same way (the guard's own rule).
        Case(f"{vault.name}: soft delete off", ops.VAULT_WRITE, load,
             lambda p, v: services.update_soft_delete(p, v, state="Off"),
             lambda v: services.soft_delete_change(v, state="Off")),
        Case(f"{vault.name}: delete", ops.VAULT_DELETE, load, services.delete_vault),
    ]
    if vault.immutability_state != "Disabled":
        cases.append(Case(f"{vault.name}: immutability blade", ops.VAULT_WRITE, load,
                          lambda p, v: services.update_immutability(p, v, state="Disabled"),
                          lambda v: services.immutability_change(v, state="Disabled")))
    # The Networking blade's Public access tab: Apply (Deny, or back to Allow).
    from vaults.networking import services as networking

    flip = "Enabled" if vault.public_network_access == "Disabled" else "Disabled"
    cases.append(Case(f"{vault.name}: public network access {flip}", ops.VAULT_PUBLIC_ACCESS_WRITE, load,
                      lambda p, v: networking.set_public_network_access(p, v, flip),
                      lambda v: networking.public_access_change(v, flip)))
    if mua.is_linked(vault.resource_id):
        cases.append(Case(f"{vault.name}: remove MUA protection", ops.PROXY_DELETE, load, mua.unlink_resource_guard))
    return cases


def _stop_cases(name, load) -> list[Case]:
    from protection.backups import services as backups

    def stop(retain):
        return lambda p, i: backups.stop_backup(p, i, retain=retain)

    forever, per_policy = backups.RETAIN_FOREVER, backups.RETAIN_AS_PER_POLICY
    return [
        Case(f"{name}: stop backup badge", ops.STOP_PROTECTION, load, stop(forever)),
        Case(f"{name}: retain forever", ops.STOP_PROTECTION, load, stop(forever), lambda i: {"retain": forever}),
        Case(f"{name}: retain as per policy", ops.SUSPEND_BACKUPS, load, stop(per_policy),
             lambda i: {"retain": per_policy}),
    ]


def _policy_cases(name, instance, load) -> list[Case]:
    from protection.models import BackupPolicy
    from protection.instances import services as svc
    from vaults.guards import retention_reduced

    others = BackupPolicy.objects.filter(vault_id=instance.vault_id, datasource_type=instance.datasource_type).exclude(
        pk=instance.policy_id).order_by("name")
    cases = []
    for policy in others:
        cases.append(Case(f"{name}: change policy to {policy.name}", ops.INSTANCE_WRITE, load,
                          lambda p, i, policy=policy: svc.change_policy(p, i, policy),
                          lambda i, policy=policy: svc.change_policy_change(i, policy)))
    # The detail page's badge names no policy: it previews a move that shortens no retention.
    longer = next((p for p in others if not retention_reduced(svc.change_policy_change(instance, p))), None)
    if longer is not None:
        cases.append(Case(f"{name}: change policy badge", ops.INSTANCE_WRITE, load,
                          lambda p, i: svc.change_policy(p, i, longer),
                          lambda i: {"critical_operation": ops.INSTANCE_WRITE, "setting": "policy"}))
    return cases


def _instance_cases(instance, lab) -> list[Case]:
    from protection.models import BackupInstance, ProtectionState, RecoveryPoint
    from protection.restores import services as restores
    from protection.backups import services as backups
    from protection.deletion import services as deletion

    name = f"{instance.vault.name}/{instance.name} ({instance.protection_state})"

    def load():
        return BackupInstance.objects.select_related("vault", "policy").get(pk=instance.pk)

    state = instance.protection_state
    cases = [
        Case(f"{name}: delete backup data", ops.INSTANCE_DELETE, load,
             lambda p, i: deletion.delete_backup_data(p, i, confirm_name=i.name), deletion.delete_change),
        Case(f"{name}: undelete", ops.UNDELETE, load, deletion.undelete),
        *_policy_cases(name, instance, load),
    ]
    if state in (ProtectionState.CONFIGURED, ProtectionState.PROTECTION_ERROR, ProtectionState.BACKUPS_SUSPENDED):
        cases += _stop_cases(name, load)
    if state == ProtectionState.CONFIGURED:
        cases.append(Case(f"{name}: backup now", ops.BACKUP_ACTION, load,
                          lambda p, i: backups.backup_now(p, i, retention_rule="Default")))
    if state in (ProtectionState.STOPPED, ProtectionState.BACKUPS_SUSPENDED):
        resume = ops.RESUME_PROTECTION if state == ProtectionState.STOPPED else ops.RESUME_BACKUPS
        cases.append(Case(f"{name}: resume backup", resume, load, backups.resume_backup))
    point = RecoveryPoint.objects.filter(instance=instance).order_by("-recovery_point_time").first()
    if point is not None:
        cases.append(Case(f"{name}: verify", ops.VALIDATE_RESTORE, load,
                          lambda p, i: restores.start_verify(p, point)))
        # A running Verify job, started by the trainer: its page previews Cancel.
        cases.append(Case(f"{name}: cancel the Verify job", ops.JOB_CANCEL,
                          lambda: restores.start_verify(lab.trainer, point), backups.cancel_job))
    return cases


def test_every_preview_is_the_service_s_decision_for_every_persona(world):
    from protection.models import BackupInstance
    from vaults.models import BackupVault

    lab = world
    cases = [c for v in BackupVault.objects.order_by("name") for c in _vault_cases(v)]
    instances = BackupInstance.objects.select_related("vault", "policy").order_by("vault__name", "name")
    cases += [c for i in instances for c in _instance_cases(i, lab)]
    mismatches, seen = [], set()
    for case in cases:
        for who, principal in _personas(lab).items():
            preview, outcome = _decide(case, principal)
            seen.add(outcome)
            if preview != outcome:
                mismatches.append(f"{case.label} as {who}: the preview says {preview}, the service {outcome}")
    assert not mismatches, "\n".join(mismatches)
    # The lab shows every kind of decision, soft delete's own refusals among them.
    assert {ALLOWED, ("refused", "RBAC"), ("refused", "MUA"), ("refused", "Immutability"),
            ("refused", "Soft delete"), ("refused", "Vault deletion rules"), ("refused", "Network access")} <= seen
