# shellcheck shell=bash
# Helpers shared by deploy/local/kafka.sh and deploy/local/clickhouse.sh. Sourced, not run.
# Callers set COMPONENT (used as the prefix of every message) before sourcing.

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LIB_DIR/../.." && pwd)"

# State lives in a git-ignored folder of the repo unless the caller points elsewhere
# (test instances use their own STATE_DIR and ports beside a dev instance).
STATE_DIR="${STATE_DIR:-$REPO_ROOT/.local}"
STATE_DIR="$(realpath -m -- "$STATE_DIR")"
# Downloads (jars, Maven repo, venv) are shared by every instance using the same cache.
CACHE_DIR="${CACHE_DIR:-$STATE_DIR/cache}"
CACHE_DIR="$(realpath -m -- "$CACHE_DIR")"

say() { printf '%s: %s\n' "$COMPONENT" "$*"; }
warn() { printf '%s: %s\n' "$COMPONENT" "$*" >&2; }
die() {
  warn "ERROR: $*"
  exit 1
}

now() { printf '%s' "$EPOCHREALTIME"; }
# Seconds elapsed since a `now` reading, one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Install Debian packages on a fresh machine (we run as root there). Waits for the dpkg
# lock because kafka.sh and clickhouse.sh may install at the same time under infra.sh.
apt_install() {
  [[ $EUID -eq 0 ]] || die "need to install $* but not root; install them and retry"
  local -a apt=(apt-get -y -q -o DPkg::Lock::Timeout=300)
  say "installing Debian package(s): $* (first run only)…"
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "$@" >/dev/null; then
    # A fresh machine may have empty or stale package lists.
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "$@" >/dev/null
  fi
}

# need_cmd CMD [PACKAGE]: make sure CMD exists, installing PACKAGE (default CMD) if not.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "${2:-$1}"
  command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing ${2:-$1}"
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Who listens on PORT, for error messages (ss may be absent on a minimal machine).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
  fi
}

# running PIDFILE MARKER: print the pid and succeed if the pid file names a live, non-zombie
# process whose command line contains MARKER (our instance directory), so a recycled pid
# of an unrelated process is never mistaken for ours.
running() {
  local pidfile=$1 marker=$2 pid state cmdline
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$marker"* ]] || return 1
  printf '%s' "$pid"
}

# confirm_started PIDFILE MARKER: the background job needs a moment to exec the real
# command; poll (up to 10 s) until the pid's command line is ours, fail if it exits first.
confirm_started() {
  local pidfile=$1 marker=$2 pid i
  pid=$(<"$pidfile")
  for ((i = 0; i < 200; i++)); do
    running "$pidfile" "$marker" >/dev/null && return 0
    pid_gone "$pid" && return 1
    sleep 0.05
  done
  return 1
}

# pid_gone PID: the process has exited (or is a zombie waiting for its reaper).
pid_gone() {
  local state
  [[ -e /proc/$1 ]] || return 0
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ $state == Z ]]
}

# stop_pid PID GRACE_SECONDS: SIGTERM, wait, then SIGKILL. Only ever this one pid.
stop_pid() {
  local pid=$1 grace=$2 t0
  t0=$(now)
  kill -TERM "$pid" 2>/dev/null || return 0
  while ! pid_gone "$pid"; do
    if awk -v a="$t0" -v b="$EPOCHREALTIME" -v g="$grace" 'BEGIN { exit !(b - a > g) }'; then
      warn "pid $pid still alive after ${grace}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while ! pid_gone "$pid"; do sleep 0.1; done
      return 0
    fi
    sleep 0.1
  done
}

# log_tail FILE: the end of a service log, for failure messages.
log_tail() {
  [[ -f $1 ]] || return 0
  warn "last lines of $1:"
  tail -n "${2:-40}" -- "$1" | sed 's/^/    /' >&2
}

# wait_until CHECK_FN TIMEOUT PIDFILE MARKER LOGFILE: poll CHECK_FN (never a fixed sleep)
# until it succeeds; fail early if the pid file names a process that died, or on timeout.
wait_until() {
  local check=$1 timeout=$2 pidfile=$3 marker=$4 logfile=$5 t0
  t0=$(now)
  while ! "$check"; do
    if [[ -s $pidfile ]] && ! running "$pidfile" "$marker" >/dev/null; then
      warn "process $(<"$pidfile") exited before becoming ready"
      log_tail "$logfile"
      return 1
    fi
    if awk -v a="$t0" -v b="$EPOCHREALTIME" -v g="$timeout" 'BEGIN { exit !(b - a > g) }'; then
      warn "not ready after ${timeout}s"
      log_tail "$logfile"
      return 1
    fi
    sleep 0.2
  done
}

# Keep the previous run's log as LOG.1 so a restart does not erase the evidence.
rotate_log() { if [[ -f $1 ]]; then mv -f -- "$1" "$1.1"; fi; }
