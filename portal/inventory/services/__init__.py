"""Inventory state changes: every create, delete, upload and job start goes through `guarded`.

Each function takes the acting principal first. Real data is created inside the guarded block as its
last step, so a refusal or a validation error leaves nothing behind, and a failure while writing
data rolls the row back.

One module per kind of resource: `storage` (accounts, containers), `blob_data` (blobs), `elastic_san`
(SANs, volume groups, volumes, snapshots), `volume_jobs` (sample data and checksums, on a worker) and
`postgresql` (servers, databases), `network` (virtual networks, subnets, a datasource's network) and
`private_dns` (private DNS zones, A records, virtual network links). This package gathers their names, so callers keep writing
``from portal.inventory import services`` and ``services.create_volume(...)``; the action names it
offers are the operations catalogue's (`security.operations`).
"""

from portal.inventory.services.blob_data import (  # noqa: F401
    BlobAccess,
    Upload,
    blob_access,
    blob_access_at,
    blob_read_decision,
    can_use_blobs,
    check_blob_read,
    delete_blobs,
    list_blobs,
    open_blob,
    upload_blobs,
)
from portal.inventory.services.elastic_san import (  # noqa: F401
    create_elastic_san,
    create_snapshot,
    create_volume,
    create_volume_group,
    delete_elastic_san,
    delete_snapshot,
    delete_volume,
    delete_volume_group,
)
from portal.inventory.services.network import (  # noqa: F401
    DATASOURCE_WRITE,
    add_subnet,
    create_virtual_network,
    delete_private_endpoint,
    delete_subnet,
    delete_virtual_network,
    free_addresses,
    set_datasource_network,
    subnet_usage,
)
from portal.inventory.services.postgresql import (  # noqa: F401
    create_database,
    create_postgres_server,
    create_sample_database,
    delete_database,
    delete_postgres_server,
    refresh_postgres_server,
)
from portal.inventory.services.private_dns import (  # noqa: F401
    add_a_record,
    add_vnet_link,
    create_private_dns_zone,
    delete_a_record,
    delete_private_dns_zone,
    delete_vnet_link,
)
from portal.inventory.services.storage import (  # noqa: F401
    container_resource_id,
    create_container,
    create_storage_account,
    delete_container,
    delete_storage_account,
)
from portal.inventory.services.volume_jobs import (  # noqa: F401
    STALE_AFTER,
    WAITING_FOR_BACKUP,
    WRITE_WAIT_SECONDS,
    compute_checksum_now,
    run_volume_job,
    start_volume_job,
    write_sample_data_now,
    write_varied_data_now,
)
from security.operations import (  # noqa: F401  (read from here by vaults' and protection's code)
    BLOB_DELETE,
    BLOB_READ,
    BLOB_WRITE,
    CONTAINER_DELETE,
    CONTAINER_READ,
    CONTAINER_WRITE,
    ELASTIC_SAN_DELETE,
    ELASTIC_SAN_READ,
    ELASTIC_SAN_WRITE,
    POSTGRES_DATABASE_DELETE,
    POSTGRES_DATABASE_READ,
    POSTGRES_DATABASE_WRITE,
    POSTGRES_DELETE,
    POSTGRES_READ,
    POSTGRES_USE_ADMIN_LOGIN,
    POSTGRES_WRITE,
    SNAPSHOT_DELETE,
    SNAPSHOT_READ,
    SNAPSHOT_WRITE,
    STORAGE_ACCOUNT_DELETE,
    STORAGE_ACCOUNT_LIST_KEYS,
    STORAGE_ACCOUNT_READ,
    STORAGE_ACCOUNT_WRITE,
    VOLUME_DELETE,
    VOLUME_GROUP_DELETE,
    VOLUME_GROUP_READ,
    VOLUME_GROUP_WRITE,
    VOLUME_READ,
    VOLUME_SNAPSHOT_DELETE,
    VOLUME_SNAPSHOT_READ,
    VOLUME_SNAPSHOT_WRITE,
    VOLUME_WRITE,
)
