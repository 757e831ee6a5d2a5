#!/usr/bin/env bash
# Makes sure what the tests need is here: PostgreSQL and Redis running on 127.0.0.1 (5432, 6379),
# started when installed but stopped, installed with apt-get (as root) when missing; Debian's Chromium
# (browser test) and Prometheus (promtool, scrape test) installed when missing.
# Override the targets with TEST_DATABASE_URL / TEST_REDIS_URL to use servers of your own.
set -euo pipefail

log() { echo "ensure-services: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else log "need root for: $*"; return 1; fi; }
apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then log "apt-get not found: install $* yourself"; return 1; fi
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_ok() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if [ -z "${TEST_REDIS_URL:-}" ] && ! redis_ok; then
  command -v redis-server >/dev/null || { log "installing redis-server"; apt_install redis-server; }
  log "starting redis-server on 6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --maxmemory-policy noeviction >/dev/null
  for _ in $(seq 50); do redis_ok && break; sleep 0.1; done
  redis_ok || { log "redis did not start"; exit 1; }
fi
# The fault tests run private redis-server processes on their own ports; the cluster tests join them with
# redis-cli --cluster create, and the sentinel tests run redis-server --sentinel (no redis-sentinel binary needed).
command -v redis-server >/dev/null || { log "installing redis-server (fault tests)"; apt_install redis-server; }
command -v redis-cli >/dev/null || { log "installing redis-tools (cluster tests)"; apt_install redis-tools; }

pg_ok() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if [ -z "${TEST_DATABASE_URL:-}" ] && ! pg_ok; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then log "installing postgresql"; apt_install postgresql; fi
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  [ -d "/etc/postgresql/$ver/main" ] || as_root pg_createcluster "$ver" main >/dev/null
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 100); do pg_ok && break; sleep 0.1; done
  pg_ok || { log "PostgreSQL did not start"; exit 1; }
  # A fresh cluster asks for a password over TCP: give postgres the one the tests use by default.
  as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
fi
# The browser test drives Debian's Chromium; the deployment test runs promtool and Prometheus.
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || { log "installing chromium (browser test)"; apt_install chromium; }
command -v promtool >/dev/null || { log "installing prometheus (alert rules and scrape test)"; apt_install prometheus; }
log "PostgreSQL, Redis, Chromium and Prometheus are ready"
