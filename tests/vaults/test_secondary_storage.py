"""Where a geo-redundant vault's secondary-region copy lives: STRONGROOM_SECONDARY_ROOT, apart from the data root;
the system check's warnings (unset: lab default beside the data root; inside the data root), production's
refusal to replicate into the primary's tree, and replicas of the old layout still found where they are."""

from __future__ import annotations

import pytest

from protection.backups.replication import _refuse_shared_disk
from protection.jobs import runner as jobs
from vaults import checks, storage

pytestmark = pytest.mark.django_db


def _ids(settings):
    return [w.id for w in checks.secondary_root_check()]


def test_the_secondary_root_and_its_warnings(settings, tmp_path):
    settings.STRONGROOM_SECONDARY_ROOT = None
    assert storage.secondary_root() == tmp_path / "data-secondary"  # beside the data root, never inside
    assert _ids(settings) == [checks.NOT_SEPARATE]
    settings.STRONGROOM_SECONDARY_ROOT = tmp_path / "data" / "secondary"
    assert _ids(settings) == [checks.INSIDE_DATA_ROOT]
    settings.STRONGROOM_SECONDARY_ROOT = tmp_path / "other-disk"
    assert _ids(settings) == []


def test_production_refuses_to_replicate_into_the_primary_tree(settings, tmp_path):
    settings.STRONGROOM_SECONDARY_ROOT = tmp_path / "data" / "secondary"
    _refuse_shared_disk()  # lab mode: the check warns, replication goes on
    settings.STRONGROOM_LAB_MODE = False
    with pytest.raises(jobs.JobError) as info:
        _refuse_shared_disk()
    assert info.value.code == "UserErrorSecondaryStorageNotSeparate"
    settings.STRONGROOM_SECONDARY_ROOT = tmp_path / "other-disk"
    _refuse_shared_disk()


def test_a_replica_of_the_old_layout_is_found_where_it_is(lab, settings, tmp_path):
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-legacy", region=lab.region, resource_group=lab.lab_group)
    new = storage.secondary_store_path(vault)
    assert new == storage.secondary_root() / vault.secondary_region.pk / "vaults" / str(vault.uuid)
    legacy = tmp_path / "data" / "vaults-secondary" / vault.secondary_region.pk / str(vault.uuid)
    legacy.mkdir(parents=True)
    (legacy / "config").write_text("{}")
    assert storage.secondary_store_path(vault) == legacy
    new.mkdir(parents=True)
    (new / "config").write_text("{}")
    assert storage.secondary_store_path(vault) == new
