#!/usr/bin/env bash
# The workspace's layering, checked on the dependency graph (run by ./scripts/test.sh):
# `catering-sync-core` (crates/core) stays pure — none of the IO crates below may appear anywhere
# in its normal dependency tree; `catering-sync-sandbox` (crates/sandbox) builds on the core and
# its own crypto only — never the service, nor the service's Kafka, HTTP client, signing or CLI;
# `catering-sync-service` (crates/service), what runs in production, never reaches the tools —
# the sandbox, the command line, the demo's and the benchmarks' crates.
set -euo pipefail
cd "$(dirname "$0")/.."

# tree CRATE: the crate's normal dependencies, one "name version" per line, de-duplicated.
tree() { cargo tree --locked -p "$1" -e normal --prefix none | sed "s/ (\*)$//" | sort -u; }

# forbid CRATE DEPS PATTERN WHY: fail when a dependency of CRATE matches PATTERN.
forbid() {
  local bad
  if bad="$(grep -E "$3" <<<"$2")"; then
    echo "$1 $4, but its dependency tree has:" >&2
    echo "$bad" >&2
    exit 1
  fi
}

# (Not libc: sha2's cpufeatures uses it on aarch64 to read CPU features, which is not IO.)
core="$(tree catering-sync-core)"
forbid catering-sync-core "$core" \
  '^(tokio|rdkafka|rdkafka-sys|reqwest|hyper|hyper-util|ring|rsa|prometheus|tracing|clap|mio|socket2) ' \
  "must stay pure (no IO crates)"
# Nor its own code: no file system, network, processes, environment or clock.
if bad="$(grep -rnE 'std::(fs|net|process|env)\b|SystemTime|Instant::now|thread::sleep' crates/core/src)"; then
  echo "catering-sync-core must stay pure (no IO), but its code has:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "layers ok: catering-sync-core has $(wc -l <<<"$core") crates in its tree, none of them IO; its code reads no file, socket, process, environment or clock"

# The sandbox: the core and its own crypto, never the service or what only the service uses.
sandbox="$(tree catering-sync-sandbox)"
forbid catering-sync-sandbox "$sandbox" \
  '^(catering-sync|catering-sync-service|rdkafka|rdkafka-sys|reqwest|ring|prometheus|clap|mimalloc) ' \
  "may depend on the core only"
grep -qE '^catering-sync-core ' <<<"$sandbox" || { echo "catering-sync-sandbox no longer uses the core's rules" >&2; exit 1; }
echo "layers ok: catering-sync-sandbox has $(wc -l <<<"$sandbox") crates in its tree: the core, none of the service's"

# The service: what `run` needs, none of the tools.
service="$(tree catering-sync-service)"
forbid catering-sync-service "$service" \
  '^(catering-sync|catering-sync-sandbox|clap|clap_builder|indicatif|tempfile|mimalloc|tracing-subscriber) ' \
  "must not depend on the tools (sandbox, command line, demo, benchmarks)"
grep -qE '^catering-sync-core ' <<<"$service" || { echo "catering-sync-service no longer uses the core" >&2; exit 1; }
echo "layers ok: catering-sync-service has $(wc -l <<<"$service") crates in its tree: the core, no sandbox, command line or tool"
