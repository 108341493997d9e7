#!/usr/bin/env bash
# The MongoDB-wire store for local runs and tests.
#   deploy/local/store.sh start|stop|status|url
# PMM_MONGODB_URL if set (nothing is started); else a `mongod` on PATH; else FerretDB 1.24
# with its SQLite backend, built with Go from the Go module proxy. State under .local/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PMM_MONGODB_PORT:-27017}"
FERRET_VERSION="${PMM_FERRETDB_VERSION:-v1.24.0}"
FERRET_HOME="$ROOT/.local/ferretdb"
FERRET_BIN="$FERRET_HOME/bin/ferretdb-$FERRET_VERSION"
MONGO_HOME="$ROOT/.local/mongo"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

kind() {
  if [ -n "${PMM_MONGODB_URL:-}" ]; then echo external
  elif command -v mongod >/dev/null 2>&1; then echo mongod
  else echo ferretdb; fi
}

pid_file() { case "$(kind)" in mongod) echo "$MONGO_HOME/mongod.pid" ;; *) echo "$FERRET_HOME/ferretdb.pid" ;; esac; }
running() { local f; f=$(pid_file); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

build_ferretdb() {
  [ -x "$FERRET_BIN" ] && return
  command -v go >/dev/null || { echo "Go is needed to build FerretDB (or set PMM_MONGODB_URL)" >&2; exit 1; }
  echo "store: building FerretDB $FERRET_VERSION with Go (first time only, a few minutes)..."
  local module_dir src="$FERRET_HOME/src"
  module_dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRET_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$src"; mkdir -p "$FERRET_HOME/bin"
  cp -r "$module_dir" "$src"; chmod -R u+w "$src"
  # The module lacks the generated build/version/version.txt: a plain `go install` builds a
  # binary that panics at start. Write it, then build from the copy.
  echo "$FERRET_VERSION" >"$src/build/version/version.txt"
  echo "local" >"$src/build/version/package.txt"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$FERRET_BIN" ./cmd/ferretdb)
  rm -rf "$src"
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  until port_open "$PORT"; do
    if ! running; then echo "store: exited during start" >&2; tail -n 30 "$1" >&2; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then echo "store: not answering after 60 s" >&2; tail -n 30 "$1" >&2; exit 1; fi
    sleep 0.5
  done
}

start() {
  case "$(kind)" in
    external) echo "store: using PMM_MONGODB_URL (nothing to start)"; return ;;
  esac
  if running && port_open "$PORT"; then echo "store: running on 127.0.0.1:$PORT"; return; fi
  if ! running && port_open "$PORT"; then echo "store: something already listens on 127.0.0.1:$PORT; using it"; return; fi
  case "$(kind)" in
    mongod)
      mkdir -p "$MONGO_HOME/data"
      mongod --dbpath "$MONGO_HOME/data" --bind_ip 127.0.0.1 --port "$PORT" \
        --logpath "$MONGO_HOME/mongod.log" --pidfilepath "$MONGO_HOME/mongod.pid" --fork >/dev/null
      wait_ready "$MONGO_HOME/mongod.log"
      echo "store: mongod ready on 127.0.0.1:$PORT" ;;
    ferretdb)
      build_ferretdb
      mkdir -p "$FERRET_HOME/data"
      nohup "$FERRET_BIN" --handler=sqlite --sqlite-url="file:$FERRET_HOME/data/" \
        --listen-addr="127.0.0.1:$PORT" --debug-addr=127.0.0.1:0 --state-dir="$FERRET_HOME" \
        --telemetry=disable --log-level=warn >"$FERRET_HOME/ferretdb.log" 2>&1 &
      echo $! >"$FERRET_HOME/ferretdb.pid"
      wait_ready "$FERRET_HOME/ferretdb.log"
      echo "store: FerretDB $FERRET_VERSION (SQLite) ready on 127.0.0.1:$PORT" ;;
  esac
}

stop() {
  [ "$(kind)" = external ] && { echo "store: external, not stopped"; return; }
  if running; then
    local pid; pid=$(cat "$(pid_file)")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "store: stopped"
  else
    echo "store: not running"
  fi
  rm -f "$(pid_file)"
}

status() {
  [ "$(kind)" = external ] && { echo "store: external ($PMM_MONGODB_URL)"; return 0; }
  if port_open "$PORT"; then echo "store: $(kind) on 127.0.0.1:$PORT"; return 0; fi
  echo "store: stopped"; return 1
}

# FerretDB 1.x applies an update as read-modify-write without a lock, so two concurrent
# updates of one document can lose one (docs/decisions/0005). One connection per client
# serialises a process's operations; a real MongoDB needs no such limit.
url() {
  case "$(kind)" in
    external) echo "$PMM_MONGODB_URL" ;;
    mongod) echo "mongodb://127.0.0.1:$PORT/" ;;
    ferretdb) echo "mongodb://127.0.0.1:$PORT/?maxPoolSize=1" ;;
  esac
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
