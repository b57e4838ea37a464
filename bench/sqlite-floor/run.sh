#!/usr/bin/env bash
# The SQLite floor of one request (README: "What a rewrite would buy"). Runs three requests
# through the real daemon (scripts/load.py, with sqlx's statement log on), takes the distinct
# statements from that log, and replays one request's statements 300 times with nothing
# around them (src/main.rs). Needs what scripts/load.py needs (root, Postfix, Dovecot).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

out=$(mktemp)
rc=0
RUST_LOG=info,sqlx::query=debug python3 scripts/load.py --requests 3 --keep | tee "$out" || rc=$?
work=$(sed -n 's/^load: work dir kept: //p' "$out")
rm -f "$out"
# The work dir goes, whatever happened to the run.
[ -n "$work" ] && trap 'rm -rf "$work"' EXIT
[ "$rc" -eq 0 ] || { echo "run.sh: scripts/load.py failed ($rc)" >&2; exit 1; }
[ -d "$work" ] || { echo "run.sh: load.py kept no work dir" >&2; exit 1; }

# The statements as the log prints them: `db.statement="…"`, a Rust Debug string.
python3 - "$work/teleavis.log" "$work/statements.json" <<'PY'
import json, re, sys
ansi = re.compile(r"\x1b\[[0-9;]*m")
field = re.compile(r'db\.statement="((?:[^"\\]|\\.)*)"')
escape = re.compile(r'\\(u\{[0-9a-fA-F]+\}|.)')
def unescape(s):
    def one(m):
        e = m.group(1)
        if e.startswith("u{"):
            return chr(int(e[2:-1], 16))
        return {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(e, e)
    return escape.sub(one, s)
seen = []
for line in open(sys.argv[1], encoding="utf-8"):
    m = field.search(ansi.sub("", line))
    if m:
        s = unescape(m.group(1)).strip()
        if s and s not in seen:
            seen.append(s)
json.dump(seen, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False, indent=1)
print(f"run.sh: {len(seen)} distinct statements in the daemon's log")
PY

cargo build --release --manifest-path "$here/Cargo.toml"
target="${CARGO_TARGET_DIR:-$here/target}"
"$target/release/teleavis-sqlite-floor" "$work/statements.json" migrations/sqlite \
  "$work/floor.db" 300
