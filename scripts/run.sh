#!/usr/bin/env bash
# Start web, Celery worker and Celery beat together; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${STRONGROOM_HOST:-127.0.0.1}
PORT=${STRONGROOM_PORT:-8000}
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping Strongroom..."
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
$PY -m celery -A portal worker --loglevel=INFO --concurrency=2 --beat \
  --schedule "${STRONGROOM_VAR_DIR:-var}/celerybeat-schedule" &
pids+=($!)
$PY manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
sleep 2
cat <<MSG

  Strongroom is running at http://$HOST:$PORT/
  Sign in as the trainer:  trainer / ${STRONGROOM_DEMO_PASSWORD:-strongroom-lab}
  (personas: backup-admin, backup-operator, security-admin, reader, outsider — same password;
   the trainer can also play them from the top bar)
  Ctrl-C stops web, worker and beat.

MSG
wait -n "${pids[@]}"
