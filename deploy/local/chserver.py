#!/usr/bin/env python3
"""Serve the ClickHouse engine shipped in the `chdb-core` wheel over ClickHouse's own
HTTP and native TCP interfaces, until SIGTERM/SIGINT.

Why it looks like this (see shared/INFRA.md):
- Only the one-shot `chdb._chdb.query(sql, fmt, path=...)` runs a full clickhouse-local
  LocalServer in which `SYSTEM START LISTEN HTTP/TCP` works; the listeners live only while
  that one query runs. So the query ends with a read from a FIFO that blocks until we
  write a line into it on shutdown; then the engine stops the listeners and detaches
  tables cleanly.
- Ports and listen host come from ./config.xml (and users from ./users.xml) in the
  process's working directory, so we chdir into the instance directory first.
- `_chdb.query` does not raise on engine errors (port in use, data dir locked): they only
  go to stderr. Hence: check the ports are free first, wait for `GET /ping` -> `Ok.`, and
  treat an engine thread that ends before we asked it to as a failure.

Usage: chserver.py --dir INSTANCE_DIR --http-port N --tcp-port N [--ready-timeout S]
INSTANCE_DIR must hold config.xml and users.xml; table data goes to INSTANCE_DIR/data.
Exit codes: 0 clean stop, 1 engine failed or never became ready, 2 a port is taken.
"""

import argparse
import errno
import os
import signal
import socket
import sys
import threading
import time
import urllib.request


def log(msg):
    print(f"chserver[{os.getpid()}]: {msg}", flush=True)


def port_in_use(port):
    """True if something already listens on 127.0.0.1:port (or holds it bound)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Same option ClickHouse uses, so a port in TIME_WAIT is not reported as taken.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


# Never route loopback checks through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ping(port):
    try:
        with _OPENER.open(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
            return r.status == 200 and r.read().strip() == b"Ok."
    except OSError:
        return False


def sql_quote(s):
    return s.replace("\\", "\\\\").replace("'", "\\'")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--tcp-port", type=int, required=True)
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    args = ap.parse_args()

    inst = os.path.abspath(args.dir)
    data = os.path.join(inst, "data")
    fifo = os.path.join(inst, "stop.fifo")
    for f in ("config.xml", "users.xml"):
        if not os.path.isfile(os.path.join(inst, f)):
            log(f"missing {inst}/{f}")
            return 1

    taken = [p for p in (args.http_port, args.tcp_port) if port_in_use(p)]
    if taken:
        log(f"port(s) already in use on 127.0.0.1: {taken}; refusing to start")
        return 2

    os.makedirs(data, exist_ok=True)
    # A stale FIFO from a killed run is harmless, but start from a fresh one.
    if os.path.lexists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo, 0o600)

    # ./config.xml and ./users.xml are read from the working directory.
    os.chdir(inst)
    # Importing chdb runs a throw-away in-memory query; do it after chdir so the engine
    # never sees another directory's config.xml.
    from chdb import _chdb  # noqa: E402  (needs the venv with chdb-core)

    sql = (
        "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
        f"SELECT count() FROM file('{sql_quote(fifo)}', 'LineAsString', 'l String')"
    )
    stop_requested = threading.Event()
    stop_delivered = threading.Event()
    outcome = {}
    stop_at = []

    def engine():
        try:
            # TabSeparated becomes the HTTP default output format, as on a real server.
            res = _chdb.query(sql, "TabSeparated", path=data)
            outcome["result"] = res.bytes().decode(errors="replace").strip()
        except Exception as e:  # the binding may raise for some errors; never hide it
            outcome["exception"] = repr(e)

    def deliver_stop():
        """Write one line into the FIFO so the blocking read (and the query) ends.
        O_NONBLOCK: if the engine has not opened the FIFO yet we get ENXIO instead of
        hanging; the caller retries."""
        if stop_delivered.is_set():
            return
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            raise
        try:
            os.write(fd, b"stop\n")
        finally:
            os.close(fd)
        stop_delivered.set()

    def on_signal(signum, _frame):
        if not stop_requested.is_set():
            log(f"signal {signum}: stopping engine")
            stop_at.append(time.monotonic())
            stop_requested.set()
        deliver_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=engine, name="clickhouse-engine", daemon=True)
    started = time.monotonic()
    t.start()

    # Readiness: the engine answers GET /ping; fail fast if the engine thread ends.
    deadline = started + args.ready_timeout
    while not stop_requested.is_set():
        if not t.is_alive():
            log(f"engine ended before becoming ready: {outcome or 'see stderr above'}")
            return 1
        if ping(args.http_port):
            log(
                f"ready: http 127.0.0.1:{args.http_port}, tcp 127.0.0.1:{args.tcp_port} "
                f"in {time.monotonic() - started:.1f}s"
            )
            break
        if time.monotonic() > deadline:
            log(f"not ready after {args.ready_timeout:.0f}s; giving up")
            # The engine thread is stuck in native code; it cannot be ended cleanly.
            os._exit(1)
        time.sleep(0.05)

    # Serve until a signal arrives (or the engine dies on its own).
    while t.is_alive() and not stop_requested.is_set():
        t.join(0.5)
    if not stop_requested.is_set():
        log(f"engine ended unexpectedly: {outcome or 'see stderr above'}")
        return 1

    # The handler may have run before the engine opened the FIFO: keep trying.
    stop_deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < stop_deadline:
        deliver_stop()
        t.join(0.1)
    if t.is_alive():
        log("engine did not stop within 60s")
        os._exit(1)
    log(f"stopped cleanly in {time.monotonic() - stop_at[0]:.1f}s")
    try:
        os.unlink(fifo)
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: tables were detached when the query ended, and the
    # engine's global destructors have nothing left to flush.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
