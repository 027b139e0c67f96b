"""The inventory's part of the demo lab, seeded through the services as the trainer (idempotent).

- ``contosolabsource``: HNS storage account in the lab resource group, three containers holding about
  30 MiB of seeded sample blobs (nested prefixes, spaces and Unicode in names)
- ``contosolabrestore``: empty HNS account in the restore resource group (a restore target)
- ``contosolabflat``: a flat-namespace account, to show why it cannot be protected
- Elastic SAN ``esan-lab`` / volume group ``vg-lab`` / 1 GiB volume ``vol-data`` with sample data
  and its checksum
- ``vol-large`` in the same volume group: STRONGROOM_LAB_LARGE_VOLUME_MIB (default 3072) MiB of varied
  data (incompressible, text-like, repeated blocks, holes) generated here, never committed — big enough
  that a backup runs long enough (22 s the first time, 11 s after, on 2 cores) to watch its live
  progress and ETA and to try Cancel
- PostgreSQL server ``pg-lab`` at 127.0.0.1:5432 (user postgres) with one sample database, when that
  server answers; a notice otherwise
- Virtual network ``vnet-lab`` (10.20.0.0/16) in the lab resource group, with subnets ``snet-workload``
  (10.20.1.0/24) and ``snet-endpoints`` (10.20.2.0/25, for private endpoints). The seed that creates it puts
  the datasources above in ``snet-workload``; later seeds leave each datasource's network as it is.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from portal.inventory import blobs, postgres, services
from portal.inventory.models import (
    Container,
    ElasticSan,
    PostgresDatabase,
    PostgresServer,
    StorageAccount,
    VirtualNetwork,
    Volume,
    VolumeGroup,
)

SOURCE_ACCOUNT = "contosolabsource"
TARGET_ACCOUNT = "contosolabrestore"
FLAT_ACCOUNT = "contosolabflat"
ELASTIC_SAN = "esan-lab"
VOLUME_GROUP = "vg-lab"
VOLUME = "vol-data"
LARGE_VOLUME = "vol-large"
POSTGRES_SERVER = "pg-lab"
DISK = "disk-lab"  # an Azure managed disk in the lab resource group
POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER = "127.0.0.1", 5432, "postgres"
SAMPLE_DATABASE = "contoso_sample"
VNET, VNET_SPACE = "vnet-lab", "10.20.0.0/16"
WORKLOAD_SUBNET, WORKLOAD_PREFIX = "snet-workload", "10.20.1.0/24"
ENDPOINT_SUBNET, ENDPOINT_PREFIX = "snet-endpoints", "10.20.2.0/25"

MIB = 1024 * 1024
_WORDS = (
    "backup vault restore policy retention snapshot container blob volume recovery point daily weekly "
    "monthly immutable soft delete guard approval region paired redundancy checksum incremental"
).split()


@dataclass
class InventoryLab:
    source_account: StorageAccount
    target_account: StorageAccount
    flat_account: StorageAccount
    elastic_san: ElasticSan
    volume_group: VolumeGroup
    volume: Volume
    large_volume: Volume
    postgres_server: PostgresServer | None
    sample_database: PostgresDatabase | None
    virtual_network: VirtualNetwork | None = None
    disk: object = None  # the managed disk (portal.inventory.disks)


def sample_text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of sentences from the backup vocabulary (compressible, readable sample text)."""
    out, total = [], 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(6, 16))).capitalize() + ".\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def _log(rng: random.Random, day: int, size: int) -> bytes:
    out, total, second = [], 0, 0
    levels = ["INFO"] * 8 + ["WARN", "ERROR"]
    while total < size:
        second += rng.randrange(1, 20)
        line = (
            f"2024-06-{day:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z "
            f"{rng.choice(levels):5} job={rng.randrange(1000, 9999)} {rng.choice(_WORDS)} {rng.choice(_WORDS)} "
            f"bytes={rng.randrange(0, 10**7)}\n"
        )
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def sample_blobs() -> dict[str, list[tuple[str, bytes]]]:
    """Deterministic sample content per container (about 30 MiB in all)."""
    rng = random.Random("strongroom-lab-blobs")
    documents = [
        (f"reports/2024/q{q}/summary.md", sample_text(rng, 40_000 + q * 5_000)) for q in range(1, 5)
    ] + [
        (f"reports/2024/q{q}/figures-{i}.csv", sample_text(rng, 120_000)) for q in range(1, 5) for i in range(1, 3)
    ] + [
        ("reports/2023/annual report.pdf", rng.randbytes(900_000)),
        ("notes with spaces.txt", sample_text(rng, 8_000)),
        ("résumé café.txt", sample_text(rng, 6_000)),
        ("日本語/メモ.txt", sample_text(rng, 5_000)),
        ("Ünïcödé folder/naïve file.md", sample_text(rng, 7_000)),
        ("contracts/2024/acme-renewal.docx", rng.randbytes(450_000)),
        ("contracts/2024/globex-nda.docx", rng.randbytes(380_000)),
        ("README.md", b"# Documents\n\nSample documents for the Strongroom lab.\n"),
    ]
    images = [(f"photos/2024/IMG_{i:04d}.raw", rng.randbytes(3 * MIB)) for i in range(1, 8)] + [
        (f"photos/2024/thumbnails/IMG_{i:04d}.jpg", rng.randbytes(48_000)) for i in range(1, 8)
    ] + [("logo.png", rng.randbytes(20_000))]
    logs = [(f"app/2024-06-{day:02d}.log", _log(rng, day, 256_000)) for day in range(1, 15)] + [
        (f"worker/2024-06-{day:02d}.log", _log(rng, day, 128_000)) for day in range(1, 8)
    ]
    return {"documents": documents, "images": images, "logs": logs}


