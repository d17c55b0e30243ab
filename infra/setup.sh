#!/usr/bin/env bash
# Installs what mimamori needs on a Debian machine and is not a Go module:
# clickhouse-server (the embedded analytics store and the tests' server) and
# kcat (the tests prove outside Kafka clients can read the embedded broker),
# chromium and a Japanese font (the portal's browser test), and nodejs (the
# unit tests of the portal's web app, run by node's own test runner).
# Safe to run again: it installs only what is missing. Needs root (or sudo).
set -euo pipefail
need=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
[ -x /usr/bin/chromium ] || need+=(chromium) # the portal's browser test (portal-api/web)
# A Japanese font (3.5 MB), so the browser test's screenshots of the
# Japanese portal show text rather than empty boxes.
[ -d /usr/share/fonts/opentype/ipafont-gothic ] || need+=(fonts-ipafont-gothic)
command -v node >/dev/null 2>&1 || need+=(nodejs) # node --test of portal-api/web/jstest; no npm packages
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "infra/setup.sh: installing ${need[*]} from Debian…" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
