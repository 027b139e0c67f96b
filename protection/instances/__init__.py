"""Backup instances: Configure protection (the services, its wizard and the ConfigureProtection job),
change policy, and the backup instance pages."""
