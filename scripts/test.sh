#!/usr/bin/env bash
# Run the whole test suite. PostgreSQL and Redis are used when they answer (always in CI, where a
# missing service or a missing Chromium is a failure, never a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/strongroom}
REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}

services_up=$($PY - "$PG_URL" "$REDIS_URL" <<'PYEOF'
import sys
ok = []
try:
    import dj_database_url, psycopg
    cfg = dj_database_url.parse(sys.argv[1])
    psycopg.connect(host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"], dbname="postgres", connect_timeout=3).close()
    ok.append("pg")
except Exception as exc:
    print(f"PostgreSQL not reachable: {exc}", file=sys.stderr)
try:
    import redis
    redis.Redis.from_url(sys.argv[2], socket_connect_timeout=3).ping()
    ok.append("redis")
except Exception as exc:
    print(f"Redis not reachable: {exc}", file=sys.stderr)
print(" ".join(ok))
PYEOF
)

if [[ "$services_up" == *pg* ]]; then export DATABASE_URL="$PG_URL"; fi
if [[ "$services_up" == *redis* ]]; then export CELERY_BROKER_URL="$REDIS_URL"; fi
if [[ "${CI:-}" == "true" ]]; then
  [[ "$services_up" == *pg* && "$services_up" == *redis* ]] || { echo "CI needs PostgreSQL and Redis." >&2; exit 1; }
  [[ -x /usr/bin/chromium ]] || { echo "CI needs /usr/bin/chromium for the browser tests." >&2; exit 1; }
  export STRONGROOM_REQUIRE_SERVICES=1
fi
echo "Testing with: ${DATABASE_URL:-SQLite} / ${CELERY_BROKER_URL:-no broker (Celery tests skipped)}"
# The import contract (pyproject.toml [tool.importlinter]; see docs/architecture.md) before any test.
.venv/bin/lint-imports --no-cache --no-logo
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
exec $PY -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
