#!/usr/bin/env bash
# Installs, only when missing, the Debian packages the teleavis tests and demo need: a real
# Postfix and Dovecot (run privately by scripts/mailsys.py, never as the system instances),
# openssl, poppler-utils (pdftotext for the compte-rendu PDF), chromium (headless, prints the
# `stats --format html` page to PDF in the tests), DejaVu fonts, the OpenSSL
# headers for the openssl crate, python3 for scripts/mailsys.py and tests/support/mailtool.py,
# what the operations tests use: promtool (package prometheus), dpkg-dev, adduser, systemd
# (systemd-analyze only; it is not started) and man-db; and
# what the ANS CDA/XDM validator kit (../shared/validators/cda) runs on: a Java runtime,
# Saxon-HE, xmllint and unzip.
# Usage (as root): scripts/install-test-deps.sh        Idempotent; `apt-get update` only when
# something has to be installed.
set -euo pipefail

PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-lmtpd openssl poppler-utils chromium
          fonts-dejavu-core libssl-dev pkg-config python3
          # operations (tests/operations.rs, tests/package.rs): promtool checks the metrics;
          # the package is built (dpkg-shlibdeps), installed (adduser), its units checked
          # (systemd-analyze) and its man page found (man-db)
          prometheus dpkg-dev adduser systemd man-db
          # the ANS CDA/XDM validator kit (../shared/validators/cda)
          default-jre-headless libsaxonhe-java libxml2-utils unzip)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps.sh: must run as root" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # Any Java runtime will do for the validator kit (openjdk-17-jre-headless…).
  if [ "$p" = default-jre-headless ] && command -v java >/dev/null 2>&1; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

# No daemon may be started by the package scripts (there is no systemd here, and a
# policy-rc.d answering 101 stops invoke-rc.d from starting anything elsewhere).
policy=/usr/sbin/policy-rc.d
added_policy=0
cleanup() { [ "$added_policy" = 1 ] && rm -f "$policy"; true; }
trap cleanup EXIT

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-deps.sh: installing ${missing[*]}" >&2
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string localhost" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-test-deps.sh: all packages present" >&2
fi

# Postfix "No configuration" leaves no main.cf; `postfix -c DIR` reads the default one for
# alternate_config_directories, so make sure it exists (mailsys.py edits that one key).
if [ ! -f /etc/postfix/main.cf ]; then
  cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf 2>/dev/null ||
    printf 'compatibility_level = 3.6\n' > /etc/postfix/main.cf
fi
if ! grep -q '^alternate_config_directories' /etc/postfix/main.cf; then
  postconf -e 'alternate_config_directories ='
fi

# The system instances must not run on the standard ports: stop them if a package script
# (or anything else) started them. Only the default configuration's instances are touched.
if [ -f /var/spool/postfix/pid/master.pid ] &&
   kill -0 "$(tr -d ' ' < /var/spool/postfix/pid/master.pid)" 2>/dev/null; then
  echo "install-test-deps.sh: stopping the system Postfix" >&2
  postfix stop >/dev/null 2>&1 || true
fi
if [ -f /run/dovecot/master.pid ] && kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
  echo "install-test-deps.sh: stopping the system Dovecot" >&2
  doveadm stop >/dev/null 2>&1 || dovecot stop >/dev/null 2>&1 || true
fi
# Keep them from starting at boot where a SysV init exists.
for s in postfix dovecot; do
  if [ -x "/etc/init.d/$s" ] && command -v update-rc.d >/dev/null; then
    update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
exit 0
