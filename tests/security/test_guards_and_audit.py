import pytest
from django.core.exceptions import ValidationError

from security.audit import guarded
from security.guards import GuardDenied, Refusal, evaluate, register_guard, unregister_guard
from security.models import ActivityLogEntry

RG_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"


@pytest.fixture
def extra_guard():
    calls = []

    def guard(principal, operation, target, change):
        calls.append(operation)
        if change.get("forbidden"):
            return Refusal("Test guard", "TestGuardRefused", "The test guard refuses this change.", "Change less.")
        return None

    register_guard("Test guard", guard, order=50)
    yield calls
    unregister_guard("Test guard")


def test_rbac_runs_before_other_guards(outsider, lab, extra_guard):
    decision = evaluate(outsider, RG_WRITE, lab.lab_group.resource_id, {"forbidden": True})
    assert not decision.allowed and decision.guard == "RBAC" and decision.code == "AuthorizationFailed"
    assert extra_guard == []  # never consulted once RBAC refused


def test_a_registered_guard_refuses_with_reason_and_remedy(trainer, lab, extra_guard):
    decision = evaluate(trainer, RG_WRITE, lab.lab_group.resource_id, {"forbidden": True})
    assert (decision.allowed, decision.guard, decision.remedy) == (False, "Test guard", "Change less.")
    assert evaluate(trainer, RG_WRITE, lab.lab_group.resource_id).allowed


def test_denial_is_logged_and_nothing_changes(outsider, lab):
    from portal import services
    from portal.models import ResourceGroup

    with pytest.raises(GuardDenied) as exc:
        services.create_resource_group(outsider, subscription=lab.lab_subscription, name="rg-x", region=lab.region)
    assert "does not have authorization" in str(exc.value)
    assert not ResourceGroup.objects.filter(name="rg-x").exists()
    entry = ActivityLogEntry.objects.filter(operation=RG_WRITE, status="Failed").latest("id")
    assert entry.sub_status == "Forbidden" and entry.principal == outsider
    assert entry.scope.endswith("/resourceGroups/rg-x")


def test_success_is_logged_inside_the_transaction(trainer, lab):
    from portal import services

    group = services.create_resource_group(trainer, subscription=lab.lab_subscription, name="rg-ok", region=lab.region)
    entry = ActivityLogEntry.objects.filter(operation=RG_WRITE, status="Succeeded").latest("id")
    assert entry.scope == group.resource_id and entry.operation_name == "Create or update resource group"


def test_a_failing_block_rolls_back_and_logs_the_failure(trainer, lab):
    from portal.models import ResourceGroup

    with pytest.raises(ValidationError):
        with guarded(trainer, RG_WRITE, lab.lab_subscription.resource_id + "/resourceGroups/rg-half"):
            ResourceGroup.objects.create(subscription=lab.lab_subscription, name="rg-half", region=lab.region)
            raise ValidationError("second step failed")
    assert not ResourceGroup.objects.filter(name="rg-half").exists()
    entry = ActivityLogEntry.objects.latest("id")
    assert (entry.status, entry.sub_status, entry.message) == ("Failed", "BadRequest", "second step failed")


def test_role_play_is_shown_as_trainer_as_persona(lab):
    from security import context

    from security import roles
    from security.conditions import AssignmentRequest

    backup_admin = lab.personas["backup-admin"].principal
    # What its delegation condition allows: a vault identity's role, for a managed identity.
    change = AssignmentRequest(roles.role_id(roles.READER), "ServicePrincipal").as_change()
    with context.acting(real_actor=lab.trainer, played_as="Backup admin"):
        with guarded(backup_admin, "Microsoft.Authorization/roleAssignments/write", lab.lab_group.resource_id,
                     change=change):
            pass
    entry = ActivityLogEntry.objects.latest("id")
    assert entry.caller == "Terry Trainer as Backup admin"
    assert entry.details["persona"] == "Backup admin"
    assert entry.details["playedBy"] == "Terry Trainer"


def test_activity_log_entries_cannot_be_edited_or_deleted(trainer, lab):
    entry = ActivityLogEntry.objects.latest("id")
    entry.message = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        ActivityLogEntry.objects.all().delete()
    with pytest.raises(PermissionError):
        ActivityLogEntry.objects.update(message="x")
