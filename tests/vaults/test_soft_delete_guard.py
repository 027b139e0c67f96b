"""The "Soft delete" guard: soft delete's refusals are a registered guard beside immutability, so the
"what happens if I…" preview names them before the click, with the texts the services gave."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from django.urls import reverse

from security import operations as ops
from security.guards import GuardDenied, evaluate, registered_guards
from security.models import ActivityLogEntry
from vaults import services
from vaults.guards import (
    DELETION_RULES_GUARD,
    IMMUTABILITY_GUARD,
    SOFT_DELETE_GUARD,
    soft_delete_guard,
    undelete_refusal,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
ALWAYS_ON_TEXT = "Soft delete is always-on for this vault: it is permanently enabled and cannot be changed."


def instance(state, **fields):
    """A backup instance as the guard reads it (by duck typing: `vaults` does not know protection)."""
    labels = {"SoftDeleted": "Soft deleted", "SoftDeleting": "Soft deleting", "ProtectionConfigured": "Protection configured"}
    fields = {"purge_started_at": None, "scheduled_purge_at": None, **fields}
    return SimpleNamespace(name="bi-x", protection_state=state, get_protection_state_display=lambda: labels[state],
                           **fields)


def test_it_runs_after_immutability_and_before_the_deletion_rules():
    order = registered_guards()
    assert order.index(IMMUTABILITY_GUARD) < order.index(SOFT_DELETE_GUARD) < order.index(DELETION_RULES_GUARD)


def test_leaving_always_on_is_refused_before_the_click_with_the_service_s_text(vault, trainer):
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=30, acknowledge_irreversible=True)
    for state in ("On", "Off"):
        preview = evaluate(trainer, ops.VAULT_WRITE, vault, services.soft_delete_change(vault, state=state))
        assert (preview.allowed, preview.guard, preview.reason) == (False, SOFT_DELETE_GUARD, ALWAYS_ON_TEXT)
        with pytest.raises(GuardDenied) as refused:
            services.update_soft_delete(trainer, vault, state=state)
        assert refused.value.decision.reason == ALWAYS_ON_TEXT
    entry = ActivityLogEntry.objects.filter(status="Failed", scope=vault.resource_id).latest("id")
    assert entry.details["guard"] == SOFT_DELETE_GUARD
    vault.refresh_from_db()
    assert vault.soft_delete_state == "AlwaysOn"
    # The retention may still change, and the blade previews that (not a way off it does not offer).
    change = services.reduction_change(vault)
    assert (change["to"]["state"], change["to"]["retentionDays"]) == ("AlwaysOn", 14)
    assert evaluate(trainer, ops.VAULT_WRITE, vault, change).allowed
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=14)


def test_the_always_on_blade_shows_no_refusal_for_what_it_allows(vault, trainer, client):
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=30, acknowledge_irreversible=True)
    client.force_login(trainer.user)
    page = client.get(reverse("vaults:vault_soft_delete", args=[vault.pk])).content.decode()
    assert "always-on" in page and 'id="reduce-soft-delete-preview"' not in page


def test_other_vault_writes_pass_it(vault, trainer):
    change = services.immutability_change(vault, state="Unlocked")
    assert soft_delete_guard(trainer, ops.VAULT_WRITE, vault, change) is None
    assert soft_delete_guard(trainer, ops.VAULT_WRITE, vault, services.soft_delete_change(vault, state="Off")) is None


@pytest.mark.parametrize("state,expected", [
    ("SoftDeleting", "'bi-x' is still being soft deleted: try again in a moment."),
    ("ProtectionConfigured", "'bi-x' is protection configured, not soft deleted: there is nothing to undelete."),
])
def test_only_a_soft_deleted_instance_can_be_undeleted(state, expected):
    refusal = soft_delete_guard(None, ops.UNDELETE, instance(state), {})
    assert (refusal.guard, refusal.reason) == (SOFT_DELETE_GUARD, expected)
    assert undelete_refusal(instance("SoftDeleted"), NOW) is None


def test_past_its_purge_time_or_once_its_purge_began_it_cannot_be_undeleted():
    due = instance("SoftDeleted", scheduled_purge_at=NOW - dt.timedelta(minutes=1))
    assert undelete_refusal(due, NOW).reason == (
        "'bi-x' passed its scheduled purge time (2026-03-01 11:59 UTC) and is being purged: it can no longer be "
        "undeleted.")
    begun = instance("SoftDeleted", scheduled_purge_at=NOW + dt.timedelta(days=1))
    begun.purge_started_at = NOW - dt.timedelta(days=1)
    assert "can no longer be undeleted" in undelete_refusal(begun, NOW).reason
    assert undelete_refusal(instance("SoftDeleted", scheduled_purge_at=NOW + dt.timedelta(days=1)), NOW) is None


@pytest.mark.parametrize("state", ["SoftDeleting", "SoftDeleted"])
def test_a_soft_deleted_instance_keeps_its_data_and_its_policy(state):
    deleted = soft_delete_guard(None, ops.INSTANCE_DELETE, instance(state), {"delete_data": True})
    assert deleted.reason == (f"'bi-x' is {state.replace('Soft', 'soft ').lower()}: its backup data cannot be "
                              "deleted now. Undelete it first, or wait for its purge.")
    moved = soft_delete_guard(None, ops.INSTANCE_WRITE, instance(state), {"setting": "policy"})
    assert moved.reason == "A soft-deleted backup instance cannot change policy: undelete it first."
    # Other instance writes (configuring protection) are not soft delete's to judge.
    assert soft_delete_guard(None, ops.INSTANCE_WRITE, instance(state), {}) is None


def test_a_protected_instance_passes_it():
    configured = instance("ProtectionConfigured")
    assert soft_delete_guard(None, ops.INSTANCE_DELETE, configured, {"delete_data": True}) is None
    assert soft_delete_guard(None, ops.INSTANCE_WRITE, configured, {"setting": "policy"}) is None
