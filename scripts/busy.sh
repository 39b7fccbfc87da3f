#!/usr/bin/env bash
# Keep the cores busy with spinning Node processes, to check that the test suite
# holds on a loaded machine (issue 10). Usage:
#   scripts/busy.sh [-n N] start     start N loops (default: one per core), PIDs in the pidfile
#   scripts/busy.sh stop             stop the loops listed in the pidfile
#   scripts/busy.sh [-n N] -- CMD…   run CMD with the loops spinning; they are stopped however CMD ends
# The pidfile is $BUSY_PIDFILE, or .busy.pids in the repository root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pidfile=${BUSY_PIDFILE:-$root/.busy.pids}
n=$(nproc 2>/dev/null || echo 2)

usage () { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

start () {
  local i pid
  for ((i = 0; i < n; i++)); do
    node -e 'for(;;){}' &
    pid=$!
    echo "$pid" >>"$pidfile"
  done
  echo "busy: $n loops running (pids in $pidfile)" >&2
}

stop () {
  [ -f "$pidfile" ] || { echo "busy: no pidfile at $pidfile" >&2; return 0; }
  local pid
  while read -r pid; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done <"$pidfile"
  rm -f "$pidfile"
  echo "busy: loops stopped" >&2
}

while [ $# -gt 0 ]; do
  case "$1" in
    -n) n=$2; shift 2 ;;
    start) start; exit 0 ;;
    stop) stop; exit 0 ;;
    --)
      shift
      [ $# -gt 0 ] || usage
      # A private pidfile, so a run never stops loops that another run started.
      pidfile=$(mktemp "${TMPDIR:-/tmp}/busy.XXXXXX")
      trap stop EXIT
      trap 'exit 130' INT TERM
      start
      set +e
      "$@"
      status=$?
      set -e
      exit "$status"
      ;;
    *) usage ;;
  esac
done
usage
