#!/usr/bin/env bash
# `make run`: the whole pipeline on this machine — real Kafka, the real ClickHouse engine,
# the gateway, the indexer, the forwarder and local fake SIEM receivers — seeded with two demo
# organizations and demo events. Prints where to look; Ctrl-C stops everything it started.
# `deploy/local/run.sh stop` (make stop) stops a run left in the background.
#   PROFILE=release make run   builds optimised binaries (slower build, faster services).
#   GATEWAYS=2 INDEXERS=2 FORWARDERS=2 make run   runs several instances of each service
#   (gateways on 8080, 8081… with ops on 9100, 9110…; indexer ops on 9101, 9111…; forwarder
#   ops on 9102, 9112…):
#   indexers and forwarders share the partitions of their consumer groups.
#   STATE_DIR (default .local) holds pid files (run/), logs (logs/) and the engines' state.
# Pid files record each service's start time and binary; `stop` signals only processes that
# still match them (deploy/local/lib.sh, "Processes we started"), never a recycled pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
COMPONENT=run
# shellcheck source-path=SCRIPTDIR source=lib.sh
source deploy/local/lib.sh
export STATE_DIR
STATE="$STATE_DIR"
RUN="$STATE/run"
LOGS="$STATE/logs"
PROFILE="${PROFILE:-debug}"
GATEWAY_URL="http://127.0.0.1:8080"
GATEWAYS="${GATEWAYS:-1}" INDEXERS="${INDEXERS:-1}" FORWARDERS="${FORWARDERS:-1}"

# Services get 30 s to drain (SIGTERM), then SIGKILL; only processes the pid files identify.
stop_services() {
  local -a pidfiles=()
  [[ -d $RUN ]] && mapfile -t pidfiles < <(find "$RUN" -maxdepth 1 -name '*.pid' | sort)
  terminate_all 30 "${pidfiles[@]}"
}

if [[ ${1:-} == stop ]]; then
  stop_services
  deploy/local/infra.sh down
  exit 0
fi

WITH_BROWSER=0 deploy/local/prereqs.sh
mkdir -p "$RUN" "$LOGS"
stop_services # a previous run left in the background

say "building ($PROFILE)…"
if [[ $PROFILE == release ]]; then
  cargo build --release --workspace --bins --quiet
else
  cargo build --workspace --bins --quiet
fi
BIN="$ROOT/target/$PROFILE"
deploy/local/infra.sh up

start() { # name, binary, args… (environment assignments before `start` apply to the service)
  local name=$1 binary=$2
  shift 2
  if [[ ! -x $binary ]]; then
    say "skipping $name ($binary not built)"
    return 0
  fi
  nohup "$binary" "$@" >>"$LOGS/$name.log" 2>&1 &
  # nohup execs the binary in place: $! is the service, and its argv[0] is $binary.
  if ! record_pid "$RUN/$name.pid" "$!" "$binary"; then
    tail -n 30 "$LOGS/$name.log" >&2
    say "ERROR: $name exited at once (log: $LOGS/$name.log)"
    exit 1
  fi
}

wait_ready() { # name, url
  local name=$1 url=$2 i
  [[ -s $RUN/$name.pid ]] || return 0
  for i in $(seq 1 600); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    if ! owned_pid "$RUN/$name.pid" >/dev/null; then
      tail -n 30 "$LOGS/$name.log" >&2
      say "ERROR: $name exited during start (log: $LOGS/$name.log)"
      exit 1
    fi
    sleep 0.1
  done
  tail -n 30 "$LOGS/$name.log" >&2
  say "ERROR: $name not ready after 60 s (log: $LOGS/$name.log)"
  exit 1
}

