#!/usr/bin/env bash
# Installs the peers Shipboard is measured against: Etsy's statsd (npm, into bench/.peers),
# carbon-cache (Debian's graphite-carbon), influxd (Debian's influxdb 1.6) and VictoriaMetrics
# (Debian's victoria-metrics: remote write, line protocol, queries, the million-series fleet).
# Idempotent; run as root. The Debian services are not started: the benchmarks run each peer
# in the foreground with a config of their own in a temporary directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
statsd_version="0.9.0"

need_apt=()
command -v influxd >/dev/null || need_apt+=(influxdb)
command -v carbon-cache >/dev/null || need_apt+=(graphite-carbon)
command -v victoria-metrics >/dev/null || need_apt+=(victoria-metrics)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v taskset >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
    # Keep the packages' own services from starting: the benchmarks run their own instances.
    policy=/usr/sbin/policy-rc.d
    had_policy=0
    [[ -e $policy ]] && had_policy=1
    if ((!had_policy)); then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
    fi
    trap '((had_policy)) || rm -f "$policy"' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [[ ! -f "$here/.peers/node_modules/statsd/stats.js" ]]; then
    mkdir -p "$here/.peers"
    npm install --silent --no-audit --no-fund --prefix "$here/.peers" "statsd@$statsd_version"
fi

echo "peers ready:"
echo "  statsd        $here/.peers/node_modules/statsd/stats.js ($(node --version))"
echo "  carbon-cache  $(command -v carbon-cache)"
echo "  influxd       $(command -v influxd) ($(influxd version 2>/dev/null | head -1))"
echo "  victoria-metrics $(command -v victoria-metrics) (Debian's $(dpkg-query -W -f='${Version}' victoria-metrics))"
