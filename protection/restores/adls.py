"""Restore Azure Data Lake Storage containers into another storage account.

Each container of the recovery point (an engine tree snapshot) is restored by the engine into a hidden
folder of the target account (``.strongroom-restore-<job>/<container>``), with the person's prefixes
turned into engine paths. Only when every container is complete are they registered through the
inventory service (`create_container`, as the vault identity) and renamed into place, all in one
transaction: a failure or a cancel removes the hidden folder, and a failure while registering rolls
every container back, so the target account ends with all the restored containers or none.

Prefixes follow Azure's rule: prefix ``b`` matches every blob whose name starts with ``b``. A prefix
``F/L`` is the entries directly in folder ``F`` whose names start with ``L`` (each with everything
below it), which is exactly what the engine's path filter restores.
"""

from __future__ import annotations

import contextlib
import os
import stat
import unicodedata
from dataclasses import dataclass

from django.db import transaction
from django.urls import reverse

from protection.jobs import runner as jobs
from protection.restores import layout, validation

TEMP_PREFIX = ".strongroom-restore-"


@dataclass
class ContainerPlan:
    choice: object  # targets.ContainerChoice
    part: layout.Part
    paths: list | None  # None: the whole container; []: nothing matches (an empty container)
    files: int = 0
    dirs: int = 0
    bytes: int = 0


def plan_container(store, part: layout.Part, prefixes) -> ContainerPlan:
    """What the engine must restore of one container, and how much it is (one pass over the manifest)."""
    wanted = [validation.normalize_prefix(p) for p in prefixes]
    paths = None if not wanted else set()
    plan = ContainerPlan(None, part, None)
    for rec in store.records(part.snapshot_id):
        t = rec.get("t")
        if t not in ("f", "d", "l"):
            continue
        p = rec["p"]
        name = unicodedata.normalize("NFC", p)
        if wanted:
            if not any(name.startswith(w) for w in wanted):
                continue
            if t != "l":
                parent, _, leaf = p.rpartition("/")
                for w in wanted:
                    folder, _, start = w.rpartition("/")
                    if start == "" and unicodedata.normalize("NFC", p) == folder:
                        paths.add(p)
                    elif unicodedata.normalize("NFC", parent) == folder and unicodedata.normalize("NFC", leaf).startswith(start):
                        paths.add(p)
        if t == "f":
            plan.files += 1
            plan.bytes += int(rec.get("s", 0))
        elif t == "d":
            plan.dirs += 1
    if wanted:
        # A prefix "F/" restores the folder F itself; its parents appear as needed.
        plan.paths = sorted(paths)
    return plan


