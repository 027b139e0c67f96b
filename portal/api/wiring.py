"""Which routers make up the API, by dotted name (the composition root's list; see ``arm.build_api``)."""

ROUTERS = [
    ("", "portal.api.operations.router"),
    ("", "protection.api.backups.router"),
    ("", "protection.api.recovery_points.router"),
    ("", "protection.api.restores.router"),
    ("", "protection.api.jobs.router"),
]
