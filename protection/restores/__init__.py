"""Restores, browsing and verifying recovery points (issue 9).

`services` (validate, start, the Restore and Verify job handlers, scheduled verify), `validation`
(the rules and their error codes), `readiness` (the vault identity's restore roles), `targets` (what
is restored where), `layout` (where a recovery point's bytes are), per-type restore code (`adls`,
`elastic_san`, `postgres`) and `browse`.
"""