cleanup() {
  echo
  say "stopping services…"
  stop_services
  deploy/local/infra.sh down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start fake-receivers "$BIN/fake-receivers"
for ((i = 0; i < INDEXERS; i++)); do
  INDEXER__HTTP__LISTEN="127.0.0.1:$((9101 + 10 * i))" start "indexer-$((i + 1))" "$BIN/indexer" --config config/indexer.toml
done
for ((i = 0; i < GATEWAYS; i++)); do
  GATEWAY__HTTP__LISTEN="127.0.0.1:$((8080 + i))" GATEWAY__OPS__LISTEN="127.0.0.1:$((9100 + 10 * i))" start "gateway-$((i + 1))" "$BIN/gateway" --config config/gateway.toml
done
for ((i = 0; i < FORWARDERS; i++)); do
  FORWARDER__HTTP__LISTEN="127.0.0.1:$((9102 + 10 * i))" start "forwarder-$((i + 1))" "$BIN/forwarder" --config config/forwarder.toml
done
for ((i = 0; i < INDEXERS; i++)); do wait_ready "indexer-$((i + 1))" "http://127.0.0.1:$((9101 + 10 * i))/readyz"; done
for ((i = 0; i < GATEWAYS; i++)); do wait_ready "gateway-$((i + 1))" "http://127.0.0.1:$((9100 + 10 * i))/readyz"; done
for ((i = 0; i < FORWARDERS; i++)); do wait_ready "forwarder-$((i + 1))" "http://127.0.0.1:$((9102 + 10 * i))/readyz"; done

say "seeding demo tenants (config/seed.toml) through the operator API…"
"$BIN/demo" --gateway "$GATEWAY_URL" seed --file config/seed.toml --keys-file "$STATE/demo-keys.json"
KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["demo-producer"])' "$STATE/demo-keys.json")
say "publishing demo events…"
"$BIN/demo" --gateway "$GATEWAY_URL" publish --key "$KEY" --orgs org_acme,org_globex --count 400

ACME=$("$BIN/gateway" --config config/gateway.toml mint-token --org org_acme --role admin --subject user_alice --email alice@acme.example)
GLOBEX=$("$BIN/gateway" --config config/gateway.toml mint-token --org org_globex --role owner --subject user_bob --email bob@globex.example)

cat <<MSG

  The audit-log pipeline is running. Ctrl-C stops everything.

  Dashboard (Security → Audit Logs), signed in as an Admin of each organization:
    $GATEWAY_URL/orgs/org_acme/security/audit-logs#token=$ACME
    $GATEWAY_URL/orgs/org_globex/security/audit-logs#token=$GLOBEX

  Publish an event as a product team:
    curl -sS -X POST $GATEWAY_URL/v1/events -H "Authorization: Bearer $KEY" \\
      -H 'content-type: application/json' \\
      -d '{"org_id":"org_acme","occurred_at":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_42","email":"eve@acme.example"},"context":{"ip":"203.0.113.9"}}'

  Query the log:
    curl -sS "$GATEWAY_URL/v1/orgs/org_acme/events?limit=5" -H "Authorization: Bearer $ACME"

  Operator API (token: dev-operator-token):
    curl -sS $GATEWAY_URL/v1/admin/orgs/org_globex -H 'Authorization: Bearer dev-operator-token'

  ClickHouse (read-only user):   curl -sS 'http://127.0.0.1:18123/?user=ops_reader&password=ops_reader_local' --data 'SELECT action, count() FROM audit.events GROUP BY action'
  Instances: $GATEWAYS gateway(s) from :8080 (ops :9100, :9110…), $INDEXERS indexer(s) (ops :9101, :9111…), $FORWARDERS forwarder(s) (ops :9102, :9112…)
  Metrics:  http://127.0.0.1:9100/metrics   http://127.0.0.1:9101/metrics   http://127.0.0.1:9102/metrics
  Logs:     $LOGS/{gateway-N,indexer-N,forwarder-N,fake-receivers}.log

MSG

# Keep running until Ctrl-C; report a service that dies.
while true; do
  for pidfile in "$RUN"/*.pid; do
    [[ -s $pidfile ]] || continue
    name=$(basename "$pidfile" .pid)
    if ! owned_pid "$pidfile" >/dev/null; then
      say "WARNING: $name exited; see $LOGS/$name.log"
      rm -f "$pidfile"
    fi
  done
  sleep 2
done
