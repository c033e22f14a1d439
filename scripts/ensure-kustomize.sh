#!/usr/bin/env bash
# Builds kustomize once with `go install` and prints its path (what
# deploy/check.sh renders every overlay with). Exits 3 when Go is absent or
# the build fails.
set -euo pipefail
KUSTOMIZE_VERSION="v5.8.1"
exec bash "$(dirname "$0")/go-tool.sh" kustomize \
  sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" "$KUSTOMIZE_VERSION" version
