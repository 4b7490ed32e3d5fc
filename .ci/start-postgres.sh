#!/usr/bin/env bash
# Install and start a local PostgreSQL for the audit-log test; prints the test URL.
# The server listens on 127.0.0.1 only. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'medpredict-test'\"" >&2
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname = 'medpredict_test'\"" \
  | grep -q 1 || su postgres -c "createdb medpredict_test" >&2
echo "postgresql+psycopg://postgres:medpredict-test@127.0.0.1/medpredict_test"
