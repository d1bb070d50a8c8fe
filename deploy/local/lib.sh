# shellcheck shell=bash
# Helpers shared by the scripts of deploy/local (engines, services, tests). Sourced, not run.
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

# port_free_soon PORT: true once nothing listens on PORT, waiting up to 10 s — a process
# that was just killed (kill-node, a crash) closes its sockets only when its last thread is
# gone, a moment after it became a zombie.
port_free_soon() {
  local i
  for ((i = 0; i < 100; i++)); do
    port_busy "$1" || return 0
    sleep 0.1
  done
  return 1
}

# Who listens on PORT, for error messages (ss may be absent on a minimal machine).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
  fi
}

# --- Processes we started, and only those ---------------------------------------------------
# A pid file alone does not say that its process is still ours: after a crash or a reboot the
# pid may name any other process (pids wrap quickly). So a pid file records the identity of
# what we started, and nothing is signalled unless the live process still has it:
#   line 1: pid
#   line 2: start time (clock ticks after boot, /proc/PID/stat field 22: with the pid it
#           names one process for the machine's uptime; exec keeps it)
#   line 3: marker, a string the process's command line contains (the binary for a service,
#           the instance's own config path for an engine)
# A pid file that names another process is stale: it is removed, and its pid left alone.
# Every script of deploy/local that stops something goes through `owned_pid` and `terminate`.

# proc_field PID N: field N (N >= 3) of /proc/PID/stat. Field 2 (the name) may contain
# spaces and parentheses, so fields are counted after its closing parenthesis.
proc_field() {
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat=${stat##*) }
  local -a fields
  read -ra fields <<<"$stat"
  [[ -n ${fields[$(($2 - 3))]:-} ]] || return 1
  printf '%s' "${fields[$(($2 - 3))]}"
}

# proc_start PID: the process's start time (field 22); fails if there is no such process.
proc_start() { proc_field "$1" 22; }

# same_process PID START: the process PID exists, is not a zombie, and started at START.
same_process() {
  local now state
  now=$(proc_start "$1") || return 1
  [[ $now == "$2" ]] || return 1
  state=$(proc_field "$1" 3) || return 1
  [[ $state != Z ]]
}

# record_pid PIDFILE PID MARKER: writes the pid file of a process we just started (call it
# right after `cmd &`: the start time is the fork's and survives the exec).
record_pid() {
  local pidfile=$1 pid=$2 marker=$3 start
  start=$(proc_start "$pid") || return 1
  printf '%s\n%s\n%s\n' "$pid" "$start" "$marker" >"$pidfile.tmp.$$"
  mv -f -- "$pidfile.tmp.$$" "$pidfile"
}

# pidfile_pid PIDFILE: the pid named by a pid file (for messages), or nothing.
pidfile_pid() {
  local pid=""
  [[ -s $1 ]] && IFS= read -r pid <"$1"
  printf '%s' "$pid"
}

# owned_pid PIDFILE [MARKER]: print the pid and succeed only if the pid file names a live,
# non-zombie process that is the one we started: same start time as recorded, and a command
# line containing the marker (MARKER if given — it must then equal the recorded one —, else
# the recorded marker). A pid file of an older version (pid only, no start time) is accepted
# only with a MARKER naming this instance (the engines' instance paths); otherwise nothing.
owned_pid() {
  local pidfile=$1 expected=${2:-} pid="" start="" marker="" cmdline
  [[ -s $pidfile ]] || return 1
  { IFS= read -r pid && IFS= read -r start && IFS= read -r marker; } <"$pidfile" || true
  [[ $pid =~ ^[1-9][0-9]*$ ]] || return 1
  if [[ -n $expected ]]; then
    [[ -z $marker || $marker == "$expected" ]] || return 1
    marker=$expected
  fi
  [[ -n $marker ]] || return 1
  if [[ -n $start ]]; then
    same_process "$pid" "$start" || return 1
  else
    start=$(proc_start "$pid") || return 1
    same_process "$pid" "$start" || return 1
  fi
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$marker"* ]] || return 1
  printf '%s' "$pid"
}

# forget_stale PIDFILE [MARKER]: remove a pid file that does not name our process, saying so
# when it named some other live process (which is left alone).
forget_stale() {
  local pid
  owned_pid "$1" "${2:-}" >/dev/null && return 1
  pid=$(pidfile_pid "$1")
  if [[ $pid =~ ^[1-9][0-9]*$ && -e /proc/$pid ]]; then
    warn "stale pid file $1: pid $pid is not the process we started; not signalled"
  fi
  rm -f -- "$1"
}

# confirm_started PIDFILE MARKER: the background job needs a moment to exec the real
# command; poll (up to 10 s) until the recorded process's command line is ours, fail if the
# process exits first.
confirm_started() {
  local pidfile=$1 marker=$2 pid start i
  { IFS= read -r pid && IFS= read -r start; } <"$pidfile" || true
  for ((i = 0; i < 200; i++)); do
    owned_pid "$pidfile" "$marker" >/dev/null && return 0
    same_process "$pid" "$start" || return 1
    sleep 0.05
  done
  return 1
}

# await_exit PID START DEADLINE: wait while PID is still the process that started at START;
# past DEADLINE (an $EPOCHREALTIME value) SIGKILL it — only while it still is that process.
await_exit() {
  local pid=$1 start=$2 deadline=$3
  while same_process "$pid" "$start"; do
    if awk -v d="$deadline" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b > d) }'; then
      warn "pid $pid still alive after its grace period; sending SIGKILL"
      same_process "$pid" "$start" && kill -KILL "$pid" 2>/dev/null
      while same_process "$pid" "$start"; do sleep 0.1; done
      return 0
    fi
    sleep 0.1
  done
}

