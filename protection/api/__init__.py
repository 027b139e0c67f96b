"""The ARM routes of protection: backup policies, backup instances and their actions, recovery points,
restores and backup jobs, calling the same services as the pages. Plumbing: ``portal.api``."""
