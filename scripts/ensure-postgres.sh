#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust authentication and a
# database `test` (the storage and end-to-end tests use it): starts the local cluster when it is
# installed but stopped, installs Debian's postgresql when missing. Prints `ready` or
# `unavailable` on stdout; never fails the caller by itself.
set -uo pipefail
url=postgres://postgres@127.0.0.1:5432/test

ready() { psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1; }

if ready; then echo ready; exit 0; fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "ensure-postgres.sh: installing postgresql" >&2
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >&2 || true
fi

if command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$version" ]; then
    conf=/etc/postgresql/$version/main
    # Trust authentication on loopback, for the tests only (this is a test machine).
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf" 2>/dev/null; then
      sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf/pg_hba.conf"
    fi
    grep -q "^listen_addresses" "$conf/postgresql.conf" || echo "listen_addresses = 'localhost'" >> "$conf/postgresql.conf"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>&1 ||
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2 2>&1 || true
    for _ in $(seq 1 30); do
      psql postgres://postgres@127.0.0.1:5432/postgres -qAtc 'SELECT 1' >/dev/null 2>&1 && break
      sleep 1
    done
    psql postgres://postgres@127.0.0.1:5432/postgres -qAtc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 ||
      psql postgres://postgres@127.0.0.1:5432/postgres -qAtc 'CREATE DATABASE test' >&2 2>&1 || true
  fi
fi

if ready; then echo ready; else echo unavailable; fi
