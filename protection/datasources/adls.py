"""Azure Data Lake Storage (vaulted): the chosen containers, minus exclusions, into the vault store.

Each container's folder goes through `Store.backup_tree` with a source id that is stable per backup
instance and container, so the engine's files cache makes every backup after the first incremental
(unchanged files are not re-read). One recovery point = one engine snapshot per container.
"""

from __future__ import annotations

import os

from protection import datasource_types
from protection.datasources.base import BackupOutcome, Driver, RunContext, snapshot_stats
from protection.jobs import runner as jobs

CONTAINER_MISSING = "UserErrorIncorrectContainersSelectedForOperation"
# At most 100 containers per backup instance, in "all containers" mode as in "selected": configure
# protection checks it, and every backup again (an account may have grown since).
MAX_CONTAINERS = 100
CONTAINER_LIMIT_CODE = "UserErrorContainerCountLimitExceeded"


def container_limit_error(count: int, *, all_containers: bool) -> str:
    """Why ``count`` containers are too many for one backup instance ('' when they are not)."""
    if count <= MAX_CONTAINERS:
        return ""
    if all_containers:
        return (f"A backup instance protects at most {MAX_CONTAINERS} containers, and all containers of this "
                f"storage account would be {count}. If your storage account contains more than "
                f"{MAX_CONTAINERS} containers, select up to {MAX_CONTAINERS} containers to back up (or exclude "
                f"{count - MAX_CONTAINERS} or more).")
    return (f"Select at most {MAX_CONTAINERS} containers ({count} selected): a backup instance protects at most "
            f"{MAX_CONTAINERS} containers.")


def container_names(instance, account) -> list[str]:
    """The containers a run backs up: all of the account's (or the chosen ones) minus exclusions."""
    present = list(account.containers.order_by("name").values_list("name", flat=True))
    if instance.all_containers:
        chosen = present
    else:
        chosen = [c["name"] if isinstance(c, dict) else str(c) for c in (instance.containers or [])]
    excluded = {c["name"] if isinstance(c, dict) else str(c) for c in (instance.excluded_containers or [])}
    return [name for name in chosen if name not in excluded]


def source_id(instance, container_name: str) -> str:
    """Stable per instance and container: the engine's files cache keys on it."""
    return f"bi:{instance.id}:container:{container_name}"


def _count_entries(root: str) -> int:
    count = 0
    for _dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        count += len(dirnames) + len(filenames)
    return count


class AdlsDriver(Driver):
    datasource_type = datasource_types.ADLS
    datastore = "VaultStore"

    def account(self, instance):
        from portal.inventory.models import StorageAccount

        return self.datasource_row(StorageAccount.objects, instance, "storage account")

    def backup(self, instance, run: RunContext) -> BackupOutcome:
        from vaults.storage import open_store

        account = self.account(instance)
        names = container_names(instance, account)
        if not names:
            raise jobs.JobError(CONTAINER_MISSING, "No container is selected for backup: every chosen container is "
                                "excluded or gone. Edit the backup instance's container list.")
        # "All containers" follows the account: one that grew past 100 containers since protection
        # was configured is refused here too, with the same words (never 101 containers backed up).
        if problem := container_limit_error(len(names), all_containers=instance.all_containers):
            raise jobs.JobError(CONTAINER_LIMIT_CODE, problem)
        containers = {c.name: c for c in account.containers.filter(name__in=names)}
        missing = [n for n in names if n not in containers or not containers[n].path.is_dir()]
        if missing:
            raise jobs.JobError(CONTAINER_MISSING, "These containers no longer exist on the storage account "
                                f"'{account.name}': {', '.join(missing)}. Edit the backup instance's container list.")
        run.report(items_total=sum(_count_entries(str(containers[n].path)) for n in names),
                   current_item=f"Preparing {len(names)} container(s)", force=True)
        outcome = BackupOutcome(manifests=[])
        totals = {"bytes_read": 0, "bytes_stored": 0}
        tags = [f"instance:{instance.id}", f"job:{run.job.pk}"]
        with open_store(instance.vault) as store:
            for name in names:
                run.check_cancel()
                snap = store.backup_tree(
                    str(containers[name].path), source_id=source_id(instance, name), tags=tags + [f"container:{name}"],
                    progress=run.engine_progress(name), cancel=run.cancel,
                    retain_until=run.retain_until, retention_mode=run.retention_mode,
                )
                run.remember(lambda: open_store(instance.vault), snap.id)
                run.item_done(snap)
                stats = snapshot_stats(snap)
                totals["bytes_read"] += stats["bytes_read"]
                totals["bytes_stored"] += stats["bytes_stored"]
                files = int(snap.stats.get("files", 0))
                outcome.manifests.append({"item": name, "kind": "tree", "id": snap.id, "files": files,
                                          "bytes": int(snap.stats.get("bytes_total", 0)),
                                          "unchanged": int(snap.stats.get("files_unchanged", 0))})
                outcome.logical_bytes += int(snap.stats.get("bytes_total", 0))
                outcome.item_count += files
                skipped = int(snap.stats.get("skipped_count", 0))
                if skipped:
                    outcome.warnings.append(f"{name}: {skipped} item(s) skipped: " + "; ".join(snap.stats.get("skipped", [])[:5]))
        outcome.stored_bytes = totals["bytes_stored"]
        outcome.transferred_bytes = totals["bytes_read"]
        return outcome
