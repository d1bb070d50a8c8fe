#!/usr/bin/env bash
# The Python tools that check the HTTP API's OpenAPI document (docs/openapi.json), installed
# once into the project's venv ($CACHE_DIR/venv, the one deploy/local/clickhouse.sh creates
# for the ClickHouse engine) from PyPI:
#   openapi-spec-validator — validates the document against the OpenAPI 3.1 specification;
#   schemathesis           — fuzzes the running gateway from the document (tests/tests/openapi.rs).
#
# Usage: deploy/local/apitools.sh ensure     install if missing; print the venv's bin/ folder
#        deploy/local/apitools.sh validate   ensure, then validate docs/openapi.json
# Knobs: CACHE_DIR (default $STATE_DIR/cache), as the other scripts.
set -euo pipefail
COMPONENT=apitools
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Pinned: the suite's expectations (checks, options) are those of these versions.
SPECS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
VENV="$CACHE_DIR/venv"
STAMP="$VENV/.installed-apitools-$(printf '%s+' "${SPECS[@]}" | tr '=' '-')"

ensure() {
  [[ -f $STAMP ]] && return 0
  mkdir -p "$CACHE_DIR"
  # The same lock as clickhouse.sh's venv creation: one writer of the venv at a time.
  exec 8>"$CACHE_DIR/.venv.lock"
  flock 8
  if [[ -f $STAMP ]]; then exec 8>&-; return 0; fi
  need_cmd python3
  local t0
  t0=$(now)
  if [[ ! -x $VENV/bin/python ]]; then
    rm -rf -- "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      # Debian's system python needs python3-venv for `-m venv`.
      rm -rf -- "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  say "installing ${SPECS[*]} into $VENV (first run only)…" >&2
  "$VENV/bin/python" -m pip install -q "${SPECS[@]}" >"$CACHE_DIR/apitools-install.log" 2>&1 || {
    tail -n 30 "$CACHE_DIR/apitools-install.log" >&2
    die "pip install ${SPECS[*]} failed (log: $CACHE_DIR/apitools-install.log)"
  }
  "$VENV/bin/schemathesis" --version >/dev/null || die "schemathesis does not run from $VENV"
  "$VENV/bin/openapi-spec-validator" --help >/dev/null || die "openapi-spec-validator does not run from $VENV"
  touch "$STAMP"
  say "ready in $(since "$t0")s" >&2
  exec 8>&-
}

case "${1:-}" in
  ensure) ensure; printf '%s\n' "$VENV/bin" ;;
  validate)
    ensure
    "$VENV/bin/openapi-spec-validator" "$REPO_ROOT/docs/openapi.json"
    ;;
  *) die "usage: $0 ensure|validate" ;;
esac
