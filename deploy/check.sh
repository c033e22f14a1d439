#!/usr/bin/env bash
# Renders every overlay in deploy/k8s/overlays with kustomize, then checks
# each rendering offline: Kubernetes' own schemas, strict (unknown fields
# fail), with PyPI's kubernetes-validate; and Lobby's rules (deploy/policy.py:
# limits, probes, a locked-down securityContext, no development secret in
# production). Also checks that the rules bite: a production build without
# its secrets.env fails, one with the example's placeholders is refused, and
# so is a container without limits.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="$(bash "$repo/scripts/ensure-venv.sh")"
validator="$(dirname "$python")/kubernetes-validate"
kustomize="$(bash "$repo/scripts/ensure-kustomize.sh")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A copy to render from: the production overlays need a secrets.env, which
# is never committed; here it gets random values (the same region secret in
# every region, as the regions need).
cp -r "$repo/deploy/k8s" "$work/k8s"
random() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
region_secret="$(random)"
write_secrets() {
  cat > "$1" <<SECRETS
LOBBY_ADMIN_TOKEN=$(random)
LOBBY_LIVEKIT_API_KEY=$(random)
LOBBY_LIVEKIT_API_SECRET=$(random)
LOBBY_ARTIFACTS_SIGNING_SECRET=$(random)
LOBBY_AUTH_KEY_PEPPER=$(random)
LOBBY_MASTER_KEYS=main:$(head -c 32 /dev/urandom | base64)
LOBBY_REGION_SECRET=$region_secret
LOBBY_DAILY_API_KEY=
LOBBY_DAILY_WEBHOOK_SECRET=
SECRETS
}

refused() {
  echo "deploy-check: $1" >&2
  exit 1
}

# Without its secrets.env, a production overlay does not build.
if "$kustomize" build "$work/k8s/overlays/production" >/dev/null 2>&1; then
  refused "the production overlay built without a secrets.env"
fi
for overlay in "$work"/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  if grep -q "secrets.env" "$overlay/kustomization.yaml"; then
    write_secrets "$overlay/secrets.env"
  fi
  rendered="$work/$name.yaml"
  "$kustomize" build "$overlay" > "$rendered" || refused "kustomize build of overlays/$name failed"
  "$validator" --strict --kubernetes-version 1.30 --quiet "$rendered" \
    || refused "overlays/$name does not match Kubernetes' schemas"
  "$python" "$repo/deploy/policy.py" < "$rendered" || refused "overlays/$name breaks the deployment rules"
  echo "deploy-check: overlays/$name renders, validates and passes the rules"
done

# The rules bite. Each case renders first (a failed render proves nothing),
# then the rules must refuse it for the reason expected.
refuses() {
  local overlay="$1" expected="$2" rendered="$work/bad.yaml" said
  "$kustomize" build "$work/k8s/overlays/$overlay" > "$rendered" || refused "the $overlay case did not render"
  if said="$("$python" "$repo/deploy/policy.py" < "$rendered" 2>&1)"; then
    refused "the rules passed a case they must refuse ($expected)"
  fi
  grep -q "$expected" <<<"$said" || refused "the rules refused for another reason than \"$expected\": $said"
}
# The example's placeholders in production...
cp "$repo/deploy/k8s/overlays/production/secrets.env.example" "$work/k8s/overlays/production/secrets.env"
refuses production "is an example placeholder"
# ...and a container without limits.
sed -i '/limits:/d' "$work/k8s/base/auth.yaml"
refuses dev "no memory limit"
echo "deploy-check: every overlay valid; placeholders and missing limits refused"
