"""Which routers make up the API, by dotted name (the composition root's list; see ``arm.build_api``)."""

ROUTERS = [
    ("", "portal.api.operations.router"),
    ("", "protection.api.instances.router"),
]
