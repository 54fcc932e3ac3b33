#!/usr/bin/env bash
# Shared by scripts/demo and scripts/test: make .venv with driftline installed (once),
# and check the tools the local Kafka broker needs. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "driftline needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
stamp="$ROOT/.venv/.driftline-installed"
if [[ ! -x "$ROOT/.venv/bin/python" || ! -f "$stamp" || "$ROOT/pyproject.toml" -nt "$stamp" ]]; then
  echo "setting up $ROOT/.venv (first run: a few minutes)" >&2
  "$PY" -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test]"
  touch "$stamp"
fi
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  for tool in java mvn; do
    if ! command -v "$tool" >/dev/null; then
      echo "driftline starts a local Kafka broker and needs '$tool': apt-get install openjdk-17-jre-headless maven," >&2
      echo "or point KAFKA_BOOTSTRAP_SERVERS at a running broker" >&2
      exit 2
    fi
  done
fi
export PATH="$ROOT/.venv/bin:$PATH"