def _account(trainer, name, group, region, *, hns) -> StorageAccount:
    existing = StorageAccount.objects.filter(name=name).first()
    return existing or services.create_storage_account(
        trainer, resource_group=group, name=name, region=region, hierarchical_namespace=hns
    )


def _seed_storage(lab, say) -> tuple[StorageAccount, StorageAccount, StorageAccount]:
    trainer = lab.trainer
    source = _account(trainer, SOURCE_ACCOUNT, lab.lab_group, lab.region, hns=True)
    target = _account(trainer, TARGET_ACCOUNT, lab.target_group, lab.region, hns=True)
    flat = _account(trainer, FLAT_ACCOUNT, lab.lab_group, lab.region, hns=False)
    total = 0
    for container_name, files in sample_blobs().items():
        container = source.containers.filter(name=container_name).first() or services.create_container(
            trainer, source, name=container_name
        )
        present = {b.name for b in blobs.iter_blobs(container)}
        missing = [(n, data) for n, data in files if n not in present]
        if missing:
            services.upload_blobs(trainer, container, [services.Upload(n, io.BytesIO(d)) for n, d in missing])
            total += sum(len(d) for _, d in missing)
    if not flat.containers.exists():
        container = services.create_container(trainer, flat, name="archive")
        services.upload_blobs(trainer, container, [services.Upload("readme.txt", io.BytesIO(b"A flat-namespace account.\n"))])
    say(
        f"Storage: {SOURCE_ACCOUNT} (3 containers, {total / MIB:.1f} MiB written now), "
        f"{TARGET_ACCOUNT} (empty restore target), {FLAT_ACCOUNT} (no hierarchical namespace)."
    )
    return source, target, flat


def _seed_elastic_san(lab, say) -> tuple[ElasticSan, VolumeGroup, Volume]:
    trainer = lab.trainer
    san = ElasticSan.objects.filter(resource_group=lab.lab_group, name=ELASTIC_SAN).first() or services.create_elastic_san(
        trainer, resource_group=lab.lab_group, name=ELASTIC_SAN, region=lab.region
    )
    group = san.volume_groups.filter(name=VOLUME_GROUP).first() or services.create_volume_group(trainer, san, name=VOLUME_GROUP)
    volume = group.volumes.filter(name=VOLUME).first()
    if volume is None:
        volume = services.create_volume(trainer, group, name=VOLUME, size_gib=1)
    if not volume.sample_writes:
        volume = services.write_sample_data_now(trainer, volume)
        volume = services.compute_checksum_now(trainer, volume)
    say(
        f"Elastic SAN: {ELASTIC_SAN}/{VOLUME_GROUP}/{VOLUME} (1 GiB, {volume.allocated_bytes / MIB:.1f} MiB allocated, "
        f"checksum {volume.last_checksum[:26]}…)."
    )
    return san, group, volume


