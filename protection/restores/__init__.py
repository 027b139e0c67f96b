"""Restores, browsing and verifying recovery points (issue 9).

`services` (validate, start, the Restore and Verify job handlers, scheduled verify), `validation`
(the rules and their error codes), `readiness` (the vault identity's restore roles), `targets` (what
is restored where), `layout` (where a recovery point's bytes are), per-type restore code (`adls`,
`elastic_san`, `postgres`), `browse` and `access` (reading a point's data), and the pages: the Restore
wizard (`wizard`, `forms`), Validate and a recovery point's page (`views`, `urls`).
"""
