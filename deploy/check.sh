#!/usr/bin/env bash
# Validates every manifest in deploy/k8s against Kubernetes' own schemas,
# offline and strict (unknown fields fail), with PyPI's kubernetes-validate.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="$(bash "$repo/scripts/ensure-venv.sh")"
validator="$(dirname "$python")/kubernetes-validate"
files=$(find "$repo/deploy/k8s" -name '*.yaml' ! -name kustomization.yaml | sort)
"$validator" --strict --kubernetes-version 1.30 $files
# Every resource the kustomization lists must exist.
for r in $(sed -n '/^resources:/,/^[a-z]/p' "$repo/deploy/k8s/base/kustomization.yaml" | sed -n 's/^  - //p'); do
  [ -f "$repo/deploy/k8s/base/$r" ] || { echo "kustomization lists missing $r" >&2; exit 1; }
done
echo "deploy-check: manifests valid"
