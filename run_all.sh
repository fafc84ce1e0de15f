#!/usr/bin/env bash
# One entry point for reviewers.
#   ./run_all.sh --table 1|2 | --figure 3a|3b|3c|3d|all | --study protocols|selection-bias
#                [--profile P] [--jobs N] [--seeds K] ...
#   ./run_all.sh --test [pytest args]
#   ./run_all.sh --setup-only
#   ./run_all.sh --help
# On first use it creates .venv and installs the suite into it (editable); later runs reinstall nothing
# unless setup.cfg / pyproject.toml / constraints.txt changed.  Set OEFSMC_CONSTRAINTS= (empty) to install
# without this machine's pins, or OEFSMC_PYTHON to choose the interpreter that creates the venv.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY_BOOT="${OEFSMC_PYTHON:-python3}"
CONSTRAINTS="${OEFSMC_CONSTRAINTS-$ROOT/constraints.txt}"

log() { echo "[run_all] $*" >&2; }

usage() {
  cat <<'EOF'
usage: ./run_all.sh --table 1|2 | --figure 3a|3b|3c|3d|all | --study protocols|selection-bias [sweep options]
                                           run a paper artifact or study (repeatable), render it
       ./run_all.sh --test [pytest args]   install the test extras if needed and run the test suite
       ./run_all.sh --setup-only           create .venv and install the suite, nothing else
       ./run_all.sh --help                 this help, then the sweep options

The first call creates .venv and installs the suite (torch takes minutes); later calls reinstall nothing
unless setup.cfg, pyproject.toml or constraints.txt changed.  OEFSMC_CONSTRAINTS= (empty) installs without
this machine's pins; OEFSMC_PYTHON chooses the interpreter that creates .venv.

EOF
}

install_stamp() {
  # the hash of everything that decides what gets installed, plus the wanted extras
  cat setup.cfg pyproject.toml ${CONSTRAINTS:+"$CONSTRAINTS"} | sha256sum | cut -c1-16
}

ensure_venv() {
  local extras="$1" stamp_file="$VENV/.oefsmc-installed-$1" want
  want=$(install_stamp)
  if [[ -x "$VENV/bin/python" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
    return 0
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $($PY_BOOT --version 2>&1)"
    "$PY_BOOT" -m venv "$VENV"
  fi
  local spec="."
  [[ "$extras" != "base" ]] && spec=".[$extras]"
  log "installing the suite ($spec) into .venv; the first install of torch takes several minutes"
  local cargs=()
  [[ -n "$CONSTRAINTS" ]] && cargs=(-c "$CONSTRAINTS")
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${cargs[@]}" -e "$spec" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$want" > "$stamp_file"
  echo "$want" > "$VENV/.oefsmc-installed-base"   # any extras install includes the base install
  log "installed; stamp $want"
}

if [[ "${1:-}" == "--test" ]]; then
  shift
  ensure_venv test
  log "running the test suite"
  exec "$VENV/bin/python" -m pytest "$@"
fi

if [[ "${1:-}" == "--setup-only" ]]; then
  ensure_venv base
  exit 0
fi

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  usage
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "(the sweep options are listed here once .venv exists: ./run_all.sh --setup-only)"
    exit 0
  fi
  OEFSMC_PROG=./run_all.sh exec "$VENV/bin/python" -m benchmark sweep --help
fi

ensure_venv base
# usage lines and argparse errors name ./run_all.sh, the command the user typed
OEFSMC_PROG=./run_all.sh exec "$VENV/bin/python" -m benchmark sweep "$@"
