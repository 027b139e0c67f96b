"""The lab the drills work in (in this process, with Django set up against the drills' own servers)."""

from __future__ import annotations

import io
import os
import random
import time

from .common import ENDED, MIB, wait_until


class Lab:
    """What the drills back up: a vault, an ADLS policy and instances over storage accounts."""

    def __init__(self):
        from portal.lab import seed_tenancy
        from protection import datasource_types
        from protection.policies import services as policy_services
        from vaults import services as vault_services

        self.lab = seed_tenancy()
        self.trainer = self.lab.trainer
        self.vault = vault_services.create_vault(self.trainer, name="bv-drills", region=self.lab.region,
                                                 resource_group=self.lab.lab_group)
        spec = policy_services.default_spec(datasource_types.ADLS)
        self.policy = policy_services.create_policy(self.trainer, vault=self.vault, name="drills-daily",
                                                    datasource_type=datasource_types.ADLS, spec=spec)
        self.rng = random.Random(14)
        self._n = 0
        self.instances = []  # every instance made, in order (a drill checks its own)

    def instance(self, data_mib: int = 0, vault=None, policy=None):
        """A new storage account with one container ("data") and a backup instance protecting it."""
        from portal.inventory import services as inv
        from protection import readiness
        from protection.jobs import runner as jobs
        from protection import datasource_types
        from protection.models import Job
        from protection.instances import services as instance_services

        self._n += 1
        vault = vault or self.vault
        account = inv.create_storage_account(self.trainer, resource_group=self.lab.lab_group,
                                             name=f"sadrill{self._n:03d}{os.getpid() % 1000:03d}", region=self.lab.region)
        container = inv.create_container(self.trainer, account, name="data")
        if data_mib:
            self.put(container, data_mib)
        ds = readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)
        instance_services.assign_missing_roles(self.trainer, vault=vault, datasources=[ds], level=readiness.SCOPE_RESOURCE)
        [instance] = instance_services.configure_protection(
            self.trainer, vault=vault, policy=policy or self.policy,
            selections=[instance_services.DatasourceSelection(account.resource_id, f"bi-drill-{self._n}",
                                                              all_containers=True)])
        configure = Job.objects.get(instance=instance)
        jobs.run(configure.pk)  # here, or by a worker that took it first: wait for its end either way
        wait_until(lambda: Job.objects.filter(pk=configure.pk, status__in=ENDED).exists(), 60,
                   f"the ConfigureProtection job of {instance.name}")
        instance.refresh_from_db()
        instance.drill_container = container
        self.instances.append(instance)
        return instance

    def put(self, container, mib: int, files: int | None = None) -> None:
        """``mib`` MiB of new random data (nothing the store has seen), in files of 8 MiB."""
        from portal.inventory import services as inv

        files = files or max(1, mib // 8)
        size = mib * MIB // files
        uploads = [inv.Upload(f"drill/{self._n}-{time.monotonic_ns()}-{i}.bin", io.BytesIO(self.rng.randbytes(size)))
                   for i in range(files)]
        inv.upload_blobs(self.trainer, container, uploads)
