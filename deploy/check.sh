#!/usr/bin/env bash
# Checks the deploy files with the real tools and exits non-zero on the first failure:
#   - amtool check-config on alertmanager.yml and alertmanager-ha.yml, and their routing for the
#     ZMY and responder alerts;
#   - promtool check config on prometheus.yml (which checks the rule files it loads too);
#   - the Kubernetes PrometheusRule is what `go run ./deploy/kubernetes/gen` generates;
#   - a CGO_ENABLED=0 build of the responder is a static ELF (what the Dockerfile ships);
#   - when installed: systemd-analyze verify on the unit, kubectl kustomize on kubernetes/ and
#     kubernetes-ha/.
# amtool and promtool come with Debian's prometheus-alertmanager and prometheus packages.
set -euo pipefail
deploy="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$deploy")"
cd "$deploy"

run() {
	echo "+ $*"
	"$@"
}

need() {
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "deploy/check.sh: $1 not found; install it with: apt-get install $2" >&2
		exit 1
	fi
}

need amtool prometheus-alertmanager
need promtool prometheus

for am in alertmanager.yml alertmanager-ha.yml; do
	run amtool check-config "$am"
	# Alertmanager's own routing for what the rules produce.
	run amtool config routes test --config.file="$am" --verify.receivers=zmy-responder,oncall \
		alertname=ZMY_Quorum_Down job=zmy cluster=c1 2>/dev/null
	run amtool config routes test --config.file="$am" --verify.receivers=oncall \
		alertname=ZMY_Leader_Conflict job=zmy cluster=c1 2>/dev/null
	run amtool config routes test --config.file="$am" --verify.receivers=oncall \
		alertname=ZMYResponderDown job=zmy-responder 2>/dev/null
done

run promtool check config prometheus.yml

echo "+ (cd $root && go run ./deploy/kubernetes/gen -o -) | diff - kubernetes/prometheusrule.yaml"
if ! (cd "$root" && go run ./deploy/kubernetes/gen -o -) | diff -u kubernetes/prometheusrule.yaml -; then
	echo "deploy/check.sh: kubernetes/prometheusrule.yaml is stale: run go run ./deploy/kubernetes/gen" >&2
	exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "+ (cd $root && CGO_ENABLED=0 go build -trimpath -o $tmp/ ./cmd/zmy-responder)"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/" ./cmd/zmy-responder)
# A static executable has no program interpreter (PT_INTERP).
if ! command -v readelf >/dev/null 2>&1; then
	echo "readelf not found (binutils): built, linkage not checked"
elif LC_ALL=C readelf -l "$tmp/zmy-responder" | grep -q 'INTERP'; then
	echo "deploy/check.sh: CGO_ENABLED=0 build of zmy-responder is dynamically linked" >&2
	exit 1
else
	echo "  static: no program interpreter"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s#/usr/local/bin/zmy-responder#/bin/true#" zmy-responder.service >"$tmp/zmy-responder.service"
	echo "+ systemd-analyze verify zmy-responder.service"
	out="$(systemd-analyze verify "$tmp/zmy-responder.service" 2>&1)"
	if [ -n "$out" ]; then
		echo "$out" >&2
		exit 1
	fi
else
	echo "systemd-analyze not found: unit not verified"
fi

if command -v kubectl >/dev/null 2>&1; then
	for k in kubernetes kubernetes-ha; do
		echo "+ kubectl kustomize $k >/dev/null"
		kubectl kustomize "$k" >/dev/null
	done
else
	echo "kubectl not found: kustomization not rendered"
fi
echo "deploy/check.sh: OK"
