#!/usr/bin/env bash
# Benchmark of `teleavis directory import` on a national-size file (DESIGN.md: at most 10 s and
# 100 MB of RSS on the 2-core machine, SQLite and PostgreSQL). Prints its figures and a verdict;
# asserts nothing in a test (timings on a shared machine are noisy).
#   scripts/bench-directory.sh [LINES]        (default 535928, the real file's size)
#   BIN=target/release/teleavis               the binary (built with --release when absent)
#   PG_URL=postgres://postgres@127.0.0.1:5432 PostgreSQL server (skipped when unreachable)
#   ONLY=sqlite|postgres                      one backend only
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
lines=${1:-535928}
BIN=${BIN:-$root/target/release/teleavis}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
MAX_SECONDS=10
MAX_RSS_MB=100
work=$(mktemp -d /tmp/teleavis-bench-dir.XXXXXX)
pgdb=""
cleanup() {
  if [ -n "$pgdb" ]; then psql -q "$PG_URL/test" -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$BIN" ] || cargo build --release --quiet
certs/make-test-pki.sh "$work/pki" >/dev/null
python3 ../shared/directory/make-large.py "$work/Extraction_Correspondance_MSSante_large.txt" "$lines"
( cd "$work" && python3 -c "import zipfile,sys; z=zipfile.ZipFile('large.zip','w',zipfile.ZIP_DEFLATED); z.write('Extraction_Correspondance_MSSante_large.txt'); z.close()" )
printf 'file: %s lines, %s MB (%s MB zipped)\n' "$lines" \
  "$(( $(stat -c %s "$work/Extraction_Correspondance_MSSante_large.txt") / 1000000 ))" \
  "$(( $(stat -c %s "$work/large.zip") / 1000000 ))"

config() { # $1 = database URL
  sed -e "s|@DATABASE_URL@|$1|" -e "s|@DIR@|$work|g" -e "s|@PKI@|$work/pki|g" \
      -e "s|@IMAPS_PORT@|993|" -e "s|@SUBMISSION_PORT@|587|" -e "s|@CIPHER@|aes-256-gcm|" \
      config/dev.toml.in > "$work/teleavis.toml"
  (umask 077; echo x > "$work/imap.password"; echo x > "$work/smtp.password")
}

verdict=0
run() { # $1 = label, $2 = file
  local out
  out=$( { /usr/bin/time -f 'RSS_KB %M ELAPSED %e' "$BIN" --config "$work/teleavis.toml" directory import "$2"; } 2>&1 ) || {
    echo "$1: FAILED"; echo "$out"; verdict=1; return; }
  local rss secs
  rss=$(awk '/RSS_KB/ {print int($2/1024)}' <<<"$out")
  secs=$(awk '/RSS_KB/ {print $4}' <<<"$out")
  local ok=ok
  if awk -v s="$secs" -v m="$MAX_SECONDS" 'BEGIN{exit !(s>m)}' || [ "$rss" -gt "$MAX_RSS_MB" ]; then ok=OVER; verdict=1; fi
  printf '%-28s %6.1f s  %4d MB peak RSS  [%s]   %s\n' "$1" "$secs" "$rss" "$ok" \
    "$(grep -v RSS_KB <<<"$out" | sed 's/.*: //')"
}

command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
echo "targets: <= ${MAX_SECONDS} s, <= ${MAX_RSS_MB} MB peak RSS"
if [ "${ONLY:-}" != postgres ]; then
  config "sqlite://$work/bench.db"
  "$BIN" --config "$work/teleavis.toml" migrate >/dev/null
  run "SQLite, .txt (first)" "$work/Extraction_Correspondance_MSSante_large.txt"
  run "SQLite, .txt (replace)" "$work/Extraction_Correspondance_MSSante_large.txt"
  run "SQLite, .zip (replace)" "$work/large.zip"
fi

if [ "${ONLY:-}" = sqlite ]; then
  :
elif psql -q "$PG_URL/test" -c "SELECT 1" >/dev/null 2>&1; then
  pgdb=teleavis_bench_$$
  psql -q "$PG_URL/test" -c "CREATE DATABASE $pgdb" >/dev/null
  config "$PG_URL/$pgdb"
  "$BIN" --config "$work/teleavis.toml" migrate >/dev/null
  run "PostgreSQL, .txt (first)" "$work/Extraction_Correspondance_MSSante_large.txt"
  run "PostgreSQL, .txt (replace)" "$work/Extraction_Correspondance_MSSante_large.txt"
  run "PostgreSQL, .zip (replace)" "$work/large.zip"
else
  echo "PostgreSQL: not reachable at $PG_URL, skipped"
fi
[ "$verdict" -eq 0 ] && echo "verdict: within targets" || echo "verdict: OVER TARGET"
exit "$verdict"
