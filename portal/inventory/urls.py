"""Inventory URLs, included in the `portal:` namespace."""

from django.urls import path

from portal.inventory.models import Volume
from portal.inventory.views import elastic_san, postgresql, storage

urlpatterns = [
    path("storage-accounts/", storage.storage_account_list, name="storage_account_list"),
    path("storage-accounts/create/", storage.storage_account_create, name="storage_account_create"),
    path("storage-accounts/<int:pk>/", storage.storage_account_detail, name="storage_account_detail"),
    path("storage-accounts/<int:pk>/containers/", storage.storage_account_containers, name="storage_account_containers"),
    path("storage-accounts/<int:pk>/containers/create/", storage.container_create, name="container_create"),
    path("storage-accounts/<int:pk>/delete/", storage.storage_account_delete, name="storage_account_delete"),
    path("containers/<int:pk>/", storage.container_detail, name="container_detail"),
    path("containers/<int:pk>/upload/", storage.container_upload, name="container_upload"),
    path("containers/<int:pk>/download/", storage.blob_download, name="blob_download"),
    path("containers/<int:pk>/delete-blobs/", storage.blob_delete, name="blob_delete"),
    path("containers/<int:pk>/delete/", storage.container_delete, name="container_delete"),
    path("elastic-sans/", elastic_san.elastic_san_list, name="elastic_san_list"),
    path("elastic-sans/create/", elastic_san.elastic_san_create, name="elastic_san_create"),
    path("elastic-sans/<int:pk>/", elastic_san.elastic_san_detail, name="elastic_san_detail"),
    path("elastic-sans/<int:pk>/volume-groups/", elastic_san.elastic_san_volume_groups, name="elastic_san_volume_groups"),
    path("elastic-sans/<int:pk>/volume-groups/create/", elastic_san.volume_group_create, name="volume_group_create"),
    path("elastic-sans/<int:pk>/volumes/", elastic_san.elastic_san_volumes, name="elastic_san_volumes"),
    path("elastic-sans/<int:pk>/delete/", elastic_san.elastic_san_delete, name="elastic_san_delete"),
    path("volume-groups/<int:pk>/", elastic_san.volume_group_detail, name="volume_group_detail"),
    path("volume-groups/<int:pk>/volumes/create/", elastic_san.volume_create, name="volume_create"),
    path("volume-groups/<int:pk>/delete/", elastic_san.volume_group_delete, name="volume_group_delete"),
    path("volumes/<int:pk>/", elastic_san.volume_detail, name="volume_detail"),
    path(
        "volumes/<int:pk>/write-sample-data/",
        elastic_san.volume_start_job,
        {"activity": Volume.Activity.WRITE_SAMPLE_DATA},
        name="volume_write_sample_data",
    ),
    path(
        "volumes/<int:pk>/compute-checksum/",
        elastic_san.volume_start_job,
        {"activity": Volume.Activity.COMPUTE_CHECKSUM},
        name="volume_compute_checksum",
    ),
    path("volumes/<int:pk>/delete/", elastic_san.volume_delete, name="volume_delete"),
    path("snapshots/<int:pk>/", elastic_san.snapshot_detail, name="snapshot_detail"),
    path("postgresql-servers/", postgresql.postgres_server_list, name="postgres_server_list"),
    path("postgresql-servers/create/", postgresql.postgres_server_create, name="postgres_server_create"),
    path("postgresql-servers/<int:pk>/", postgresql.postgres_server_detail, name="postgres_server_detail"),
    path("postgresql-servers/<int:pk>/databases/", postgresql.postgres_server_databases, name="postgres_server_databases"),
    path("postgresql-servers/<int:pk>/databases/create/", postgresql.postgres_database_create, name="postgres_database_create"),
    path("postgresql-servers/<int:pk>/test-connection/", postgresql.postgres_server_refresh, name="postgres_server_refresh"),
    path("postgresql-servers/<int:pk>/delete/", postgresql.postgres_server_delete, name="postgres_server_delete"),
    path("postgresql-databases/<int:pk>/", postgresql.postgres_database_detail, name="postgres_database_detail"),
    path("postgresql-databases/<int:pk>/delete/", postgresql.postgres_database_delete, name="postgres_database_delete"),
]
