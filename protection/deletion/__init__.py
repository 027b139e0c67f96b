"""Deleting backup data: soft delete, undelete and purge, and the vault's Alerts blade."""
