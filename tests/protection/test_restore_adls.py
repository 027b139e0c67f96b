"""Restoring Azure Data Lake Storage recovery points: byte-for-byte round trips, prefixes, safety."""

from __future__ import annotations

import io
import os
import random

import pytest

from tests._s3 import BOTH_BACKENDS
from django.core.exceptions import ValidationError

from portal.inventory import services as inv
from protection.jobs import runner as jobs
from protection.models import Job
from protection.restores import services, targets, validation
from security.models import Alert
from tests.protection._restore_fixtures import (  # noqa: F401
    ADLS, adls_setup, adls_target, backup, filled, inventory, latest_point, make_policy, new_account,
    protect, put_blobs, restore_and_run, stat_tree, tree_of, vault,
)

pytestmark = pytest.mark.django_db


@BOTH_BACKENDS
def test_restore_all_containers_is_byte_for_byte(lab, adls_setup):
    instance, point, target_account = adls_setup
    job = restore_and_run(lab.trainer, point, adls_target(target_account), lab=lab)
    assert job.status == "Completed", (job.error_code, job.error_message)
    from portal.inventory.models import StorageAccount

    src = StorageAccount.objects.get(resource_id=instance.datasource_resource_id)
    for name in ("documents", "images"):
        assert tree_of(target_account.data_path / name) == tree_of(src.data_path / name)
        assert stat_tree(target_account.data_path / name) == stat_tree(src.data_path / name)  # sizes and mtimes
    assert set(target_account.containers.values_list("name", flat=True)) == {"documents", "images"}
    summary = job.extended_info["restore"]
    assert summary["itemsRestored"] == 7 + 4
    assert summary["bytesRestored"] == sum(len(b) for b in tree_of(src.data_path).values())
    assert [link["url"] for link in summary["links"]] and summary["durationSeconds"] >= 0
    assert job.items_done == job.items_total and job.bytes_done == summary["bytesRestored"]
    # Nothing hidden is left in the target account.
    assert sorted(os.listdir(target_account.data_path)) == ["documents", "images"]


@BOTH_BACKENDS
def test_prefix_filter_restores_only_matching_blobs(lab, vault, make_policy, inventory):
    documents = inventory.account.containers.get(name="documents")
    files = {"logs/2024-01/a.txt": b"a" * 10, "logs/2024-02/b.txt": b"b" * 20, "logs/2023-12/c.txt": b"c",
             "bar.txt": b"bar", "b/x.txt": b"x", "apple.txt": b"apple", "logs/readme": b"r"}
    put_blobs(lab.trainer, documents, files)
    instance = protect(lab, vault, make_policy(ADLS), inventory.account)
    point = backup(lab, instance)
    target_account = new_account(lab)
    target = adls_target(target_account, "documents", prefixes={"documents": ["logs/2024-0", "b"]})
    job = restore_and_run(lab.trainer, point, target, lab=lab)
    assert job.status == "Completed", job.error_message
    restored = tree_of(target_account.data_path / "documents")
    assert restored == {"logs/2024-01/a.txt": b"a" * 10, "logs/2024-02/b.txt": b"b" * 20, "bar.txt": b"bar",
                        "b/x.txt": b"x"}
    assert job.extended_info["restore"]["itemsRestored"] == 4


@BOTH_BACKENDS
def test_folder_prefix_and_rename(lab, vault, make_policy, inventory):
    documents = inventory.account.containers.get(name="documents")
    put_blobs(lab.trainer, documents, {"logs/a.txt": b"1", "logs/sub/b.txt": b"2", "logsx.txt": b"3"})
    instance = protect(lab, vault, make_policy(ADLS), inventory.account)
    point = backup(lab, instance)
    target_account = new_account(lab)
    target = adls_target(target_account, "documents", prefixes={"documents": ["logs/"]},
                         renames={"documents": "documents-restored"})
    job = restore_and_run(lab.trainer, point, target, lab=lab)
    assert job.status == "Completed", job.error_message
    assert tree_of(target_account.data_path / "documents-restored") == {"logs/a.txt": b"1", "logs/sub/b.txt": b"2"}
    assert list(target_account.containers.values_list("name", flat=True)) == ["documents-restored"]


