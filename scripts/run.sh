#!/usr/bin/env bash
# Start web, the API over TLS, Celery worker, Celery beat and (in lab mode) the VNets' DNS responder, each supervised: whichever exits is started again with a
# backoff (1 s, doubling to 30 s; back to 1 s after a minute of running), and the others keep going,
# so the web server keeps serving while a worker is down. Ctrl-C (or SIGTERM) stops them all.
# Production: run each under systemd instead (docs/operations.md).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${STRONGROOM_HOST:-127.0.0.1}
PORT=${STRONGROOM_PORT:-8000}
VAR=${STRONGROOM_VAR_DIR:-var}
RUN_DIR="$VAR/run"            # NAME.pid: the process running now (for drills and for people)
STOP_TIMEOUT=${STRONGROOM_STOP_TIMEOUT:-20}  # seconds a worker may take to finish its task on stop
DNS_PORT=${STRONGROOM_DNS_PORT:-5353}  # each VNet's resolver: 127.53.<n>.1 on this UDP port
API_PORT=${STRONGROOM_API_PORT:-8443}  # the app (and its ARM API) over HTTPS, for the Azure SDK
TLS_DIR="$VAR/tls"            # Strongroom's CA (ca.pem: what a client trusts) and the server certificate
mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR/stopping"

say() { echo "[run.sh $(date -u +%H:%M:%S)] $*" >&2; }

# stop_child PID: TERM (a worker finishes its running task), then after STOP_TIMEOUT a cold shutdown
# (QUIT), then KILL. A job cut short this way is re-run by the reconciler after the next start.
stop_child() {
  local pid=$1 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited == STOP_TIMEOUT * 10 )); then
      say "$NAME is still finishing a task after ${STOP_TIMEOUT}s; stopping it now (the job re-runs at the next start)."
      kill -QUIT "$pid" 2>/dev/null
    elif (( waited == (STOP_TIMEOUT + 5) * 10 )); then
      kill -KILL "$pid" 2>/dev/null
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$pid" 2>/dev/null
}

# supervise NAME COMMAND...: run COMMAND, and again whenever it exits, until told to stop.
supervise() {
  NAME=$1; shift
  local child="" sleeper="" delay=1 started status
  # Ctrl-C reaches every process of the terminal's group: only the main script acts on it (it stops
  # the supervisors with TERM); a supervisor killed by it would leave its process behind.
  trap '' INT
  trap 'trap - TERM; [[ -n "$sleeper" ]] && kill "$sleeper" 2>/dev/null; [[ -n "$child" ]] && stop_child "$child"
        rm -f "$RUN_DIR/$NAME.pid"; exit 0' TERM
  while true; do
    started=$SECONDS
    "$@" &
    child=$!
    echo "$child" > "$RUN_DIR/$NAME.pid"
    wait "$child"
    status=$?
    child=""
    [[ -e "$RUN_DIR/stopping" ]] && { rm -f "$RUN_DIR/$NAME.pid"; exit 0; }  # it stopped on Ctrl-C
    (( SECONDS - started >= 60 )) && delay=1
    say "$NAME exited (status $status); starting it again in ${delay}s."
    sleep "$delay" &
    sleeper=$!
    wait "$sleeper"
    sleeper=""
    delay=$(( delay * 2 > 30 ? 30 : delay * 2 ))
  done
}

supervisors=()
stop() {
  trap - INT TERM EXIT
  echo; say "Stopping Strongroom..."
  touch "$RUN_DIR/stopping"
  kill -TERM "${supervisors[@]}" 2>/dev/null
  wait 2>/dev/null
  rm -f "$RUN_DIR/stopping"
  say "Stopped."
}
trap stop INT TERM EXIT

# --insecure: the development server serves static/ with DEBUG off too (production: a proxy serves it)
supervise web $PY manage.py runserver --noreload --insecure "$HOST:$PORT" &
supervisors+=($!)
# The API over TLS (the SDK sends bearer tokens over HTTPS only), with a certificate from Strongroom's own CA,
# made on first run and renewed when it nears its end.
if $PY manage.py tls_certificate --dir "$TLS_DIR" --name "$HOST" >/dev/null; then
  supervise api $PY -m gunicorn portal.wsgi:application --bind "$HOST:$API_PORT" --workers 2 --threads 4 \
    --certfile "$TLS_DIR/server.pem" --keyfile "$TLS_DIR/server-key.pem" --graceful-timeout "$STOP_TIMEOUT" &
  supervisors+=($!)
  API_LINE="  API (HTTPS, for the Azure SDK): https://$HOST:$API_PORT/   trust the CA in $TLS_DIR/ca.pem
   (connection_verify=\"$TLS_DIR/ca.pem\"); App registrations in the portal give a client id and secret"
else
  API_LINE="  API over HTTPS: not started (manage.py tls_certificate failed; see above)"
fi
supervise worker $PY -m celery -A portal worker --loglevel=INFO --concurrency=2 &
supervisors+=($!)
supervise beat $PY -m celery -A portal beat --loglevel=INFO --schedule "$VAR/celerybeat-schedule" &
supervisors+=($!)
MODE=${STRONGROOM_MODE:-}
if [[ -z "$MODE" ]]; then  # as portal/settings.py decides: lab when DEBUG is on
  case "${DEBUG:-}" in [Tt][Rr][Uu][Ee]|1|[Yy][Ee][Ss]|[Oo][Nn]) MODE=lab ;; *) MODE=production ;; esac
fi
if [[ "$MODE" == "lab" ]]; then
  # Each virtual network's DNS resolver (dig @127.53.<n>.1 -p $DNS_PORT <name>), answering from its linked zones.
  supervise dns $PY manage.py dns_responder --port "$DNS_PORT" &
  supervisors+=($!)
  DNS_LINE="  DNS: each virtual network's resolver answers on 127.53.<n>.1, UDP port $DNS_PORT (vnet-lab: try
   dig @127.53.1.1 -p $DNS_PORT contosolabsource.blob.core.windows.net; every VNet's page shows its own line)"
else
  DNS_LINE="  DNS responder: not started (lab mode only; run manage.py dns_responder yourself)"
fi
sleep 2
if [[ -n "${STRONGROOM_DEMO_PASSWORD:-}" ]]; then
  PASSWORDS="the password in STRONGROOM_DEMO_PASSWORD"
else
  PASSWORDS="their passwords are in $VAR/demo-passwords.txt (generated for this installation, readable by you only)"
fi
cat <<MSG

  Strongroom is running at http://$HOST:$PORT/   (lab mode: demo users, training labs, the lab clock)
  Demo accounts: $PASSWORDS
  Sign in as the trainer:  trainer   (Lab Instructor: plays the personas, moves the lab clock, runs classes)
  Sign in as the trainee:  trainee   (Lab Trainee: Home → Training labs, http://$HOST:$PORT/labs/, then
   Start lab; sandboxes use the PostgreSQL lab cluster)
  A demo class of one pair:  demo-class-01 and demo-class-02   (two browsers: the Resource Guard lab
   together; the trainer watches from Training labs → Lab classes)
  Personas: backup-admin, backup-operator, security-admin, reader, outsider (the trainer can also play
   them from the top bar)
$API_LINE
$DNS_LINE
  Web, the API, worker, beat and the DNS responder are restarted if they stop. Ctrl-C stops them all.

MSG
wait
