#!/usr/bin/env bash
# Start, stop or show the five PMM services and the console as local processes
# (logs and pids in .local/services).
#   deploy/local/services.sh start|stop|status
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/.local/services"
SERVICES=(register:8001 loket:8002 let:8003 overbrugging:8004 signalen:8005 console:8000)
mkdir -p "$RUN_DIR"

alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

ready() {
  python3 - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

start() {
  export PMM_MONGODB_URL="${PMM_MONGODB_URL:-$(bash "$ROOT/deploy/local/store.sh" url)}"
  # The console on this machine: development sign-in, cookie over plain HTTP.
  export PMM_CONSOLE_DEV_LOGIN="${PMM_CONSOLE_DEV_LOGIN:-true}"
  export PMM_CONSOLE_COOKIE_SECURE="${PMM_CONSOLE_COOKIE_SECURE:-false}"
  for entry in "${SERVICES[@]}"; do
    name=${entry%%:*}; port=${entry##*:}
    if alive "$name"; then echo "  $name already running (pid $(cat "$RUN_DIR/$name.pid"))"; continue; fi
    # The venv's entry point itself (not `uv run`), so SIGTERM reaches uvicorn directly.
    (cd "$ROOT" && PMM_HTTP_PORT="$port" exec setsid "$ROOT/.venv/bin/pmm-$name" \
        >"$RUN_DIR/$name.log" 2>&1 </dev/null) &
    echo $! >"$RUN_DIR/$name.pid"
    echo "  $name starting on :$port (log .local/services/$name.log)"
  done
  local deadline=$((SECONDS + 120))
  for entry in "${SERVICES[@]}"; do
    name=${entry%%:*}; port=${entry##*:}
    until alive "$name" && ready "$port"; do
      if ! alive "$name"; then echo "$name exited; last log lines:" >&2; tail -n 30 "$RUN_DIR/$name.log" >&2; exit 1; fi
      if [ $SECONDS -ge $deadline ]; then echo "$name not ready after 120 s" >&2; tail -n 30 "$RUN_DIR/$name.log" >&2; exit 1; fi
      sleep 1
    done
    if [ "$name" = console ]; then echo "  $name ready: http://127.0.0.1:$port/"
    else echo "  $name ready: http://127.0.0.1:$port/docs"; fi
  done
  start_tenants
}

# The tenant provisioner follows the register's organisations (a principal and ACLs per member
# organisation); only when the local broker is secured (its admin credentials exist).
start_tenants() {
  [ -f "$ROOT/.local/kafka/credentials/admin.properties" ] || return 0
  if alive tenants; then return; fi
  (cd "$ROOT" && exec setsid "$ROOT/.venv/bin/pmm-contracts" tenants \
      >"$RUN_DIR/tenants.log" 2>&1 </dev/null) &
  echo $! >"$RUN_DIR/tenants.pid"
  echo "  tenants following the register (log .local/services/tenants.log)"
}

stop() {
  if alive tenants; then kill -TERM "$(cat "$RUN_DIR/tenants.pid")" 2>/dev/null || true; echo "  tenants stopped"; fi
  rm -f "$RUN_DIR/tenants.pid"
  for entry in "${SERVICES[@]}"; do
    name=${entry%%:*}
    if alive "$name"; then
      pid=$(cat "$RUN_DIR/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL "$pid" 2>/dev/null || true
      echo "  $name stopped"
    fi
    rm -f "$RUN_DIR/$name.pid"
  done
}

status() {
  for entry in "${SERVICES[@]}"; do
    name=${entry%%:*}; port=${entry##*:}
    if alive "$name" && ready "$port"; then echo "  $name: ready on :$port"
    elif alive "$name"; then echo "  $name: running, not ready"
    else echo "  $name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
