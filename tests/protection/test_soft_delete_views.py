"""Delete backup data, the Deleted instances list, Undelete, the vault's Alerts blade and the guard
previews over HTTP (issue 10): outsiders get 404, readers the explained 403 on writes, the backup admin
deletes, finds the instance among the deleted ones, undeletes it; the preview names the guard that would
refuse before the click."""

from __future__ import annotations

import pytest

from protection.jobs import runner as jobs
from protection.models import Job, JobOperation, ProtectionState
from security.models import Alert
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, backup_now_and_run, filled, inventory, make_policy, principal_with, protect, vault,
)

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def adls(lab, vault, make_policy, filled):
    instance = protect(lab, vault, make_policy(ADLS, "v-adls"), filled.account, name="bi-views")
    backup_now_and_run(lab.trainer, instance)
    return instance


def as_(client, lab, persona):
    client.logout()
    client.force_login(lab.personas[persona].principal.user)
    return client


def urls(instance):
    return {"pane": f"/backup/instances/{instance.pk}/delete-backup-data/",
            "undelete": f"/backup/instances/{instance.pk}/undelete/",
            "actions": f"/backup/instances/{instance.pk}/actions/",
            "detail": f"/backup/instances/{instance.pk}/",
            "alerts": f"/backup/vaults/{instance.vault_id}/alerts/"}


# persona,          pane GET, POST delete, undelete GET, alerts blade
MATRIX = [
    ("outsider",        404,      404,         404,          404),
    ("reader",          403,      403,         403,          200),
    ("backup-operator", 403,      403,         403,          200),
]


@pytest.mark.parametrize("persona,pane,post,undelete,alerts", MATRIX)
def test_who_may_delete_and_undelete(lab, adls, client, persona, pane, post, undelete, alerts):
    u = urls(adls)
    c = as_(client, lab, persona)
    assert c.get(u["pane"], **HX).status_code == pane
    assert c.post(u["pane"], {"confirm_name": "bi-views"}).status_code == post
    assert c.get(u["undelete"]).status_code == undelete
    assert c.get(u["alerts"]).status_code == alerts
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.CONFIGURED


def test_delete_find_among_the_deleted_and_undelete(lab, adls, client):
    """GIVEN the backup admin WHEN they open Stop backup → Delete Backup Data, mistype the name, then type
    it THEN the instance is soft-deleted (the job page follows), the Deleted instances filter lists it with
    its purge time and Undelete, the alert shows on the vault's Alerts blade, and Undelete brings it back."""
    u = urls(adls)
    c = as_(client, lab, "backup-admin")
    actions = c.get(u["actions"], **HX).content.decode()
    assert f'id="delete-data" hx-get="{u["pane"]}"' in actions and "undelete" not in actions
    stop_pane = c.get(f"/backup/instances/{adls.pk}/stop-backup/", **HX).content.decode()
    assert "Stop backup level" in stop_pane and f'hx-get="{u["pane"]}"' in stop_pane
    pane = c.get(u["pane"], **HX).content.decode()
    assert "Type the name of Backup Item" in pane and "kept as <strong>soft deleted</strong> for 14 days" in pane
    assert "guard-preview" not in pane  # nothing would refuse the admin here
    wrong = c.post(u["pane"], {"confirm_name": "bi-view", "reason": "Decommissioned"})
    assert wrong.status_code == 400 and "Type the name of the backup item, &#x27;bi-views&#x27;" in wrong.content.decode()
    done = c.post(u["pane"], {"confirm_name": "bi-views", "reason": "Decommissioned", "comments": "lab"})
    job = Job.objects.get(operation=JobOperation.UNCONFIGURE)
    assert done.status_code == 302 and done["Location"] == f"/backup/jobs/{job.pk}/"
    jobs.run(job.pk)
    listing = c.get("/backup/instances/?status=SoftDeleted").content.decode()
    assert "bi-views" in listing and "Soft deleted" in listing and u["undelete"] in listing
    assert "bi-views" not in c.get("/backup/instances/?status=ProtectionConfigured").content.decode()
    detail = c.get(u["detail"]).content.decode()
    assert 'id="soft-deleted"' in detail and "Undelete" in detail
    actions = c.get(u["actions"], **HX).content.decode()
    assert 'id="undelete"' in actions and 'id="delete-data"' not in actions
    blade = c.get(u["alerts"]).content.decode()
    assert "Delete Backup Data" in blade and 'id="vault-alerts"' in blade
    assert c.get(u["undelete"]).status_code == 200
    assert c.post(u["undelete"]).status_code == 302
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.STOPPED
    again = c.post(u["undelete"])
    assert again.status_code == 400 and "nothing to undelete" in again.content.decode()


