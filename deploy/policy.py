"""Checks rendered Kubernetes manifests (`kustomize build` output, on stdin)
against Lobby's deployment rules, and names every breach:

- every container (and init container) has CPU and memory requests and
  limits, and a securityContext that runs as non-root (here or on its pod),
  forbids privilege escalation, mounts the root filesystem read-only and
  drops every capability;
- every container of a long-running workload (Deployment, StatefulSet,
  DaemonSet) has startup, liveness and readiness probes;
- with LOBBY_ENV=production, no secret is empty, a development default or an
  example placeholder (the same rules the services apply at start-up,
  `lobby_kit::production`), and several regions share a real secret.

Usage: kustomize build deploy/k8s/overlays/production | python deploy/policy.py
Exits 1 when anything breaks a rule.
"""

import base64
import sys

import yaml

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
WORKLOADS = LONG_RUNNING | {"Job", "CronJob"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")

# lobby_kit::production::DEV_SECRETS (a unit test there keeps this in step).
DEV_SECRETS = {
    "LOBBY_AUTH_KEY_PEPPER": "dev-only-pepper-change-me-in-production",
    "LOBBY_LIVEKIT_API_KEY": "devkey",
    "LOBBY_LIVEKIT_API_SECRET": "secret",
    "LOBBY_ARTIFACTS_SIGNING_SECRET": "dev-artifacts-signing-secret",
    "LOBBY_MASTER_KEYS": "dev:bG9iYnktZGV2LW1hc3Rlci1rZXktaXMtcHVibGljISE=",
}
# lobby_kit::production::PLACEHOLDER_MARKS
PLACEHOLDER_MARKS = ("replace-with", "replace-me", "change-me", "example")
REQUIRED_IN_PRODUCTION = ("LOBBY_ADMIN_TOKEN",) + tuple(DEV_SECRETS)
DEV_REGION_SECRET = "dev-region-secret-change-me"


def pod_spec(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def check_workload(doc, breaches):
    name = f'{doc["kind"]}/{doc["metadata"]["name"]}'
    pod = pod_spec(doc)
    pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot") is True
    containers = [("container", c) for c in pod.get("containers", [])]
    containers += [("init container", c) for c in pod.get("initContainers", [])]
    for role, c in containers:
        where = f'{name} {role} {c.get("name")}'
        resources = c.get("resources") or {}
        for part in ("requests", "limits"):
            for kind in ("cpu", "memory"):
                if kind not in (resources.get(part) or {}):
                    breaches.append(f"{where}: no {kind} {part[:-1]}")
        sc = c.get("securityContext") or {}
        # The container's own setting, when it has one, wins over the pod's.
        if sc.get("runAsNonRoot", pod_non_root) is not True:
            breaches.append(f"{where}: may run as root (runAsNonRoot is not true)")
        if sc.get("allowPrivilegeEscalation") is not False:
            breaches.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            breaches.append(f"{where}: the root filesystem is writable")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            breaches.append(f"{where}: capabilities are not all dropped")
        if doc["kind"] in LONG_RUNNING and role == "container":
            for probe in PROBES:
                if probe not in c:
                    breaches.append(f"{where}: no {probe}")


def secret_values(doc):
    values = dict(doc.get("stringData") or {})
    for key, value in (doc.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode("utf-8", "replace")
    return values


def check_production_secrets(config, secrets, breaches):
    values = {}
    for doc in secrets:
        values.update(secret_values(doc))
    for key in REQUIRED_IN_PRODUCTION:
        if not values.get(key) and not config.get(key):
            breaches.append(f"production: {key} is unset")
    for key, value in {**config, **values}.items():
        if not value:
            continue
        if DEV_SECRETS.get(key) == value:
            breaches.append(f"production: {key} is its development default")
        elif key in DEV_SECRETS or key in REQUIRED_IN_PRODUCTION or key.endswith(("SECRET", "TOKEN", "PEPPER", "KEYS", "_KEY")):
            if any(mark in value.lower() for mark in PLACEHOLDER_MARKS):
                breaches.append(f"production: {key} is an example placeholder")
    if config.get("LOBBY_REGIONS", "").strip().startswith("["):
        secret = values.get("LOBBY_REGION_SECRET") or config.get("LOBBY_REGION_SECRET", "")
        if len(secret) < 16 or secret == DEV_REGION_SECRET:
            breaches.append("production: several regions need a real LOBBY_REGION_SECRET (16+ characters, the same in each)")


def main():
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    breaches = []
    config = {}
    secrets = []
    for doc in docs:
        kind = doc.get("kind")
        if kind in WORKLOADS:
            check_workload(doc, breaches)
        elif kind == "ConfigMap" and doc["metadata"]["name"] == "lobby-config":
            config = doc.get("data") or {}
        elif kind == "Secret" and doc["metadata"]["name"] == "lobby-secrets":
            secrets.append(doc)
    if not any(d.get("kind") in WORKLOADS for d in docs):
        breaches.append("no workload at all: is this a kustomize build?")
    if config.get("LOBBY_ENV") == "production":
        check_production_secrets(config, secrets, breaches)
    for b in breaches:
        print(f"policy: {b}", file=sys.stderr)
    if breaches:
        sys.exit(1)
    print(f"policy: {len(docs)} resources pass")


if __name__ == "__main__":
    main()
