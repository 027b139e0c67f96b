"""Protection services, one module per area: `policies`, `instances` (configure protection,
readiness, change policy, stop/resume), `backups` (on-demand and scheduled backups, recovery
points, retention), `restores`. Every state change goes through `security.audit.guarded`."""
