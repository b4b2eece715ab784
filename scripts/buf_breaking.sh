#!/usr/bin/env bash
# buf breaking: the contracts in the work tree against the previous commit's contracts.
# Released contracts only ever gain fields; a breaking change needs a new version package.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${BUF:-node_modules/.bin/buf}
base=${BUF_AGAINST_REF:-HEAD~1}
if ! git cat-file -e "${base}:protos/buf.yaml" 2>/dev/null; then
  # No earlier contracts to compare with (first commit of protos/, or a shallow clone).
  if git cat-file -e "HEAD:protos/buf.yaml" 2>/dev/null && [ "$base" = "HEAD~1" ]; then
    base=HEAD
  else
    echo "buf breaking: no previous contracts at ${base}; nothing to compare"
    exit 0
  fi
fi
"$buf" breaking protos --against ".git#ref=${base},subdir=protos"
echo "buf breaking: no breaking change against ${base}"
