"""Azure managed disks (``Microsoft.Compute/disks``): a resource kind of the inventory, one raw image file
each (sparse, like an Elastic SAN volume; the image helpers are `portal.inventory.volumes`).

- `models`: ``ManagedDisk`` (name, resource group, region, size in GiB, SKU) and where its image lives.
- `services`: create (a new sparse image, or a restored image adopted in place), delete, "Write sample
  data", and the incremental Snapshot resources disk backups record in a snapshot resource group.
- `views` / `urls`: the list, create, overview and delete pages over `portal.inventory.views.generic`.

Backups read ``ManagedDisk.image_path`` through the engine's block mode (the Elastic SAN driver's
path); restores always create a new disk (``create_disk(..., adopt_image=...)``), never overwrite one.
"""
