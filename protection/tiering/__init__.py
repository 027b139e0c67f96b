"""The vault-archive tier (issue 21): which points may move to archive and why not (`eligibility`), Move to
archive and the policy's tiering rule (`services`), rehydration for a restore and the rehydrated copy's end
(`rehydration`), and the pages (`views`, `urls`)."""
