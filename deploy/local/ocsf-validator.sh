#!/usr/bin/env bash
# The independent OCSF validator (deploy/local/ocsf_validate.py) in a project-local venv with
# `ocsf-json-schema` (the OCSF schema exports, 1.0.0–1.8.0, and the JSON Schema generator) and
# `jsonschema` from PyPI, created once in $CACHE_DIR/venv-ocsf like the engine's venv.
# Used by the mapping's schema test (crates/audit-core/tests/ocsf_schema.rs) and `make test`.
#
# Usage: deploy/local/ocsf-validator.sh install
#        deploy/local/ocsf-validator.sh [--version 1.4.0] FILE...   (NDJSON of OCSF objects)
set -euo pipefail
COMPONENT=ocsf-validator
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SPECS=(ocsf-json-schema==1.2.0 jsonschema==4.26.0)
VENV="$CACHE_DIR/venv-ocsf"

ensure_venv() {
  local stamp
  stamp="$VENV/.installed-$(IFS=_; echo "${SPECS[*]}")"
  [[ -f $stamp ]] && return 0
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.venv-ocsf.lock"
  flock 8
  if [[ -f $stamp ]]; then exec 8>&-; return 0; fi
  need_cmd python3
  say "creating venv with ${SPECS[*]} (first run only, ~3 MB download)…" >&2
  rm -rf -- "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's system python needs python3-venv for `-m venv`.
    rm -rf -- "$VENV"
    apt_install python3-venv >&2
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q "${SPECS[@]}" >"$CACHE_DIR/venv-ocsf-install.log" 2>&1 || {
    tail -n 30 "$CACHE_DIR/venv-ocsf-install.log" >&2
    die "pip install ${SPECS[*]} failed (log: $CACHE_DIR/venv-ocsf-install.log)"
  }
  "$VENV/bin/python" -c 'import jsonschema, ocsf_json_schema' >/dev/null ||
    die "the validator's packages do not import from $VENV"
  touch "$stamp"
  exec 8>&-
}

ensure_venv
case "${1:-}" in
  install) say "ready ($VENV)" ;;
  "") die "usage: $0 install | [--version V] FILE..." ;;
  *)
    version=1.4.0
    if [[ $1 == --version ]]; then
      version=${2:?--version needs a value}
      shift 2
    fi
    exec "$VENV/bin/python" "$LIB_DIR/ocsf_validate.py" --version "$version" "$@"
    ;;
esac
