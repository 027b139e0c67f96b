"""Check the activity log's hash chain (security.chain) and report its first break.

Exit status 0 when the chain is unbroken, 1 at a break (its entry, its kind and what to do on stderr).
Read-only unless ``--record``: then the outcome is stored for the Activity log page and a break found
for the first time raises the "Activity log tampered" alert, as the hourly check (Celery beat) does.
"""

from django.core.management.base import BaseCommand, CommandError

from security import chain, chain_check


class Command(BaseCommand):
    help = "Check the activity log's hash chain; exit status 1 if an entry was edited, deleted or inserted."

    def add_arguments(self, parser):
        parser.add_argument("--record", action="store_true",
                            help="Store the outcome for the Activity log page and raise the alert on a new break.")
        parser.add_argument("--chunk-size", type=int, default=5000, help="Entries read per round trip (default 5000).")

    def handle(self, *args, record=False, chunk_size=5000, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be a positive number of entries, such as 5000.")
        if record:
            row = chain_check.run_check(chunk_size=chunk_size)
            found = (chain.Break(row.break_kind, row.break_sequence, row.break_detail)
                     if row.state == row.State.BROKEN else None)
            entries, seconds, last = row.entries_checked, row.seconds, row.verified_sequence
        else:
            previous = chain_check.latest()
            checkpoint = None
            if previous is not None and previous.verified_sequence:
                checkpoint = (previous.verified_sequence, previous.verified_hash)
            walked = chain.walk(checkpoint, chunk_size=chunk_size)
            found, entries, seconds, last = walked.first_break, walked.entries, walked.seconds, walked.last_sequence
        rate = f", {entries / seconds:,.0f} entries/s" if seconds > 0 and entries else ""
        if found is None:
            span = f" (#1–#{last})" if entries else ""
            self.stdout.write(f"Verified: {entries:,} entries{span} in {seconds:.2f} s{rate}; the chain is unbroken.")
            return
        self.stderr.write(f"Broken at entry #{found.sequence}: {chain_check.KIND_LABELS.get(found.kind, found.kind)}. "
                          f"{found.detail}\n{entries:,} entries read in {seconds:.2f} s.\n"
                          f"{chain_check.what_to_do(chain_check.latest())}")
        raise SystemExit(1)
