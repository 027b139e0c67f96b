"""Backup policies: the services (create, edit, delete, the per-type limits), the Create backup policy
wizard, and the policy pages."""
