"""The ARM routes of Backup vaults (``backupVaults``, ``checkNameAvailability``, Resource Guard
proxies), calling the same services as the vault pages. Plumbing: ``portal.api``."""
