#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "==> tests"
cargo test --all-targets --locked
