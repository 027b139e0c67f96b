"""Backups: Backup now, the schedule's dispatcher, the Backup job, geo-replication, retention, Stop and
Resume backup, and a backup instance's backup actions and recovery points."""
