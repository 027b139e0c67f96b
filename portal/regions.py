"""The fixed list of regions, with their pairs (reference data, seeded after every migrate)."""

REGIONS = [
    # (name, display name, geography, paired region)
    ("eastus", "East US", "United States", "westus"),
    ("westus", "West US", "United States", "eastus"),
    ("eastus2", "East US 2", "United States", "centralus"),
    ("centralus", "Central US", "United States", "eastus2"),
    ("northeurope", "North Europe", "Europe", "westeurope"),
    ("westeurope", "West Europe", "Europe", "northeurope"),
    ("uksouth", "UK South", "United Kingdom", "ukwest"),
    ("ukwest", "UK West", "United Kingdom", "uksouth"),
    ("southeastasia", "Southeast Asia", "Asia Pacific", "eastasia"),
    ("eastasia", "East Asia", "Asia Pacific", "southeastasia"),
    ("australiaeast", "Australia East", "Australia", "australiasoutheast"),
    ("australiasoutheast", "Australia Southeast", "Australia", "australiaeast"),
]


def seed_regions(sender=None, **kwargs):
    from portal.models import Region

    for name, display, geography, _pair in REGIONS:
        Region.objects.update_or_create(
            name=name, defaults={"display_name": display, "geography": geography}
        )
    by_name = {r.name: r for r in Region.objects.all()}
    for name, _display, _geo, pair in REGIONS:
        region = by_name[name]
        if region.paired_region_id != by_name[pair].pk:
            region.paired_region = by_name[pair]
            region.save(update_fields=["paired_region"])
