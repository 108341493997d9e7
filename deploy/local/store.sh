#!/usr/bin/env bash
# The MongoDB-wire store for local runs and tests.
#   deploy/local/store.sh start|stop|status|url
# PMM_MONGODB_URL if set (nothing is started); else a `mongod` on PATH; else FerretDB 1.24
# with its SQLite backend, built with Go from the Go module proxy. State under .local/.
# Port: ${PMM_MONGODB_PORT:-27017}; state: ${PMM_STORE_STATE_DIR:-.local/ferretdb}. A server
# already on the port that we did not start is accepted as is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PMM_MONGODB_PORT:-27017}"
FERRET_VERSION="${PMM_FERRETDB_VERSION:-v1.24.2}"
# PMM_STORE_STATE_DIR: another store's data, pid and log (a second store beside the shared
# one, e.g. the fault tests' on another port); the FerretDB build stays in .local/ferretdb.
FERRET_BUILD="$ROOT/.local/ferretdb"
FERRET_HOME="${PMM_STORE_STATE_DIR:-$FERRET_BUILD}"
FERRET_BIN="$FERRET_BUILD/bin/ferretdb-$FERRET_VERSION"
MONGO_HOME="${PMM_STORE_STATE_DIR:-$ROOT/.local/mongo}"
START_TIMEOUT=60

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

kind() {
  if [ -n "${PMM_MONGODB_URL:-}" ]; then echo external
  elif command -v mongod >/dev/null 2>&1; then echo mongod
  else echo ferretdb; fi
}

pid_file() { case "$(kind)" in mongod) echo "$MONGO_HOME/mongod.pid" ;; *) echo "$FERRET_HOME/ferretdb.pid" ;; esac; }
running() { local f; f=$(pid_file); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# A real MongoDB wire-protocol round trip using only Python's standard library:
# OP_MSG {ping: 1, $db: "admin"}, expecting a reply with ok: 1.0.
wire_ping() {
  python3 -c '
import socket, struct, sys
def cstr(s): return s.encode() + b"\0"
body = b"\x10" + cstr("ping") + struct.pack("<i", 1) + b"\x02" + cstr("$db") + struct.pack("<i", 6) + cstr("admin")
doc = struct.pack("<i", len(body) + 5) + body + b"\0"
msg = struct.pack("<I", 0) + b"\0" + doc
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
    s.sendall(struct.pack("<iiii", 16 + len(msg), 1, 0, 2013) + msg)
    data = b""
    while len(data) < 4 or len(data) < struct.unpack("<i", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
sys.exit(0 if b"\x01ok\0" + struct.pack("<d", 1.0) in data else 1)
' "$PORT" 2>/dev/null
}

build_ferretdb() {
  [ -x "$FERRET_BIN" ] && return
  command -v go >/dev/null || { echo "store: Go is needed to build FerretDB (or set PMM_MONGODB_URL)" >&2; exit 1; }
  echo "store: building FerretDB $FERRET_VERSION with Go (first time only, ~2-4 min)..."
  local module_dir src="$FERRET_BUILD/src"
  module_dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRET_VERSION" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Dir"]) if "Dir" in d else sys.exit(d.get("Error","no Dir"))')
  rm -rf "$src"; mkdir -p "$FERRET_BUILD/bin"
  cp -r "$module_dir" "$src"; chmod -R u+w "$src"
  # The module lacks the generated build/version/version.txt (//go:embed *.txt; version.txt is
  # required, commit/branch/package.txt optional): a plain `go install` builds a binary that
  # panics at start. Write it, then build from the copy. No build tags: the release build
  # (SQLite and PostgreSQL backends, non-debug). CGO is not needed (pure-Go SQLite).
  echo "$FERRET_VERSION" >"$src/build/version/version.txt"
  echo "local" >"$src/build/version/package.txt"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$FERRET_BIN.tmp" ./cmd/ferretdb) >"$FERRET_BUILD/build.log" 2>&1 \
    || { echo "store: FerretDB build failed; tail of .local/ferretdb/build.log:" >&2; tail -n 30 "$FERRET_BUILD/build.log" >&2; exit 1; }
  mv "$FERRET_BIN.tmp" "$FERRET_BIN"
  rm -rf "$src"
  echo "store: built .local/ferretdb/bin/ferretdb-$FERRET_VERSION"
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$PORT" && wire_ping; do
    if ! running; then echo "store: exited during start; log tail:" >&2; tail -n 30 "$1" >&2 || true; rm -f "$(pid_file)"; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then echo "store: not answering after $START_TIMEOUT s; log tail:" >&2; tail -n 30 "$1" >&2 || true; exit 1; fi
    sleep 0.5
  done
}

