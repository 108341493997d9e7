#!/usr/bin/env bash
# Run kustomize v5 on the PMM manifests: `deploy/k8s/kustomize.sh build deploy/k8s/overlays/local`.
# Takes the first of: `kustomize` on PATH (v5), kubectl's built-in one (`kubectl kustomize`,
# when its Kustomize is v5), one built before into .local/bin, or builds that one with Go
# from the Go module proxy (about two minutes, once). Debian's kubernetes-client package
# carries kubectl 1.20, whose kustomize (v2) is too old for these manifests.
#   deploy/k8s/kustomize.sh which    # print what would be used
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUSTOMIZE_VERSION="v5.7.1"
LOCAL_BIN="$ROOT/.local/bin"

is_v5() { grep -Eq 'v5\.' <<<"$1"; }

find_kustomize() {
  if command -v kustomize >/dev/null 2>&1 && is_v5 "$(kustomize version 2>/dev/null || true)"; then
    echo "kustomize"; return
  fi
  if command -v kubectl >/dev/null 2>&1 \
      && is_v5 "$(kubectl version --client 2>/dev/null | grep -i kustomize || true)"; then
    echo "kubectl kustomize"; return
  fi
  if [[ -x "$LOCAL_BIN/kustomize" ]]; then
    echo "$LOCAL_BIN/kustomize"; return
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "kustomize v5 not found: install it, or kubectl >= 1.27, or Go to build it" >&2
    exit 1
  fi
  echo "building kustomize $KUSTOMIZE_VERSION with Go into $LOCAL_BIN (once)..." >&2
  mkdir -p "$LOCAL_BIN"
  GOBIN="$LOCAL_BIN" GOFLAGS=-buildvcs=false \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
  echo "$LOCAL_BIN/kustomize"
}

tool="$(find_kustomize)"
case "${1:-}" in
  which) echo "$tool" ;;
  build) shift; if [[ "$tool" == "kubectl kustomize" ]]; then exec kubectl kustomize "$@"; else exec $tool build "$@"; fi ;;
  *) echo "usage: $0 build DIR | which" >&2; exit 2 ;;
esac
