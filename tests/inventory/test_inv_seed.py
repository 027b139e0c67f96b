"""The lab seed: real data through the services, fast, and idempotent."""

import os
import time

from portal.inventory import blobs, postgres
from portal.inventory.lab import LARGE_VOLUME, VOLUME, seed_inventory
from portal.inventory.models import Container, ElasticSan, PostgresDatabase, StorageAccount, Volume

MIB = 1024 * 1024


def test_the_seed_builds_the_inventory_with_real_data_and_can_run_again(lab, pg_name, local_postgres):
    """GIVEN the lab tenancy
    WHEN the inventory is seeded twice
    THEN the accounts, containers (tens of MiB, nested and Unicode names), the volume with sample data
    and a checksum, and the PostgreSQL server with one sample database exist once each."""
    sample = pg_name("sr_inv_seed")
    started = time.monotonic()
    first = seed_inventory(lab, sample_database_name=sample)
    elapsed = time.monotonic() - started
    assert elapsed < 20

    assert first.source_account.hierarchical_namespace and first.target_account.hierarchical_namespace
    assert not first.flat_account.hierarchical_namespace
    assert first.target_account.resource_group == lab.target_group
    assert not first.target_account.containers.exists()
    names = {c.name for c in first.source_account.containers.all()}
    assert names == {"documents", "images", "logs"}
    total = sum(blobs.container_stats(c)[1] for c in first.source_account.containers.all())
    assert 20 * MIB < total < 100 * MIB
    documents = first.source_account.containers.get(name="documents")
    listed = {b.name for b in blobs.iter_blobs(documents)}
    assert {"résumé café.txt", "日本語/メモ.txt", "reports/2024/q1/summary.md"} <= listed

    volume = first.volume
    assert volume.size_gib == 1 and volume.sample_writes == 1 and volume.last_checksum
    assert os.stat(volume.image_path).st_blocks * 512 == volume.allocated_bytes < 64 * MIB

    large = first.large_volume
    assert large.name == LARGE_VOLUME and large.volume_group == volume.volume_group and large.sample_writes == 1
    # tests/conftest.py sets 16 MiB (3 GiB by default): all of it allocated, the rest of the image holes.
    assert large.allocated_bytes == os.stat(large.image_path).st_blocks * 512
    assert 16 * MIB <= large.allocated_bytes < 17 * MIB and large.size_gib == 2

    assert first.postgres_server is not None and first.sample_database.name == sample
    assert postgres.table_counts(first.postgres_server.connection_params(sample))["sales.orders"] == 600

    second = seed_inventory(lab, sample_database_name=sample)
    assert second.sample_database.pk == first.sample_database.pk
    assert StorageAccount.objects.count() == 3 and Container.objects.count() == 4
    assert ElasticSan.objects.count() == 1 and Volume.objects.get(name=VOLUME).sample_writes == 1
    assert Volume.objects.get(name=LARGE_VOLUME).sample_writes == 1  # generated once, left alone after
    assert PostgresDatabase.objects.filter(is_sample=True).count() == 1


def test_the_seed_puts_the_lab_datasources_in_vnet_lab_once(lab, pg_name, local_postgres):
    """GIVEN the lab tenancy WHEN the inventory is seeded THEN vnet-lab (10.20.0.0/16) has snet-workload and
    snet-endpoints and every seeded datasource is in snet-workload; a datasource moved to the public network
    stays there when the seed runs again, and nothing is duplicated."""
    from portal.inventory import services
    from portal.inventory.lab import ENDPOINT_SUBNET, VNET, WORKLOAD_SUBNET
    from portal.inventory.models import Subnet, VirtualNetwork

    first = seed_inventory(lab, sample_database_name=pg_name("sr_inv_seed_net"))
    vnet = first.virtual_network
    assert vnet.name == VNET and vnet.address_prefixes == ["10.20.0.0/16"] and vnet.resource_group == lab.lab_group
    subnets = {s.name: s.address_prefix for s in vnet.subnets.all()}
    assert subnets == {WORKLOAD_SUBNET: "10.20.1.0/24", ENDPOINT_SUBNET: "10.20.2.0/25"}
    workload = vnet.subnets.get(name=WORKLOAD_SUBNET)
    for datasource in (first.source_account, first.target_account, first.flat_account, first.elastic_san,
                       first.postgres_server):
        datasource.refresh_from_db()
        assert datasource.network_subnet == workload, datasource.name
    services.set_datasource_network(lab.trainer, first.flat_account, None)
    seed_inventory(lab, sample_database_name=first.sample_database.name)
    first.flat_account.refresh_from_db()
    assert first.flat_account.network_subnet is None
    assert VirtualNetwork.objects.count() == 1 and Subnet.objects.count() == 2
