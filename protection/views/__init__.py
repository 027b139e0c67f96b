"""Protection views, one module per area (policies, instances, jobs, restores)."""
