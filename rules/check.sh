#!/usr/bin/env bash
# Checks the Prometheus rules with promtool: syntax, PromQL and promtool's linter (`check rules
# --lint=all --lint-fatal`), then the unit tests in rules/tests (`test rules`). Cloudflare's pint
# is the stricter linter; it does not install from the Go module proxy, so it is run by hand
# (README.md, "Checking rules and dashboards", says how) rather than here. Exits non-zero on the first failure. promtool comes with
# Debian's `prometheus` package (apt-get install prometheus).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
	echo "rules/check.sh: promtool not found; install it with: apt-get install prometheus" >&2
	exit 1
fi

run() {
	echo "+ (cd rules && $*)"
	"$@"
}

run promtool check rules --lint=all --lint-fatal ./*.rules.yml
run promtool test rules tests/*.yml
