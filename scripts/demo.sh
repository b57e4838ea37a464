#!/usr/bin/env bash
# The gateway end to end on its embedded defaults (README: "Quick start"): a test PKI made with
# openssl, a private Postfix + Dovecot on free loopback ports, SQLite, and `teleavis run`. The
# seed's first request travels through: the GP sends it signed and encrypted, the gateway
# acknowledges it and forwards it to the group, the expert answers with #clore, and the GP
# receives the answer and the compte-rendu (text + PDF).
#   DEMO_DIR=/tmp/teleavis-demo   where everything is written
#   DEMO_KEEP=1                   leave Postfix and Dovecot running afterwards; then
#                                 `teleavis --config config/dev.toml run` reads the same mailbox
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/teleavis-demo}
T="python3 $root/tests/support/mailtool.py"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ "$(id -u)" -eq 0 ] && scripts/install-test-deps.sh
say "Building teleavis"
cargo build --quiet
bin=${CARGO_TARGET_DIR:-$root/target}/debug/teleavis

if [ -f "$DEMO_DIR/mail/mailsys.json" ]; then
  python3 scripts/mailsys.py stop --dir "$DEMO_DIR/mail" >/dev/null 2>&1 || true
fi
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
pki=$DEMO_DIR/pki

say "Test PKI (openssl) in $pki"
certs/make-test-pki.sh "$pki"
# The group mailboxes and the admin have not written yet: their certificates are placed in
# recipients_dir, as an operator would. The GPs' certificates are learned from their mail.
# The expert on duty gets a notice before ever writing: their certificate is placed there too.
for u in infectio pneumo admin expert; do cp "$pki/users/$u.crt" "$pki/recipients/$u.pem"; done

say "Private Postfix + Dovecot on loopback"
python3 scripts/mailsys.py start --dir "$DEMO_DIR/mail" --pki "$pki" >"$DEMO_DIR/mailsys.json"
j() { python3 -c "import json,sys; print(json.load(open('$DEMO_DIR/mailsys.json'))['$1'])"; }
SMTP=$(j smtp_port); IMAPS=$(j imaps_port); SUB=$(j submission_port); PW=$(j password)
echo "SMTP $SMTP, submission $SUB, IMAPS $IMAPS"

daemon=
cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  if [ "${DEMO_KEEP:-0}" != 1 ]; then
    python3 "$root/scripts/mailsys.py" stop --dir "$DEMO_DIR/mail" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

umask 077
printf '%s\n' "$PW" > "$DEMO_DIR/imap.password"
printf '%s\n' "$PW" > "$DEMO_DIR/smtp.password"
umask 022
sed -e "s|@DATABASE_URL@|sqlite://$DEMO_DIR/teleavis.db|" -e "s|@DIR@|$DEMO_DIR|g" \
    -e "s|@PKI@|$pki|g" -e "s|@IMAPS_PORT@|$IMAPS|" -e "s|@SUBMISSION_PORT@|$SUB|" \
    -e "s|@CIPHER@|aes-256-gcm|" config/dev.toml.in > "$DEMO_DIR/teleavis.toml"
cp "$DEMO_DIR/teleavis.toml" config/dev.toml
cfg=$DEMO_DIR/teleavis.toml

say "teleavis check-config --connect"
"$bin" --config "$cfg" check-config --connect

say "The national directory (sample in the real file's layout) and the on-duty roster"
"$bin" --config "$cfg" directory import ../shared/directory/Extraction_Correspondance_MSSante_sample.txt
"$bin" --config "$cfg" directory show dr.martin@cabinet.test
now_local=$(TZ=Europe/Paris date +%Y-%m-%dT%H:%M)
printf 'category,start,end,expert\ninfectio,%s,%s,dr.ruch@hopital.test\n' \
  "$(TZ=Europe/Paris date -d '-1 hour' +%Y-%m-%dT%H:%M)" "$(TZ=Europe/Paris date -d '+4 hours' +%Y-%m-%dT%H:%M)" \
  > "$DEMO_DIR/planning.csv"
"$bin" --config "$cfg" roster import "$DEMO_DIR/planning.csv"
"$bin" --config "$cfg" roster show --at "$now_local"

say "teleavis run (log: $DEMO_DIR/teleavis.log)"
"$bin" --config "$cfg" run >"$DEMO_DIR/teleavis.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do grep -q "teleavis running" "$DEMO_DIR/teleavis.log" && break; sleep 0.2; done