def _remove_links(root: str) -> int:
    """Blobs are files: links the source held are not restored (and never followed)."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in list(dirnames) + filenames:
            full = os.path.join(dirpath, name)
            if stat.S_ISLNK(os.lstat(full).st_mode):
                os.unlink(full)
                removed += 1
                if name in dirnames:
                    dirnames.remove(name)
    return removed


def temp_root(account, job) -> str:
    return str(account.data_path / f"{TEMP_PREFIX}{job.pk.hex}")


def remove_leftovers(account, job) -> None:
    """An earlier attempt of this job (a worker that died) may have left its hidden folder."""
    from portal.inventory import fs

    with contextlib.suppress(FileNotFoundError, fs.UnsafePath):
        fs.remove_tree(account.data_path / f"{TEMP_PREFIX}{job.pk.hex}")


def restore(job, point, target, resolved, run) -> dict:
    """Restore the chosen containers into the target account: all of them, or none (see the module
    docstring)."""
    from portal.inventory import fs

    account = resolved["account"]
    remove_leftovers(account, job)
    root = temp_root(account, job)
    os.close(fs.open_dir(account.data_path / f"{TEMP_PREFIX}{job.pk.hex}", create=True))
    renamed, made = [], []
    try:
        with layout.open_point_store(point) as store:
            plans = _plan_containers(store, point, resolved["containers"])
            run.report(bytes_total=sum(p.bytes for p in plans) or None,
                       items_total=sum(p.files + p.dirs for p in plans) or None,
                       current_item=f"Restoring {len(plans)} container(s) into {account.name}", force=True)
            damaged = _restore_containers(store, plans, root, run)
        if damaged:
            raise jobs.JobError("UserErrorRecoveryPointDamaged",
                                "The recovery point's data is damaged; nothing was restored. These items could not be "
                                f"restored: {', '.join(sorted(damaged)[:50])}{' …' if len(damaged) > 50 else ''}. "
                                "Run Verify on the recovery point, and restore from another one.")
        links = _remove_links(root)
        run.check_cancel()
        run.report(current_item=f"Registering the containers in {account.name}", force=True)
        created = _register_containers(job, account, plans, point.instance.vault.identity, renamed, made)
    except BaseException:
        for final in renamed + [m for m in made if m not in renamed]:
            with contextlib.suppress(Exception):
                fs.remove_tree(final)
        raise
    finally:
        with contextlib.suppress(Exception):
            fs.remove_tree(account.data_path / f"{TEMP_PREFIX}{job.pk.hex}")
    return _summary(account, created, links)


def _plan_containers(store, point, choices) -> list[ContainerPlan]:
    by_name = {p.item: p for p in layout.containers(point)}
    plans = []
    for choice in choices:
        plan = plan_container(store, by_name[choice.name], choice.prefixes)
        plan.choice = choice
        plans.append(plan)
    return plans


def _restore_containers(store, plans, root: str, run) -> list[str]:
    """Each container into its hidden folder; returns the items the engine found damaged."""
    from vaults.store import DamageError

    damaged = []
    for plan in plans:
        run.check_cancel()
        dest = os.path.join(root, plan.choice.target_name)
        if plan.paths == []:
            os.mkdir(dest, 0o755)
            continue
        try:
            store.restore(plan.part.snapshot_id, dest, paths=plan.paths,
                          progress=run.engine_progress(plan.choice.name), cancel=run.cancel)
        except DamageError as exc:
            damaged.extend(f"{plan.choice.name}/{item}" for item in exc.items)
        run.bytes_base += plan.bytes
        run.items_base += plan.files + plan.dirs
        run.report(bytes_done=run.bytes_base, items_done=run.items_base, force=True)
        os.chmod(dest, 0o755)
    return damaged


def _register_containers(job, account, plans, identity, renamed: list, made: list) -> list:
    """Register every restored container (as the vault identity) and rename it into place, in one
    transaction; ``renamed`` and ``made`` collect what a failure must remove again."""
    from portal.inventory import fs
    from portal.inventory import services as inventory
    from security.guards import GuardDenied

    created = []
    with transaction.atomic():
        for plan in plans:
            name = plan.choice.target_name
            final = account.data_path / name
            pre_existing = os.path.lexists(final)
            try:
                container = inventory.create_container(identity, account, name=name)
            except GuardDenied as exc:
                raise jobs.JobError(validation.MISSING_PERMISSIONS,
                                    f"{validation.MISSING_PERMISSIONS_TEXT} {exc.decision.reason}") from None
            if not pre_existing:
                made.append(final)
            with fs.opened_dir(account.data_path) as dir_fd:
                # The service made an empty folder; the restored one replaces it atomically.
                os.rename(os.path.join(f"{TEMP_PREFIX}{job.pk.hex}", name), name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            renamed.append(final)
            created.append((plan, container))
    return created


def _summary(account, created, links: int) -> dict:
    files = sum(p.files for p, _ in created)
    size = sum(p.bytes for p, _ in created)
    return {
        "summary": {
            "itemsRestored": files,
            "bytesRestored": size,
            "target": account.name,
            "targetResourceId": account.resource_id,
            "containers": [
                {"name": c.name, "source": p.choice.name, "files": p.files, "bytes": p.bytes,
                 "prefixes": list(p.choice.prefixes), "url": reverse("portal:container_detail", args=[c.pk]),
                 "resourceId": c.resource_id}
                for p, c in created
            ],
            "linksSkipped": links,
            "links": [{"label": f"Container {c.name} in {account.name}",
                       "url": reverse("portal:container_detail", args=[c.pk])} for _, c in created],
        },
        "bytes": size,
        "items": files,
    }
