#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the test suite.
# Machines of this project start one before the session; a fresh Debian machine gets one.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
url="${CALLCENTER_TEST_PG_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres}"
plain="${url/postgresql+asyncpg:/postgresql:}"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package postgresql)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql
fi
if ! ready; then
  echo "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql); do
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
  else
    $SUDO service postgresql start || true
  fi
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
fi
ready || { echo "PostgreSQL does not answer on 127.0.0.1:5432; start it and run make test again" >&2; exit 1; }
if ! psql "$plain" -Atqc 'select 1' >/dev/null 2>&1; then
  # A stock Debian cluster asks for a password on TCP; give the tests' user the one in the URL,
  # or trust on loopback when the URL has none (a test-only machine).
  echo "letting the test user in over 127.0.0.1"
  hba=$($SUDO -u postgres psql -Atqc 'show hba_file' 2>/dev/null || su postgres -c "psql -Atqc 'show hba_file'")
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    ($SUDO -u postgres psql -Atqc 'select pg_reload_conf()' 2>/dev/null || su postgres -c "psql -Atqc 'select pg_reload_conf()'") >/dev/null
  fi
fi
psql "$plain" -Atqc 'select 1' >/dev/null
echo "PostgreSQL is ready"