imap() { $T "$1" --port "$IMAPS" --cafile "$pki/ca.crt" --user "$2" --password "$PW" "${@:3}"; }
count() { imap count "$1" | python3 -c "import json,sys; print(json.load(sys.stdin).get('${2:-INBOX}',0))"; }
wait_count() { # user n [folder]
  for _ in $(seq 1 150); do [ "$(count "$1" "${3:-INBOX}")" -ge "$2" ] && return 0; sleep 0.4; done
  echo "timed out waiting for $2 message(s) in $1 ${3:-INBOX}" >&2; tail -n 30 "$DEMO_DIR/teleavis.log" >&2; return 1
}
open_as() { $T open --cert "$pki/users/$1.crt" --key "$pki/users/$1.key" --cafile "$pki/ca.crt" "$2"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

say "The GP (dr.martin@cabinet.test) sends the seed's first request, signed and encrypted by openssl"
$T compose --from dr.martin@cabinet.test --to teleexpertise+infectio@hopital.test \
  --subject "Demande d'avis" --body-file tests/data/forms/case1_mycoplasme.txt \
  --sign "$pki/users/gp.crt" "$pki/users/gp.key" --encrypt-to "$pki/users/gateway.crt" \
  > "$DEMO_DIR/1-request.eml"
$T send --port "$SMTP" --from dr.martin@cabinet.test --to teleexpertise+infectio@hopital.test "$DEMO_DIR/1-request.eml"

wait_count infectio@hopital.test 1
mkdir -p "$DEMO_DIR/group"
imap fetch infectio@hopital.test --out "$DEMO_DIR/group" >/dev/null
fwd=$(ls "$DEMO_DIR"/group/*.eml | head -n 1)
open_as infectio "$fwd" > "$DEMO_DIR/2-forward.json"
tid=$(field "d['headers'].get('X-Teleavis-Thread') or d['headers'].get('x-teleavis-thread')" < "$DEMO_DIR/2-forward.json")
replyto=$(field "d['headers'].get('Reply-To') or d['headers'].get('reply-to')" < "$DEMO_DIR/2-forward.json")
fwdid=$(field "d['headers'].get('Message-ID') or d['headers'].get('message-id')" < "$DEMO_DIR/2-forward.json")
echo "Thread $tid opened; the group infectio@hopital.test received:"
field "d['headers'].get('Subject') or d['headers'].get('subject')" < "$DEMO_DIR/2-forward.json"
field "d['text']" < "$DEMO_DIR/2-forward.json" | sed -n '1,14p' | sed 's/^/    | /'

wait_count dr.ruch@hopital.test 1
mkdir -p "$DEMO_DIR/expert"
imap fetch dr.ruch@hopital.test --out "$DEMO_DIR/expert" >/dev/null
notice=$(ls "$DEMO_DIR"/expert/*.eml | head -n 1)
echo "The expert on duty, dr.ruch@hopital.test, received the on-duty notice:"
open_as expert "$notice" | field "d['headers'].get('Subject') or d['headers'].get('subject')"
open_as expert "$notice" | field "d['text']" | sed -n '1,8p' | sed 's/^/    | /'

say "The expert (dr.ruch@hopital.test) answers and closes the thread with #clore"
cat > "$DEMO_DIR/answer.txt" <<'ANSWER'
#clore
Bonjour

Ce ne sont que rarement des pathogènes et en tout cas on ne les traite jamais quand asymptomatique. Il faut juste vérifier PCR chlamydia et gonocoque sur les urines. L'orchite peut être une infection urinaire et pas forcément une IST.

Cordialement
ANSWER
$T compose --from dr.ruch@hopital.test --to "$replyto" --subject "Re: [$tid] Nouvelle demande" \
  --header "In-Reply-To: $fwdid" --body-file "$DEMO_DIR/answer.txt" \
  --sign "$pki/users/expert.crt" "$pki/users/expert.key" --encrypt-to "$pki/users/gateway.crt" \
  > "$DEMO_DIR/3-answer.eml"
$T send --port "$SMTP" --from dr.ruch@hopital.test --to "$replyto" "$DEMO_DIR/3-answer.eml"

wait_count dr.martin@cabinet.test 2
mkdir -p "$DEMO_DIR/gp"
imap fetch dr.martin@cabinet.test --out "$DEMO_DIR/gp" >/dev/null
echo "The GP's mailbox (decrypted and verified with openssl):"
for f in "$DEMO_DIR"/gp/*.eml; do
  open_as gp "$f" | field "'  ' + (d['headers'].get('Subject') or d['headers'].get('subject')) + '   signed by ' + str(d['signed_by']) + ', attachments: ' + ', '.join(a['filename'] for a in d['attachments'])"
done

say "The record"
"$bin" --config "$cfg" threads list
"$bin" --config "$cfg" report "$tid" --format pdf --output "$DEMO_DIR/compte-rendu-$tid.pdf"
"$bin" --config "$cfg" report "$tid" --format text > "$DEMO_DIR/compte-rendu-$tid.txt"
"$bin" --config "$cfg" report "$tid" --format xdm --output "$DEMO_DIR/IHE_XDM.ZIP"
"$bin" --config "$cfg" audit verify
"$bin" --config "$cfg" stats --by department
"$bin" --config "$cfg" stats --by department --format html --output "$DEMO_DIR/stats.html"

say "Where to read it"
cat <<EOF_WHERE
  compte-rendu (PDF):   $DEMO_DIR/compte-rendu-$tid.pdf
  compte-rendu (text):  $DEMO_DIR/compte-rendu-$tid.txt
  for the patient's record (CDA TLM-CR in IHE XDM, as attached to the GP's mail):
                        $DEMO_DIR/IHE_XDM.ZIP
                        check it: ../shared/validators/cda/validate-xdm.sh $DEMO_DIR/IHE_XDM.ZIP
  GP's mail (raw):      $DEMO_DIR/gp/   (maildir: $(j maildir_root)/cabinet.test/dr.martin)
  group's mail (raw):   $DEMO_DIR/group/
  on-duty notice (raw): $DEMO_DIR/expert/
  statistics (HTML):    $DEMO_DIR/stats.html
  gateway log:          $DEMO_DIR/teleavis.log
  thread:               $bin --config $cfg threads show $tid
EOF_WHERE