def test_previews_name_the_guard_before_the_click(lab, vault, adls, client):
    """GIVEN the vault linked to the lab's Resource Guard WHEN the backup admin (Reader on the guard only)
    opens the instance's commands and the Delete pane THEN the Delete button carries a "refused by MUA"
    badge and the pane explains it with Request access; once the vault is immutable (and unlinked by the
    trainer) the pane names the Immutable vault instead; the soft-delete and immutability blades preview
    their reductions the same way."""
    from portal.mua.lab import seed_mua
    from security import mua
    from vaults import services as vault_services

    guard = seed_mua(lab)
    mua.link_resource_guard(lab.personas["backup-admin"].principal, vault, guard_id=guard.resource_id,
                            region=vault.region_id)
    u = urls(adls)
    c = as_(client, lab, "backup-admin")
    actions = c.get(u["actions"], **HX).content.decode()
    assert 'id="delete-data-badge"' in actions and "refused by MUA" in actions
    assert 'id="stop-backup-badge"' in actions  # Stop backup and retain forever is protected too
    pane = c.get(u["pane"], **HX).content.decode()
    assert 'id="delete-preview"' in pane and "Deleting the backup data would be refused for you" in pane
    assert f"/resource-guards/{guard.pk}/request-access/" in pane
    soft = c.get(f"/vaults/{vault.pk}/properties/soft-delete/").content.decode()
    assert 'id="reduce-soft-delete-preview"' in soft and "Multi-user authorization" in soft

    mua.unlink_resource_guard(lab.trainer, vault)
    assert Alert.objects.filter(name="MUA Disabled", affected_resource_id=vault.resource_id).exists()
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    pane = c.get(u["pane"], **HX).content.decode()
    assert 'data-guard="Immutability"' in pane and "stopping protection with deletion of backup data" in pane
    refused = c.post(u["pane"], {"confirm_name": "bi-views"})
    assert refused.status_code == 403 and "Immutable vault" in refused.content.decode()
    imm = c.get(f"/vaults/{vault.pk}/properties/immutability/").content.decode()
    assert 'id="immutability-scope-note"' in imm and "disable-immutability-preview" not in imm  # the admin may
    vault_services.update_immutability(lab.trainer, vault, state="Locked", confirm_name=vault.name)
    imm = c.get(f"/vaults/{vault.pk}/properties/immutability/").content.decode()
    assert 'id="disable-immutability-preview"' in imm and "cannot be disabled or unlocked by anyone" in imm
    props = c.get(f"/vaults/{vault.pk}/properties/").content.decode()
    assert 'id="operational-tier-note"' in props


def test_change_policy_previews_the_shorter_retention_refusal_per_policy(lab, vault, adls, client, make_policy):
    """GIVEN an immutable vault WHEN the backup admin opens Change policy THEN the 7-day policy carries
    the Immutability refusal before the click, the 90-day one nothing; posting the 7-day one is refused."""
    from protection.policies.services import Retention
    from vaults import services as vault_services

    short = make_policy(ADLS, "v-7d", default=Retention(7, "Days"))
    long = make_policy(ADLS, "v-90d", default=Retention(90, "Days"))
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    c = as_(client, lab, "backup-admin")
    html = c.get(f"/backup/instances/{adls.pk}/change-policy/").content.decode()
    short_label = html[html.index("v-7d"):html.index("</label>", html.index("v-7d"))]
    long_label = html[html.index("v-90d"):html.index("</label>", html.index("v-90d"))]
    assert 'data-guard="Immutability"' in short_label and "shorter retention" in short_label
    assert "guard-badge" not in long_label
    assert c.post(f"/backup/instances/{adls.pk}/change-policy/", {"policy": short.pk}).status_code == 403
    assert c.post(f"/backup/instances/{adls.pk}/change-policy/", {"policy": long.pk}).status_code == 302
