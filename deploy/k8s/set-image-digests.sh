#!/usr/bin/env bash
# The release step: pin the prod overlay's images to the digests just pushed.
#
# Usage: deploy/k8s/set-image-digests.sh <image>=<repository>@sha256:<hex> ...
#   e.g. zenops/ops=registry.example.in/zenops/ops@sha256:4f1c...  nats=nats@sha256:9e0a...
# <image> is the name the manifests use (zenops/<svc>, envoyproxy/envoy, nats,
# otel/opentelemetry-collector-contrib). Get a digest with `docker buildx imagetools
# inspect <ref>` or `crane digest <ref>` after pushing. Rewrites the `newName` and `digest`
# of that entry in overlays/prod/kustomization.yaml (comments kept); commit the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ "$#" -gt 0 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
python3 - "$here/overlays/prod/kustomization.yaml" "$@" <<'PY'
import re
import sys

path, pins = sys.argv[1], sys.argv[2:]
text = open(path).read()
for pin in pins:
    m = re.fullmatch(r"([\w./-]+)=([\w./:-]+)@(sha256:[0-9a-f]{64})", pin)
    if not m:
        sys.exit(f"not <image>=<repository>@sha256:<64 hex>: {pin!r}")
    name, repo, digest = m.groups()
    entry = re.compile(rf"(  - name: {re.escape(name)}\n    newName: )\S+(\n    digest: )\S+")
    text, n = entry.subn(lambda e: f"{e.group(1)}{repo}{e.group(2)}{digest}", text)
    if n != 1:
        sys.exit(f"no images: entry named {name!r} in {path}")
open(path, "w").write(text)
print(f"pinned {len(pins)} image(s) in {path}")
PY