# deadline_in SECONDS: the $EPOCHREALTIME value SECONDS from now.
deadline_in() { awk -v b="$EPOCHREALTIME" -v g="$1" 'BEGIN { printf "%.3f", b + g }'; }

# stop_identity PID START GRACE_SECONDS: SIGTERM, wait, then SIGKILL — each signal only while
# PID still is the process that started at START, so a pid recycled meanwhile is never hit.
stop_identity() {
  same_process "$1" "$2" && kill -TERM "$1" 2>/dev/null
  await_exit "$1" "$2" "$(deadline_in "$3")"
}

# terminate PIDFILE GRACE_SECONDS [MARKER]: stop the process the pid file names if it is ours
# (owned_pid), with stop_identity. The pid file is removed either way. Prints the pid it
# stopped; fails when nothing of ours was running.
terminate() {
  local pidfile=$1 grace=$2 marker=${3:-} pid start
  if ! pid=$(owned_pid "$pidfile" "$marker"); then
    forget_stale "$pidfile" "$marker" || true
    return 1
  fi
  if start=$(proc_start "$pid"); then
    stop_identity "$pid" "$start" "$grace"
  fi
  rm -f -- "$pidfile"
  printf '%s' "$pid"
}

# terminate_all GRACE_SECONDS PIDFILE...: terminate for several pid files (each with its
# recorded marker) at once: every process of ours gets SIGTERM first, so they shut down in
# parallel, then each is awaited (SIGKILL after the grace). Stale pid files are removed.
terminate_all() {
  local grace=$1 pidfile pid start deadline i
  shift
  local -a pids=() starts=()
  for pidfile in "$@"; do
    if pid=$(owned_pid "$pidfile") && start=$(proc_start "$pid"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      starts+=("$start")
      rm -f -- "$pidfile"
    else
      forget_stale "$pidfile" || true
    fi
  done
  deadline=$(deadline_in "$grace")
  for i in "${!pids[@]}"; do
    await_exit "${pids[$i]}" "${starts[$i]}" "$deadline"
  done
}

# kill_now PIDFILE [MARKER]: SIGKILL the process the pid file names — a crash, for tests and
# chaos — if it is ours (owned_pid), and wait until it is gone. Prints the pid; fails when
# nothing of ours was running. The pid file is removed either way.
kill_now() {
  local pidfile=$1 marker=${2:-} pid start
  if ! pid=$(owned_pid "$pidfile" "$marker") || ! start=$(proc_start "$pid"); then
    forget_stale "$pidfile" "$marker" || true
    return 1
  fi
  kill -KILL "$pid" 2>/dev/null || true
  while same_process "$pid" "$start"; do sleep 0.05; done
  rm -f -- "$pidfile"
  printf '%s' "$pid"
}

# stop_locked INST PIDFILE MARKER [KILL]: under the instance's lock, stop its process if it is
# ours — SIGTERM with a 30 s grace (terminate), or SIGKILL at once (kill_now: a crash, for
# tests and chaos). Says what it did.
stop_locked() {
  local inst=$1 pidfile=$2 marker=$3 mode=${4:-TERM} pid t0
  t0=$(now)
  [[ -d $inst ]] || { say "not running ($inst)"; return 0; }
  exec 9>"$inst/.lock"
  flock 9
  if [[ $mode == KILL ]]; then
    pid=$(kill_now "$pidfile" "$marker") && say "killed pid $pid (SIGKILL)"
  else
    pid=$(terminate "$pidfile" 30 "$marker") && say "stopped pid $pid in $(since "$t0")s"
  fi || say "not running ($inst)"
  exec 9>&-
}

# in_parallel FN N: runs `FN 1` … `FN N` as background jobs and waits for all; fails if any did.
in_parallel() {
  local fn=$1 count=$2 n rc=0 jobs=()
  for ((n = 1; n <= count; n++)); do
    "$fn" "$n" &
    jobs+=("$!")
  done
  for n in "${jobs[@]}"; do wait "$n" || rc=1; done
  return "$rc"
}

# abandon_launch PIDFILE: stop a process we launched a moment ago that never became ours in
# full (it did not exec the expected command, or never got ready): identified by the pid and
# start time recorded at launch alone.
abandon_launch() {
  local pid="" start=""
  { IFS= read -r pid && IFS= read -r start; } <"$1" || true
  if [[ $pid =~ ^[1-9][0-9]*$ && -n $start ]]; then
    stop_identity "$pid" "$start" 30
  fi
  rm -f -- "$1"
}

# log_tail FILE: the end of a service log, for failure messages.
log_tail() {
  [[ -f $1 ]] || return 0
  warn "last lines of $1:"
  tail -n "${2:-40}" -- "$1" | sed 's/^/    /' >&2
}

# wait_until CHECK_FN TIMEOUT PIDFILE MARKER LOGFILE: poll CHECK_FN (never a fixed sleep)
# until it succeeds; fail early if the pid file's process is no longer ours, or on timeout.
wait_until() {
  local check=$1 timeout=$2 pidfile=$3 marker=$4 logfile=$5 t0
  t0=$(now)
  while ! "$check"; do
    if [[ -s $pidfile ]] && ! owned_pid "$pidfile" "$marker" >/dev/null; then
      warn "process $(pidfile_pid "$pidfile") exited before becoming ready"
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
