"""Which routers make up the API, by dotted name (the composition root's list; see ``arm.build_api``)."""

ROUTERS = [
    ("", "portal.api.operations.router"),
    ("", "portal.api.authorization.router"),
    ("", "protection.api.policies.router"),
    ("", "portal.api.resource_guards.router"),
    ("", "portal.api.pim.router"),
    ("", "vaults.api.vaults.router"),
    ("", "vaults.api.guard_proxies.router"),
    ("", "protection.api.instances.router"),
    ("", "protection.api.backups.router"),
    ("", "protection.api.recovery_points.router"),
    ("", "protection.api.restores.router"),
    ("", "protection.api.jobs.router"),
    # Cross Region Restore (locations/{location}/...)
    ("", "protection.api.cross_region.router"),
]