@BOTH_BACKENDS
def test_large_files_empty_containers_spaces_and_unicode(lab, vault, make_policy, inventory):
    documents = inventory.account.containers.get(name="documents")
    rng = random.Random(7)
    big = rng.randbytes(21 * 1024 * 1024 + 123)  # larger than the engine's whole-file limit and max chunk
    names = {"big file.bin": big, "Ünïcödé ✓/名前 with spaces.txt": "héllo wörld".encode() * 999, "zero.bin": b""}
    inv.upload_blobs(lab.trainer, documents, [inv.Upload(n, io.BytesIO(d)) for n, d in names.items()])
    # "images" stays empty.
    instance = protect(lab, vault, make_policy(ADLS), inventory.account)
    point = backup(lab, instance)
    target_account = new_account(lab)
    job = restore_and_run(lab.trainer, point, adls_target(target_account), lab=lab)
    assert job.status == "Completed", job.error_message
    assert tree_of(target_account.data_path / "documents") == names
    assert stat_tree(target_account.data_path / "documents") == stat_tree(inventory.account.data_path / "documents")
    assert os.listdir(target_account.data_path / "images") == []
    assert target_account.containers.filter(name="images").exists()
    blobs = list(inv.list_blobs(lab.trainer, target_account.containers.get(name="documents")))
    assert {b.name for b in blobs} == set(names)


def test_validation_codes(lab, adls_setup):
    from vaults import services as vault_services
    from vaults.models import CrossSubscriptionRestoreState

    instance, point, target_account = adls_setup
    source = instance.datasource_resource_id
    trainer = lab.trainer

    def codes(target):
        with pytest.raises(ValidationError) as info:
            services.validate_restore(trainer, point, target)
        return validation.codes_of(info.value)

    assert validation.ORIGINAL_LOCATION in codes(targets.AdlsTarget(source, True))
    inv.create_container(trainer, target_account, name="documents")
    assert validation.TARGET_CONTAINERS_EXIST in codes(adls_target(target_account))
    # A new name avoids the clash (the identity's roles are then all that is missing).
    renamed = adls_target(target_account, renames={"documents": "documents-2"})
    assert codes(renamed) == {validation.MISSING_PERMISSIONS}
    flat = new_account(lab, "saflatrestore", hns=False)
    assert validation.UNSUPPORTED_ACCOUNT in codes(adls_target(flat))
    west = new_account(lab, "sawest", region="westus")
    assert validation.DIFFERENT_REGION in codes(adls_target(west))
    other_group = lab.security_group  # in the Security subscription
    elsewhere = new_account(lab, "saother", group=other_group)
    assert validation.CSR_DISABLED not in codes(adls_target(elsewhere))  # enabled by default
    vault_services.update_cross_subscription_restore(trainer, instance.vault, state=CrossSubscriptionRestoreState.DISABLED)
    point.instance.vault.refresh_from_db()
    assert validation.CSR_DISABLED in codes(adls_target(elsewhere))
    fresh = new_account(lab)
    assert validation.INCORRECT_CONTAINERS in codes(adls_target(fresh, "no-such-container"))
    too_many = targets.AdlsTarget(fresh.resource_id, False,
                                  tuple(targets.ContainerChoice(f"c{i:03d}") for i in range(101)))
    assert validation.INCORRECT_CONTAINERS in codes(too_many)
    assert validation.INVALID_PREFIX in codes(adls_target(fresh, "documents", prefixes={"documents": list("abcdef")}))
    for bad in ("../etc", "a/../../b", "/abs", "a//b", "a\\b", "x\x00y"):
        assert validation.INVALID_PREFIX in codes(adls_target(fresh, "documents", prefixes={"documents": [bad]})), bad
    assert validation.INVALID_NAME in codes(adls_target(fresh, "documents", renames={"documents": "../evil"}))
    # The vault identity has no role on the fresh account yet.
    assert validation.MISSING_PERMISSIONS in codes(adls_target(fresh))
    # Nothing was written anywhere by any of this.
    assert sorted(os.listdir(fresh.data_path)) == []


def test_web_container_needs_a_rename(lab, vault, make_policy, inventory):
    inv.create_container(lab.trainer, inventory.account, name="$web")
    put_blobs(lab.trainer, inventory.account.containers.get(name="$web"), {"index.html": b"<h1>hi</h1>"})
    instance = protect(lab, vault, make_policy(ADLS), inventory.account)
    point = backup(lab, instance)
    target_account = new_account(lab)
    with pytest.raises(ValidationError) as info:
        services.validate_restore(lab.trainer, point, adls_target(target_account, "$web"))
    assert validation.RENAME_REQUIRED in validation.codes_of(info.value)
    job = restore_and_run(lab.trainer, point, adls_target(target_account, "$web", renames={"$web": "website"}), lab=lab)
    assert job.status == "Completed", job.error_message
    assert tree_of(target_account.data_path / "website") == {"index.html": b"<h1>hi</h1>"}


