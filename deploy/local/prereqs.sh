#!/usr/bin/env bash
# Installs, once, what building and testing need beyond the machine's toolchains (Rust, Java,
# Python, Node are present on our machines): Debian packages for the C build of librdkafka
# (with OpenSSL),
# kcat (the independent Kafka client the tests use), and Chromium for the browser test.
# Idempotent: does nothing when everything is there.
set -euo pipefail
COMPONENT=prereqs
# shellcheck source=deploy/local/lib.sh
source "$(dirname "$0")/lib.sh"

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
command -v java >/dev/null 2>&1 || die "java not found: install a JDK 17+ first"
command -v python3 >/dev/null 2>&1 || die "python3 not found"

missing=()
for pair in "kcat:kcat" "curl:curl" "make:make" "cc:gcc" "g++:g++" "pkg-config:pkg-config" "perl:perl" "mvn:maven"; do
  cmd=${pair%%:*} pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# librdkafka links the system OpenSSL (TLS and SASL_SSL/SCRAM to production brokers).
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
if [[ ${WITH_BROWSER:-1} == 1 ]]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi
say "ok"
