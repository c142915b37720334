#!/usr/bin/env bash
# Regenerate vecdb/v1/ from proto/vecdb/v1/*.proto with the pinned grpcio-tools.
# CI runs this and then `git diff --exit-code vecdb/v1` so the committed code never drifts.
set -euo pipefail
cd "$(dirname "$0")/.."

PINNED="$(python - <<'PY'
import re, pathlib
text = pathlib.Path("pyproject.toml").read_text()
match = re.search(r'grpcio-tools==([0-9.]+)', text)
print(match.group(1) if match else "")
PY
)"
INSTALLED="$(python -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true)"
if [[ -z "$PINNED" || "$INSTALLED" != "$PINNED" ]]; then
    echo "gen_proto: need grpcio-tools==$PINNED (pyproject 'test' extra), found '${INSTALLED:-none}'" >&2
    echo "gen_proto: pip install 'grpcio-tools==$PINNED'" >&2
    exit 1
fi

python -m grpc_tools.protoc \
    -I proto \
    --python_out=. \
    --pyi_out=. \
    --grpc_python_out=. \
    proto/vecdb/v1/vecdb.proto

# The generated package needs an __init__ so `vecdb.v1` imports; keep it generated too.
printf '"""Generated protobuf and gRPC code for vecdb.v1 (scripts/gen_proto.sh; never edit by hand)."""\n' \
    > vecdb/v1/__init__.py
echo "gen_proto: regenerated vecdb/v1 with grpcio-tools $INSTALLED"
