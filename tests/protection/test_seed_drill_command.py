"""`seed_lab` seeds the whole demo lab, the drill vault included, and a second run changes nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_seed_lab_ends_with_the_ransomware_drill_ready(monkeypatch):
    from portal.inventory import lab as inventory_lab
    from protection.jobs import runner as jobs
    from protection.models import RecoveryPoint
    from security import mua
    from vaults.models import BackupVault

    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # no worker here: seeding runs its jobs inline
    # No sample database on the shared PostgreSQL cluster (the inventory's own tests cover that part).
    monkeypatch.setattr(inventory_lab, "_seed_postgres", lambda lab, say, name: (None, None))
    out = io.StringIO()
    call_command("seed_lab", stdout=out)
    assert "Drill: bv-contoso-drill (immutability locked, soft delete always-on, MUA linked)" in out.getvalue()
    vault = BackupVault.objects.get(name="bv-contoso-drill")
    assert mua.is_linked(vault.resource_id) and RecoveryPoint.objects.filter(instance__vault=vault).count() == 1
    call_command("seed_lab", stdout=io.StringIO())
    assert RecoveryPoint.objects.filter(instance__vault=vault).count() == 1
