#!/usr/bin/env bash
# Re-run the date- and time-sensitive tests (marker `date_sensitive`: policies, schedules and
# dispatch, retention, soft delete, MUA grants, the lab clock) as if today were each of a few awkward
# moments, in one pytest session (tests/conftest.py parametrizes each marked test per moment and
# travels there with time-machine). Called by .ci/run after `make test`; same services as scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
moments=(
  "2027-03-01T09:30:00+00:00"                # a Monday
  "2027-03-07T18:00:00+00:00"                # a Sunday
  "2028-02-29T12:00:00+00:00"                # 29 February
  "2027-12-31T23:59:00+00:00"                # 31 December, 23:59 UTC
  "2027-03-28T00:59:00+00:00@Europe/Berlin"  # a minute before Berlin's clocks jump from 02:00 to 03:00
)
STRONGROOM_FROZEN_DATE=$(IFS=,; echo "${moments[*]}")
export STRONGROOM_FROZEN_DATE
start=$(date +%s)
PYTEST_WORKERS=${PYTEST_WORKERS:-2} bash scripts/test.sh -m date_sensitive -q "$@"
echo "Date matrix (${#moments[@]} moments): $(( $(date +%s) - start )) s"
