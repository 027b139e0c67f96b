"""The vault-archive tier (issue 21): Move to archive and the policy's tiering rule (`services`), and its page
action (`views`, `urls`). Which points may move, and why not, is `protection.archive_eligibility` (the recovery
point lists read it too); rehydration for a restore is `protection.restores.rehydration`."""
