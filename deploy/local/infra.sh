#!/usr/bin/env bash
# Kafka and the MongoDB-wire store together (Kafka first, then the store).
#   deploy/local/infra.sh up|down|status
# First `up` on a fresh clone fetches Kafka's jars with Maven and builds FerretDB with Go
# (cached under .local/); later runs start in seconds. Env: PMM_KAFKA_PORT,
# PMM_KAFKA_CONTROLLER_PORT, PMM_MONGODB_PORT, PMM_MONGODB_URL (external store).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in
  up) bash "$HERE/kafka.sh" start; bash "$HERE/store.sh" start; echo "infra: up (store URL: $(bash "$HERE/store.sh" url))" ;;
  down) rc=0; bash "$HERE/kafka.sh" stop || rc=1; bash "$HERE/store.sh" stop || rc=1; exit $rc ;;
  status) rc=0; bash "$HERE/kafka.sh" status || rc=1; bash "$HERE/store.sh" status || rc=1; exit $rc ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
