#!/usr/bin/env python3
"""Measures verification throughput on release binaries: N events of one organization through
the gateway, sealed by the indexer; then times the gateway's verify of the range and an
offline audit-verify of the downloaded export + bundle. Usage: deploy/local/verify_bench.py N (release binaries built; a Kafka and a ClickHouse at
VERIFY_BENCH_KAFKA / VERIFY_BENCH_CLICKHOUSE, e.g. `make infra-up`)."""
import base64, hashlib, hmac, json, os, random, subprocess, sys, time, urllib.request, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = f"{ROOT}/target/release"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
NS = f"vb{random.randrange(1 << 24):06x}"
KAFKA = os.environ.get("VERIFY_BENCH_KAFKA", "127.0.0.1:39092")
CH = os.environ.get("VERIFY_BENCH_CLICKHOUSE", "http://127.0.0.1:38123")
GW, OPS, IX = 47311, 47312, 47313
ORG = "org_verify"

def env(prefix, port):
    e = dict(os.environ)
    for k, v in {
        "KAFKA__BROKERS": KAFKA, "TOPICS__EVENTS": f"{NS}.events", "TOPICS__DEAD_LETTER": f"{NS}.dlq",
        "TOPICS__SETTINGS": f"{NS}.settings", "TOPICS__FORWARDER_RETRY": f"{NS}.retry",
        "TOPICS__DIGESTS": f"{NS}.digests", "CLICKHOUSE__URL": CH, "CLICKHOUSE__DATABASE": NS,
        "HTTP__LISTEN": f"127.0.0.1:{port}", "INTEGRITY__WINDOW_SECS": "10",
    }.items():
        e[f"{prefix}__{k}"] = v
    e["RUST_LOG"] = "warn"
    return e

def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
def jwt():
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "u", "org_id": ORG, "role": "admin", "iat": now, "exp": now + 3600,
                           "iss": "https://identity.solarius.local", "aud": "audit-logs"}).encode())
    sig = hmac.new(b"dev-only-hs256-secret-change-me-0123456789", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"

def http(method, url, body=None, token=None, ctype="application/json"):
    req = urllib.request.Request(url, data=body, method=method)
    if token: req.add_header("Authorization", f"Bearer {token}")
    if body is not None: req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, r.read()

def wait(url):
    for _ in range(120):
        try:
            if http("GET", url)[0] == 200: return
        except Exception: pass
        time.sleep(0.5)
    raise SystemExit(f"not ready: {url}")

ix = subprocess.Popen([f"{BIN}/indexer", "--config", "config/indexer.toml"], cwd=ROOT, env=env("INDEXER", IX))
wait(f"http://127.0.0.1:{IX}/readyz")
genv = env("GATEWAY", GW); genv["GATEWAY__OPS__LISTEN"] = f"127.0.0.1:{OPS}"; genv["GATEWAY__INTEGRITY__WINDOW_SECS"] = "10"
gw = subprocess.Popen([f"{BIN}/gateway", "--config", "config/gateway.toml"], cwd=ROOT, env=genv)
try:
    wait(f"http://127.0.0.1:{OPS}/readyz")
    base = f"http://127.0.0.1:{GW}"
    _, key = http("POST", f"{base}/v1/admin/producer-keys", json.dumps({"name": "vb", "categories": ["*"]}).encode(), "dev-operator-token")
    key = json.loads(key)["api_key"]
    start = time.time()
    now = time.time()
    for batch in range(N // 1000):
        events = []
        for i in range(1000):
            n = batch * 1000 + i
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3600 + n * 3000 / N)) + ".000Z"
            events.append({"id": str(uuid.uuid4()), "org_id": ORG, "occurred_at": at, "category": "service",
                           "action": "resource.created", "outcome": "success",
                           "actor": {"type": "user", "id": f"u_{n % 500}", "email": f"u{n % 500}@example.com"},
                           "targets": [{"type": "resource", "id": f"r_{n}"}], "context": {"ip": "198.51.100.7"},
                           "metadata": {"n": str(n)}})
        http("POST", f"{base}/v1/events", json.dumps(events).encode(), key)
    print(f"published {N} events in {time.time() - start:.1f}s", flush=True)
    token = jwt()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7200))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600))
    rng = f"since={since}&until={until}"
    while True:
        t0 = time.time()
        _, body = http("GET", f"{base}/v1/orgs/{ORG}/integrity/verify?{rng}", token=token)
        took = time.time() - t0
        v = json.loads(body)
        print(f"verify: state={v['state']} events={v['events']} leaves={v['leaves']} windows={v['windows']} in {took:.2f}s", flush=True)
        if v["state"] == "intact" and v["events"] >= N:
            print(f"RESULT gateway verify: {v['events']} events in {took:.2f}s = {v['events'] / took:.0f} events/s", flush=True)
            break
        time.sleep(5)
    t0 = time.time(); _, export = http("GET", f"{base}/v1/orgs/{ORG}/events/export?format=ndjson&{rng}", token=token); t_export = time.time() - t0
    t0 = time.time(); _, bundle = http("GET", f"{base}/v1/orgs/{ORG}/integrity/bundle?{rng}", token=token); t_bundle = time.time() - t0
    _, keys = http("GET", f"{base}/v1/integrity/keys")
    d = f"/tmp/{NS}"; os.makedirs(d, exist_ok=True)
    for name, data in [("export.ndjson", export), ("bundle.json", bundle), ("keys.json", keys)]:
        open(f"{d}/{name}", "wb").write(data)
    t0 = time.time()
    out = subprocess.run([f"{BIN}/audit-verify", "--export", f"{d}/export.ndjson", "--bundle", f"{d}/bundle.json", "--keys", f"{d}/keys.json"], capture_output=True, text=True)
    t_verify = time.time() - t0
    print(out.stdout[-600:])
    print(f"RESULT offline: export {len(export) / 1e6:.0f} MB in {t_export:.1f}s, bundle {len(bundle) / 1e6:.0f} MB in {t_bundle:.1f}s, audit-verify exit {out.returncode} in {t_verify:.2f}s = {N / t_verify:.0f} events/s", flush=True)
finally:
    gw.terminate(); ix.terminate(); gw.wait(); ix.wait()
    http("POST", f"{CH}/", f"DROP DATABASE IF EXISTS {NS}".encode(), ctype="text/plain")