def _seed_large_volume(lab, say, group: VolumeGroup) -> Volume:
    """The large volume: generated once (a new volume), left alone by later seeds."""
    from django.conf import settings

    fill = settings.STRONGROOM_LAB_LARGE_VOLUME_MIB * MIB
    volume = group.volumes.filter(name=LARGE_VOLUME).first()
    if volume is None:
        size_gib = max(2, -(-fill * 3 // 2 // 1024**3))  # room for holes between the data
        volume = services.create_volume(lab.trainer, group, name=LARGE_VOLUME, size_gib=size_gib)
    if not volume.sample_writes:
        volume = services.write_varied_data_now(lab.trainer, volume, total_bytes=fill, seed=14)
    say(f"Elastic SAN: {ELASTIC_SAN}/{VOLUME_GROUP}/{LARGE_VOLUME} ({volume.size_gib} GiB, "
        f"{volume.allocated_bytes / MIB:.0f} MiB of varied data: a backup runs long enough to watch and cancel).")
    return volume


def _seed_disk(lab, say):
    """The managed disk: 4 GiB Premium SSD, sparse, with one "Write sample data" (4 MiB)."""
    from portal.inventory.disks import services as disks
    from portal.inventory.disks.models import ManagedDisk

    disk = ManagedDisk.objects.filter(resource_group=lab.lab_group, name=DISK).first() or disks.create_disk(
        lab.trainer, resource_group=lab.lab_group, name=DISK, region=lab.region, size_gib=4)
    if not disk.sample_writes:
        disks.write_sample_data(lab.trainer, disk)
    say(f"Disk: {DISK} ({disk.size_gib} GiB {disk.sku}, {disk.allocated_bytes / MIB:.1f} MiB allocated).")
    return disk


def _seed_postgres(lab, say, sample_name: str):
    trainer = lab.trainer
    params = postgres.ConnectionParams(POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER)
    probe = postgres.test_connection(params)
    server = PostgresServer.objects.filter(name=POSTGRES_SERVER).first()
    if not probe.ok and server is None:
        say(
            f"PostgreSQL: skipped. {probe.message} The demo server '{POSTGRES_SERVER}' was not added; start "
            "PostgreSQL on 127.0.0.1:5432 and run seed_lab again."
        )
        return None, None
    if server is None:
        server = services.create_postgres_server(
            trainer, resource_group=lab.lab_group, name=POSTGRES_SERVER, region=lab.region,
            host=POSTGRES_HOST, port=POSTGRES_PORT, admin_user=POSTGRES_USER,
        )
    result = services.refresh_postgres_server(trainer, server)
    if not result.ok:
        say(f"PostgreSQL: '{POSTGRES_SERVER}' is registered but does not answer: {result.message}")
        return server, None
    sample = server.databases.filter(is_sample=True).first()
    if sample is None:
        name, n = sample_name, 1
        while postgres.database_exists(server.connection_params(), name):
            n += 1
            name = f"{sample_name}_{n}"
        sample = services.create_sample_database(trainer, server, name=name)
    say(f"PostgreSQL: {POSTGRES_SERVER} → {POSTGRES_HOST}:{POSTGRES_PORT} (PostgreSQL {server.server_version}), sample database '{sample.name}'.")
    return server, sample


def _seed_network(lab, say, datasources) -> VirtualNetwork:
    """vnet-lab and its two subnets; the seed that creates the VNet puts the datasources in the workload subnet."""
    from portal.inventory import dns

    trainer = lab.trainer
    vnet = VirtualNetwork.objects.filter(resource_group=lab.lab_group, name__iexact=VNET).first()
    created = vnet is None
    if created:
        vnet = services.create_virtual_network(trainer, resource_group=lab.lab_group, name=VNET, region=lab.region,
                                               address_prefixes=[VNET_SPACE], subnet_name=WORKLOAD_SUBNET,
                                               subnet_prefix=WORKLOAD_PREFIX)
    for name, prefix in ((WORKLOAD_SUBNET, WORKLOAD_PREFIX), (ENDPOINT_SUBNET, ENDPOINT_PREFIX)):
        if not vnet.subnets.filter(name__iexact=name).exists():
            services.add_subnet(trainer, vnet, name=name, address_prefix=prefix)
    workload = vnet.subnets.get(name__iexact=WORKLOAD_SUBNET)
    if created:
        for datasource in datasources:
            if datasource is not None and datasource.network_subnet_id is None:
                services.set_datasource_network(trainer, datasource, workload)
    say(f"Network: {VNET} ({VNET_SPACE}) with {WORKLOAD_SUBNET} ({WORKLOAD_PREFIX}, the lab's datasources) and "
        f"{ENDPOINT_SUBNET} ({ENDPOINT_PREFIX}); its DNS resolver answers at {dns.resolver_address(vnet)}.")
    return vnet


def seed_inventory(lab, *, stdout=None, sample_database_name: str = SAMPLE_DATABASE) -> InventoryLab:
    """Seed the inventory (see the module docstring). Safe to run again: nothing is duplicated."""

    def say(text: str) -> None:
        if stdout is not None:
            stdout.write(text)

    source, target, flat = _seed_storage(lab, say)
    san, group, volume = _seed_elastic_san(lab, say)
    large = _seed_large_volume(lab, say, group)
    server, sample = _seed_postgres(lab, say, sample_database_name)
    vnet = _seed_network(lab, say, [source, target, flat, san, server])
    disk = _seed_disk(lab, say)
    return InventoryLab(source, target, flat, san, group, volume, large, server, sample, vnet, disk)


def lab_containers() -> list[Container]:
    return list(Container.objects.filter(account__name=SOURCE_ACCOUNT))