def test_target_that_appears_before_the_worker_runs_is_never_touched(lab, adls_setup):
    instance, point, target_account = adls_setup
    target = adls_target(target_account, "documents")
    services.assign_restore_roles(lab.trainer, point, target, "Resource")
    job = services.start_restore(lab.trainer, point, target)
    theirs = inv.create_container(lab.trainer, target_account, name="documents")
    put_blobs(lab.trainer, theirs, {"mine.txt": b"do not touch"})
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "Failed" and job.error_code == validation.TARGET_CONTAINERS_EXIST
    assert tree_of(target_account.data_path / "documents") == {"mine.txt": b"do not touch"}
    assert Alert.objects.filter(name=services.RESTORE_FAILURE_ALERT).exists()


@BOTH_BACKENDS
def test_cancel_mid_restore_leaves_nothing(lab, adls_setup, monkeypatch):
    from protection.datasources.base import RunContext

    instance, point, target_account = adls_setup
    monkeypatch.setattr(jobs, "PROGRESS_WRITE_INTERVAL", 0)
    original = RunContext.engine_progress
    calls = []

    def engine_progress(self, label):
        callback = original(self, label)

        def wrapped(p):
            calls.append(p)
            if len(calls) == 1:  # the user presses Cancel while the first container is being written
                Job.objects.filter(pk=self.job.pk).update(cancel_requested=True)
            callback(p)

        return wrapped

    monkeypatch.setattr(RunContext, "engine_progress", engine_progress)
    job = restore_and_run(lab.trainer, point, adls_target(target_account), lab=lab)
    assert calls and job.status == "Cancelled"
    assert target_account.containers.count() == 0
    assert os.listdir(target_account.data_path) == []


@BOTH_BACKENDS
def test_failure_while_registering_rolls_every_container_back(lab, adls_setup, monkeypatch):
    instance, point, target_account = adls_setup
    original = inv.create_container
    made = []

    def flaky(principal, account, *, name):
        if made:
            raise OSError("disk full (simulated)")
        made.append(name)
        return original(principal, account, name=name)

    monkeypatch.setattr(inv, "create_container", flaky)
    job = restore_and_run(lab.trainer, point, adls_target(target_account), lab=lab)
    assert made == ["documents"] and job.status == "Failed"
    assert target_account.containers.count() == 0
    assert os.listdir(target_account.data_path) == []


@BOTH_BACKENDS
def test_corrupt_recovery_point_fails_naming_items_and_writes_nothing(lab, adls_setup):
    from tests.protection.test_verify import corrupt_every_pack

    instance, point, target_account = adls_setup
    corrupt_every_pack(point)
    job = restore_and_run(lab.trainer, point, adls_target(target_account), lab=lab)
    assert job.status == "Failed" and job.error_code == "UserErrorRecoveryPointDamaged"
    assert "documents/" in job.error_message
    assert target_account.containers.count() == 0
    assert os.listdir(target_account.data_path) == []


def test_restore_needs_the_restore_action(lab, adls_setup, reader, backup_operator):
    from security.guards import GuardDenied

    instance, point, target_account = adls_setup
    target = adls_target(target_account)
    services.assign_restore_roles(lab.trainer, point, target, "Resource")
    with pytest.raises(GuardDenied):
        services.start_restore(reader, point, target)
    # A Backup Operator may restore (reference §2.1) when it can read the target.
    from tests.protection._restore_fixtures import grant

    grant(lab, backup_operator, "Reader", target_account.resource_id)
    job = services.start_restore(backup_operator, point, target)
    assert job.operation == "Restore" and job.initiated_by == backup_operator
    assert job.parameters["request"]["restoreTargetInfo"]["objectType"] == "ItemLevelRestoreTargetInfo"


@BOTH_BACKENDS
def test_a_rerun_after_a_lost_worker_removes_what_the_first_attempt_left(lab, adls_setup):
    from protection.restores import adls

    instance, point, target_account = adls_setup
    target = adls_target(target_account, "documents")
    services.assign_restore_roles(lab.trainer, point, target, "Resource")
    job = services.start_restore(lab.trainer, point, target)
    # The first attempt's worker died mid-restore: its hidden folder is half written.
    leftover = target_account.data_path / f"{adls.TEMP_PREFIX}{job.pk.hex}" / "documents"
    leftover.mkdir(parents=True)
    (leftover / "half.bin").write_bytes(b"partial")
    Job.objects.filter(pk=job.pk).update(attempts=1)  # the reconciler released it for a second run
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "Completed" and job.attempts == 2, job.error_message
    assert "half.bin" not in tree_of(target_account.data_path / "documents")
    assert sorted(os.listdir(target_account.data_path)) == ["documents"]
