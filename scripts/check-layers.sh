#!/usr/bin/env bash
# The workspace's layering, checked on the dependency graph (run by ./scripts/test.sh):
# `catering-sync-core` (crates/core) stays pure — none of the IO crates below may appear anywhere
# in its normal dependency tree; `catering-sync-sandbox` (crates/sandbox) builds on the core and
# its own crypto only — never the service, nor the service's Kafka, HTTP client, signing or CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

# (Not libc: sha2's cpufeatures uses it on aarch64 to read CPU features, which is not IO.)
io='^(tokio|rdkafka|rdkafka-sys|reqwest|hyper|hyper-util|ring|rsa|prometheus|tracing|clap|mio|socket2) '
deps="$(cargo tree --locked -p catering-sync-core -e normal --prefix none | sed "s/ (\*)$//" | sort -u)"
if bad="$(grep -E "$io" <<<"$deps")"; then
  echo "catering-sync-core must stay pure (no IO crates), but its dependency tree has:" >&2
  echo "$bad" >&2
  exit 1
fi
# Nor its own code: no file system, network, processes, environment or clock.
if bad="$(grep -rnE 'std::(fs|net|process|env)\b|SystemTime|Instant::now|thread::sleep' crates/core/src)"; then
  echo "catering-sync-core must stay pure (no IO), but its code has:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "layers ok: catering-sync-core has $(wc -l <<<"$deps") crates in its tree, none of them IO; its code reads no file, socket, process, environment or clock"

# The sandbox: the core and its own crypto, never the service or what only the service uses.
service='^(catering-sync|rdkafka|rdkafka-sys|reqwest|ring|prometheus|clap|mimalloc) '
sdeps="$(cargo tree --locked -p catering-sync-sandbox -e normal --prefix none | sed "s/ (\*)$//" | sort -u)"
if bad="$(grep -E "$service" <<<"$sdeps")"; then
  echo "catering-sync-sandbox may depend on the core only, but its dependency tree has:" >&2
  echo "$bad" >&2
  exit 1
fi
grep -qE '^catering-sync-core ' <<<"$sdeps" || { echo "catering-sync-sandbox no longer uses the core's rules" >&2; exit 1; }
echo "layers ok: catering-sync-sandbox has $(wc -l <<<"$sdeps") crates in its tree: the core, none of the service's"
