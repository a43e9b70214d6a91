#!/usr/bin/env bash
# The Kubernetes packaging, checked without a cluster (run by ./scripts/test.sh): the copies under
# deploy/k8s match their sources; kustomize builds the base, each component (on the base: a
# component cannot be built alone) and every overlay; every object of those builds and of the
# example Secret validates against the Kubernetes schemas of the oldest and newest versions we
# support (strict: unknown fields are errors); the custom resources (and the Strimzi examples)
# validate against their vendored CRD schemas, unknown fields rejected; the base holds only core
# kinds, so it applies on a cluster without KEDA or the Prometheus Operator.
# Needs kubectl (its built-in kustomize, v4 or later), python3 with kubernetes-validate and
# jsonschema (scripts/test.sh installs them). No network, no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

# The Kubernetes versions validated against: the oldest the manifests support (the PDB's
# unhealthyPodEvictionPolicy is GA from 1.27 on), one in the middle, the newest schema known.
K8S_VERSIONS=(1.27.0 1.30.0 1.37.0)

fail() { echo "check-deploy: $*" >&2; exit 1; }

command -v kubectl >/dev/null 2>&1 \
  || fail "kubectl not found: install kubectl >= 1.21 (scripts/test.sh tries Debian's kubernetes-client)"
kustomize_version="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}//p')"
case "$kustomize_version" in
  [4-9].*) ;;
  *) fail "kubectl's kustomize is '${kustomize_version:-missing}'; components need kustomize v4+ (kubectl >= 1.21): install a newer kubectl" ;;
esac
python3 -c "import kubernetes_validate, jsonschema, yaml" 2>/dev/null \
  || fail "python3 -m pip install kubernetes-validate==1.37.0 jsonschema (scripts/test.sh does)"

echo "==> deploy: copies are in sync"
./scripts/sync-deploy.sh --check

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# build NAME DIR: kubectl kustomize DIR > $work/NAME.yaml
builds=()
build() {
  kubectl kustomize "$2" >"$work/$1.yaml" || fail "kubectl kustomize $2 failed"
  grep -q '^kind:' "$work/$1.yaml" || fail "kubectl kustomize $2 rendered no object"
  builds+=("$work/$1.yaml")
  echo "    built $1 ($(grep -c '^kind:' "$work/$1.yaml") objects)"
}

echo "==> deploy: kubectl kustomize (kustomize v$kustomize_version)"
build base deploy/k8s/base
# The base: core kinds only (v1, apps/v1, policy/v1): no CRD needed to apply it.
if other="$(grep '^apiVersion:' "$work/base.yaml" | sort -u | grep -vE '^apiVersion: (v1|apps/v1|policy/v1)$')"; then
  fail "deploy/k8s/base renders a kind that is not core Kubernetes: $other"
fi
for component in deploy/k8s/components/*/; do
  name="$(basename "$component")"
  dir="$work/component-$name"
  mkdir -p "$dir"
  # kustomize takes only relative paths to other kustomizations.
  cat >"$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$dir" "$root/deploy/k8s/base")
components:
  - $(realpath --relative-to="$dir" "$root/$component")
EOF
  build "component-$name" "$work/component-$name"
done
for overlay in deploy/k8s/overlays/*/; do
  build "overlay-$(basename "$overlay")" "$overlay"
done

echo "==> deploy: kubernetes-validate --strict against ${K8S_VERSIONS[*]}"
versions=()
for v in "${K8S_VERSIONS[@]}"; do versions+=(-k "$v"); done
validated="$work/kubernetes-validate.out"
status=0
python3 -m kubernetes_validate --strict --quiet "${versions[@]}" "${builds[@]}" deploy/k8s/secret.example.yaml \
  >"$validated" 2>&1 || status=$?
# kubernetes-validate only warns for a kind it has no schema for: that is fine for the custom
# resources (checked below), an error for anything else (a misspelt kind or apiVersion).
unknown="$(grep '^WARN' "$validated" \
  | grep -vE 'kind (ScaledObject|TriggerAuthentication) with api version keda\.sh/v1alpha1 |kind (PodMonitor|PrometheusRule) with api version monitoring\.coreos\.com/v1 ' || true)"
if [ "$status" -ne 0 ] || [ -n "$unknown" ]; then
  grep -vE '^INFO' "$validated" >&2 || true
  fail "kubernetes-validate failed"
fi
echo "    $(grep -c '^WARN' "$validated" || true) custom-resource warnings (checked next), no errors"

echo "==> deploy: custom resources against deploy/k8s/crds"
python3 scripts/check_crds.py deploy/k8s/crds "${builds[@]}" deploy/examples/strimzi/*.yaml >"$work/crds.out" \
  || { grep -v '^OK' "$work/crds.out" >&2; fail "CRD validation failed"; }
tail -n 1 "$work/crds.out"