start() {
  if [ "$(kind)" = external ]; then echo "store: using PMM_MONGODB_URL (external; nothing to start)"; return; fi
  local log; log=$([ "$(kind)" = mongod ] && echo "$MONGO_HOME/mongod.log" || echo "$FERRET_HOME/ferretdb.log")
  if running; then
    if port_open "$PORT"; then echo "store: already running on 127.0.0.1:$PORT (pid $(cat "$(pid_file)"))"; return; fi
    echo "store: pid $(cat "$(pid_file)") is starting; waiting for it"; wait_ready "$log"; return
  fi
  rm -f "$(pid_file)"
  if port_open "$PORT"; then echo "store: a server not started by this script listens on 127.0.0.1:$PORT; using it"; return; fi
  case "$(kind)" in
    mongod)
      mkdir -p "$MONGO_HOME/data"
      mongod --dbpath "$MONGO_HOME/data" --bind_ip 127.0.0.1 --port "$PORT" \
        --logpath "$log" --pidfilepath "$MONGO_HOME/mongod.pid" --fork >/dev/null
      wait_ready "$log"
      echo "store: mongod ready on 127.0.0.1:$PORT" ;;
    ferretdb)
      build_ferretdb
      mkdir -p "$FERRET_HOME/data"
      # --debug-addr=127.0.0.1:0: the debug/metrics listener on a free ephemeral port.
      nohup "$FERRET_BIN" --handler=sqlite --sqlite-url="file:$FERRET_HOME/data/" \
        --listen-addr="127.0.0.1:$PORT" --debug-addr=127.0.0.1:0 --state-dir="$FERRET_HOME" \
        --telemetry=disable --log-level=warn >"$log" 2>&1 </dev/null &
      echo $! >"$FERRET_HOME/ferretdb.pid"
      wait_ready "$log"
      # The index FerretDB's writes by _id can use (else each one scans its table; 0008).
      nohup python3 "$ROOT/deploy/local/ferretdb_id_index.py" "$FERRET_HOME/data" --watch \
        --pid "$(cat "$FERRET_HOME/ferretdb.pid")" >>"$FERRET_HOME/id_index.log" 2>&1 </dev/null &
      echo "store: FerretDB $FERRET_VERSION (SQLite, .local/ferretdb/data) ready on 127.0.0.1:$PORT" ;;
  esac
}

stop() {
  if [ "$(kind)" = external ]; then echo "store: external (PMM_MONGODB_URL), not stopped"; return; fi
  if running; then
    local pid; pid=$(cat "$(pid_file)")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "store: still running after 30 s; killing pid $pid" >&2; kill -KILL "$pid" 2>/dev/null || true; fi
    echo "store: stopped"
  elif port_open "$PORT"; then
    echo "store: not started by this script (no pid file); leaving 127.0.0.1:$PORT alone"
  else
    echo "store: not running"
  fi
  rm -f "$(pid_file)"
}

status() {
  if [ "$(kind)" = external ]; then echo "store: external ($PMM_MONGODB_URL)"; return 0; fi
  if running && port_open "$PORT"; then echo "store: $(kind) running on 127.0.0.1:$PORT (pid $(cat "$(pid_file)"))"; return 0; fi
  if running; then echo "store: pid $(cat "$(pid_file)") alive but 127.0.0.1:$PORT not answering (starting?)"; return 1; fi
  if port_open "$PORT"; then echo "store: a server not started by this script listens on 127.0.0.1:$PORT"; return 0; fi
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
