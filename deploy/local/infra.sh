#!/usr/bin/env bash
# Kafka and the store together.   deploy/local/infra.sh up|down|status
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in
  up) bash "$HERE/kafka.sh" start; bash "$HERE/store.sh" start ;;
  down) bash "$HERE/kafka.sh" stop; bash "$HERE/store.sh" stop ;;
  status) rc=0; bash "$HERE/kafka.sh" status || rc=1; bash "$HERE/store.sh" status || rc=1; exit $rc ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
