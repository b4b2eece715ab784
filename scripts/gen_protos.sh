#!/usr/bin/env bash
# Regenerates libs/contracts/src/zenops from protos/ with the pinned grpcio-tools and
# mypy-protobuf. Deterministic: the output tree is wiped first, so a removed proto removes
# its code, and CI (`make proto-check`) fails when the committed tree differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/libs/contracts/src"
python=${PYTHON:-python}
rm -rf "$out/zenops"
mkdir -p "$out"
cd "$root/protos"
mapfile -t files < <(find zenops -name '*.proto' | LC_ALL=C sort)
"$python" -m grpc_tools.protoc -I . \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  "${files[@]}"
# Every generated directory is a regular package.
find "$out/zenops" -type d -exec sh -c 'touch "$1/__init__.py"' _ {} \;
touch "$out/zenops/py.typed"
echo "generated ${#files[@]} proto files into libs/contracts/src/zenops"
