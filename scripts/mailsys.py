#!/usr/bin/env python3
"""A private, throw-away mail system for teleavis tests and the demo: one real Dovecot (IMAP,
LMTP, SASL) and one real Postfix (MTA, submission, smtps) on free loopback ports.

Usage (as root):
  mailsys.py start --dir DIR --pki PKIDIR [--domains hopital.test,cabinet.test] [--password PW]
      writes configs under DIR, starts both, waits until they answer, writes DIR/mailsys.json
      and prints the same JSON on stdout.
  mailsys.py stop --dir DIR            stops both, removes DIR from Postfix's
                                       alternate_config_directories (idempotent).
  mailsys.py postfix-stop --dir DIR    stops Postfix only (outage tests).
  mailsys.py postfix-start --dir DIR   restarts Postfix on the same ports.
  mailsys.py dovecot-stop / dovecot-start --dir DIR   the same for Dovecot (IMAP outage).
  mailsys.py status --dir DIR          prints the JSON and whether each daemon runs.
  start --watch-pid PID also leaves a watcher that stops the instance once PID is gone
  (--watch-remove: and deletes DIR).

Several instances may run at once (each has its own DIR, ports, queue and Dovecot base_dir).
The system Postfix and Dovecot instances are never used nor started.
"""

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

MAIN_CF = "/etc/postfix/main.cf"
LOCK_FILE = "/tmp/.teleavis-mailsys-postfix.lock"
DEFAULT_DOMAINS = "hopital.test,cabinet.test"
DEFAULT_PASSWORD = "test-password"
PORT_NAMES = ["smtp_port", "submission_port", "smtps_port", "imap_port", "imaps_port",
              "lmtp_port", "auth_port"]


class Fail(Exception):
    pass


def log(msg):
    print(f"mailsys: {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=60):
    """Runs cmd; output goes through a temporary file, not a pipe, because daemons keep the
    inherited descriptors open after they detach."""
    import tempfile
    with tempfile.TemporaryFile() as out:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout)
        out.seek(0)
        p.stdout = out.read().decode(errors="replace")
    if check and p.returncode != 0:
        raise Fail(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}")
    return p


# ---------------------------------------------------------------------------------------------
# ports


def free_ports(n):
    """n distinct free loopback ports, taken from a random high range to make collisions
    between concurrently starting instances unlikely (start retries on a bind failure)."""
    ports = []
    tries = 0
    while len(ports) < n:
        tries += 1
        if tries > 2000:
            raise Fail("no free loopback ports")
        port = random.randint(20000, 60999)
        if port in ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
    return ports


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_banner(port, prefix, timeout, tls_ctx=None):
    """Waits until the server on port sends a banner starting with prefix."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if tls_ctx is not None:
                    s = tls_ctx.wrap_socket(s, server_hostname="localhost")
                data = s.recv(512)
                if data.startswith(prefix):
                    return
                last = data
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise Fail(f"port {port} did not answer with {prefix!r} within {timeout}s (last: {last!r})")


# ---------------------------------------------------------------------------------------------
# Postfix alternate_config_directories in the default main.cf (shared, so under a lock)


class Locked:
    def __enter__(self):
        self.f = open(LOCK_FILE, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *a):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _acd_get():
    p = run(["postconf", "-h", "alternate_config_directories"], check=False)
    val = p.stdout.strip() if p.returncode == 0 else ""
    return [x for x in val.replace(",", " ").split() if x]


def _acd_set(dirs):
    run(["postconf", "-e", "alternate_config_directories = " + " ".join(dirs)])


def acd_add(d):
    with Locked():
        cur = _acd_get()
        # drop stale entries left by instances that died without `stop`
        keep = [x for x in cur if os.path.exists(os.path.join(x, "main.cf")) or
                not os.path.basename(x.rstrip("/")) == "postfix"]
        if d not in keep:
            keep.append(d)
        if keep != cur:
            _acd_set(keep)


def acd_remove(d):
    with Locked():
        cur = _acd_get()
        keep = [x for x in cur if x != d]
        if keep != cur:
            _acd_set(keep)


# ---------------------------------------------------------------------------------------------
# configuration


def pf_dir(d):
    return os.path.join(d, "postfix")


def dv_conf(d):
    return os.path.join(d, "dovecot", "dovecot.conf")


def dv_base_dir(d):
    """Dovecot's runtime folder with its UNIX sockets: inside DIR when the path is short
    enough for sun_path (108 bytes), else a short folder under /tmp."""
    base = os.path.join(d, "dovecot", "run")
    if len(base) + 40 > 100:
        import hashlib
        base = "/tmp/tvdv-" + hashlib.sha256(d.encode()).hexdigest()[:12]
    return base


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def write_dovecot(st):
    d = st["dir"]
    dvd = os.path.join(d, "dovecot")
    os.makedirs(dvd, exist_ok=True)
    os.makedirs(st["maildir_root"], exist_ok=True)
    os.makedirs(os.path.join(d, "home"), exist_ok=True)
    # Debian's `mail` system user owns the mail (root reads it anyway)
    mail_uid = _uid("mail") or 8
    for p in (st["maildir_root"], os.path.join(d, "home")):
        os.chown(p, mail_uid, mail_uid)
        os.chmod(p, 0o755)
    pw_file = os.path.join(dvd, "password")
    write(pw_file, st["password"] + "\n", 0o600)
    conf = f"""# generated by teleavis scripts/mailsys.py
base_dir = {st['dovecot_base_dir']}
instance_name = teleavis-{os.path.basename(d.rstrip('/'))}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
# Passwords only over TLS; but Dovecot 2.3 counts a connection whose both ends have the same
# IP (127.0.0.1) as secured, so LOGIN before STARTTLS on imap_port is accepted anyway: the
# client must insist on TLS. Postfix takes AUTH over TLS only (smtpd_tls_auth_only).
ssl = yes
ssl_cert = <{st['pki']}/server.crt
ssl_key = <{st['pki']}/server.key
ssl_ca = <{st['ca_file']}
ssl_verify_client_cert = yes
ssl_require_crl = no
ssl_min_protocol = TLSv1.2
auth_ssl_username_from_cert = yes
ssl_cert_username_field = commonName
auth_mechanisms = plain login external
disable_plaintext_auth = yes
auth_username_format = %Lu
auth_failure_delay = 0
recipient_delimiter = +
lmtp_hdr_delivery_address = final
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{st['maildir_root']}/%d/%n
mail_home = {d}/home/%d/%n
mail_fsync = never
mail_uid = {mail_uid}
mail_gid = {mail_uid}
mail_privileged_group =
imap_idle_notify_interval = 2 mins
protocol imap {{
  mail_max_userip_connections = 100
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
}}
# AUTHENTICATE EXTERNAL: the user name is the CN of a client certificate that Dovecot has
# verified against ssl_ca; no password then.
passdb {{
  driver = static
  args = nopassword=y
  mechanisms = external
}}
passdb {{
  driver = static
  args = password={st['password']}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_uid}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {st['imap_port']}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {st['imaps_port']}
    ssl = yes
  }}
  process_min_avail = 1
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {st['lmtp_port']}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service auth {{
  inet_listener auth {{
    address = 127.0.0.1
    port = {st['auth_port']}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service managesieve-login {{
  inet_listener sieve {{
    port = 0
  }}
}}
"""
    write(dv_conf(d), conf)


def write_postfix(st):
    d = st["dir"]
    pd = pf_dir(d)
    os.makedirs(pd, exist_ok=True)
    q = os.path.join(d, "postfix-queue")
    data = os.path.join(d, "postfix-data")
    for p in (q, data):
        os.makedirs(p, exist_ok=True)
        os.chmod(p, 0o755)
    os.chown(data, 108 if _uid("postfix") is None else _uid("postfix"), -1)
    domains = ", ".join(st["domains"])
    pki = st["pki"]
    main = f"""# generated by teleavis scripts/mailsys.py
compatibility_level = 3.6
queue_directory = {q}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
myhostname = mx.{st['domains'][0]}
mydomain = {st['domains'][0]}
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:no local delivery in tests
alias_maps =
alias_database =
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
relayhost =
default_transport = error:no external delivery in tests
relay_transport = error:no external delivery in tests
virtual_mailbox_domains = {domains}
virtual_mailbox_maps =
virtual_alias_maps =
virtual_transport = lmtp:inet:127.0.0.1:{st['lmtp_port']}
smtpd_reject_unlisted_recipient = no
recipient_delimiter = +
message_size_limit = 52428800
mailbox_size_limit = 0
smtpd_banner = $myhostname ESMTP teleavis-test-postfix
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_tls_cert_file = {pki}/server.crt
smtpd_tls_key_file = {pki}/server.key
smtpd_tls_CAfile = {st['ca_file']}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{st['auth_port']}
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = yes
smtpd_sasl_authenticated_header = yes
smtp_tls_security_level = none
lmtp_tls_security_level = none
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
bounce_queue_lifetime = 1h
maximal_queue_lifetime = 1h
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
in_flow_delay = 0
lmtp_destination_concurrency_limit = 20
smtputf8_enable = yes
"""
    auth_opts = ("  -o smtpd_sasl_auth_enable=yes\n"
                 "  -o smtpd_tls_ask_ccert=yes\n"
                 "  -o smtpd_relay_restrictions=permit_sasl_authenticated,"
                 "permit_tls_all_clientcerts,reject\n"
                 "  -o smtpd_client_restrictions=\n")
    master = f"""# generated by teleavis scripts/mailsys.py (no chroot anywhere)
127.0.0.1:{st['smtp_port']} inet n - n - - smtpd
  -o syslog_name=postfix/smtp-in
127.0.0.1:{st['submission_port']} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
{auth_opts}127.0.0.1:{st['smtps_port']} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
{auth_opts}pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
    write(os.path.join(pd, "main.cf"), main)
    write(os.path.join(pd, "master.cf"), master)


def _uid(name):
    try:
        import pwd
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


# ---------------------------------------------------------------------------------------------
# processes


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False  # a zombie: dead, not yet reaped by its parent
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while pid and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not (pid and pid_alive(pid))


def kill_group(pid, grace=0.3):
    """SIGTERM to a daemon's process group (the master is a session leader, its children share
    the group), SIGKILL after `grace` seconds: the masters otherwise take 1-3 s to exit and
    tests must be quick. Postfix's queue is crash-safe; the test mail is disposable."""
    if not pid or not pid_alive(pid):
        return
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid != pid or pgid == os.getpgrp():
        # not a session leader as expected: signal the master alone
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, grace):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, 5)
    # children that outlived the master (already signalled) get the rest
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def postfix_pid(st):
    return read_pid(os.path.join(st["dir"], "postfix-queue", "pid", "master.pid"))


def dovecot_pid(st):
    return read_pid(os.path.join(st["dovecot_base_dir"], "master.pid"))


def tls_client_ctx(st):
    ctx = ssl.create_default_context(cafile=st["ca_file"])
    return ctx


def start_dovecot(st):
    os.makedirs(st["dovecot_base_dir"], exist_ok=True)
    run(["dovecot", "-c", dv_conf(st["dir"])])
    wait_banner(st["imap_port"], b"* OK", 10)
    wait_banner(st["imaps_port"], b"* OK", 10, tls_client_ctx(st))
    wait_banner(st["lmtp_port"], b"220", 10)
    wait_banner(st["auth_port"], b"VERSION", 10)


def stop_dovecot(st):
    kill_group(dovecot_pid(st))
    if st["dovecot_base_dir"].startswith("/tmp/tvdv-"):
        shutil.rmtree(st["dovecot_base_dir"], ignore_errors=True)


def start_postfix(st):
    d = pf_dir(st["dir"])
    acd_add(d)
    run(["postfix", "-c", d, "start"], timeout=60)
    wait_banner(st["smtp_port"], b"220", 10)
    wait_banner(st["submission_port"], b"220", 10)
    wait_banner(st["smtps_port"], b"220", 10, tls_client_ctx(st))


def stop_postfix(st, keep_acd=False):
    d = pf_dir(st["dir"])
    kill_group(postfix_pid(st))
    # the listening ports are closed with master; make sure they are free again
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            port_open(st[k]) for k in ("smtp_port", "submission_port", "smtps_port")):
        time.sleep(0.05)
    if not keep_acd:
        acd_remove(d)


# ---------------------------------------------------------------------------------------------
# commands


def public(st):
    keys = ["smtp_port", "submission_port", "smtps_port", "imaps_port", "imap_port",
            "lmtp_port", "auth_port", "password", "ca_file", "dir", "maildir_root", "pki",
            "domains", "host", "postfix_log", "dovecot_log"]
    return {k: st[k] for k in keys}


def save(st):
    write(os.path.join(st["dir"], "mailsys.json"), json.dumps(public(st), indent=2) + "\n")
    write(os.path.join(st["dir"], ".mailsys-state.json"), json.dumps(st, indent=2) + "\n",
          0o600)


def load(d):
    d = os.path.abspath(d)
    path = os.path.join(d, ".mailsys-state.json")
    if not os.path.exists(path):
        raise Fail(f"{d} holds no mail system (no {path})")
    with open(path) as f:
        return json.load(f)


def cmd_start(a):
    if os.geteuid() != 0:
        raise Fail("must run as root (Postfix and Dovecot instances)")
    d = os.path.abspath(a.dir)
    pki = os.path.abspath(a.pki)
    for f in ("ca.crt", "server.crt", "server.key"):
        if not os.path.exists(os.path.join(pki, f)):
            raise Fail(f"{pki}/{f} missing (make it with certs/make-test-pki.sh {pki})")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)  # Postfix and Dovecot users must reach their files below
    if os.path.exists(os.path.join(d, ".mailsys-state.json")):
        old = load(d)
        if (postfix_pid(old) and pid_alive(postfix_pid(old))) or \
                (dovecot_pid(old) and pid_alive(dovecot_pid(old))):
            raise Fail(f"a mail system already runs in {d}; stop it first")
    domains = [x.strip().lower() for x in a.domains.split(",") if x.strip()]
    last_err = None
    for attempt in range(4):
        ports = free_ports(len(PORT_NAMES))
        st = dict(zip(PORT_NAMES, ports))
        st.update({
            "host": "127.0.0.1",
            "password": a.password,
            "ca_file": os.path.join(pki, "ca.crt"),
            "pki": pki,
            "dir": d,
            "maildir_root": os.path.join(d, "mail"),
            "domains": domains,
            "postfix_log": os.path.join(d, "postfix.log"),
            "dovecot_log": os.path.join(d, "dovecot.log"),
            "dovecot_base_dir": dv_base_dir(d),
        })
        write_dovecot(st)
        write_postfix(st)
        save(st)
        try:
            start_dovecot(st)
            start_postfix(st)
        except Fail as e:
            last_err = e
            log(f"start attempt {attempt + 1} failed: {e}")
            stop_postfix(st)
            stop_dovecot(st)
            # a port taken meanwhile by someone else: retry with new ports
            time.sleep(0.2)
            continue
        if a.watch_pid:
            spawn_watcher(d, a.watch_pid, a.watch_remove)
        print(json.dumps(public(st), indent=2))
        return 0
    raise Fail(f"could not start the mail system in {d}: {last_err}\n{tail_logs(d)}")


def tail_logs(d):
    out = []
    for name in ("dovecot.log", "postfix.log"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                lines = f.readlines()[-20:]
            out.append(f"--- {p}\n" + "".join(lines))
    return "\n".join(out)


def cmd_stop(a):
    d = os.path.abspath(a.dir)
    try:
        st = load(d)
    except Fail:
        acd_remove(pf_dir(d))
        return 0
    # both at once: signal both groups, then wait
    pp, dp = postfix_pid(st), dovecot_pid(st)
    for pid in (pp, dp):
        if pid and pid_alive(pid) and os.getpgid(pid) == pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    stop_postfix(st)
    stop_dovecot(st)
    st["stopped"] = True
    save(st)
    return 0


def cmd_dovecot_stop(a):
    stop_dovecot(load(a.dir))
    return 0


def cmd_dovecot_start(a):
    st = load(a.dir)
    pid = dovecot_pid(st)
    if pid and pid_alive(pid):
        return 0
    last = None
    for _ in range(20):
        try:
            start_dovecot(st)
            return 0
        except Fail as e:
            last = e
            stop_dovecot(st)
            time.sleep(0.25)
    raise Fail(f"dovecot did not restart: {last}\n{tail_logs(st['dir'])}")


def cmd_postfix_stop(a):
    st = load(a.dir)
    stop_postfix(st, keep_acd=True)
    return 0


def cmd_postfix_start(a):
    st = load(a.dir)
    pid = postfix_pid(st)
    if pid and pid_alive(pid):
        return 0
    last = None
    for _ in range(20):  # the ports may linger briefly after a stop
        try:
            start_postfix(st)
            return 0
        except Fail as e:
            last = e
            stop_postfix(st, keep_acd=True)
            time.sleep(0.25)
    raise Fail(f"postfix did not restart: {last}\n{tail_logs(st['dir'])}")


def spawn_watcher(d, pid, remove):
    """A detached process that stops this mail system when process `pid` is gone (a test
    binary killed before its Drop ran, or one keeping the mail system in a static), and with
    `remove` deletes DIR then."""
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "watch", "--dir", d,
                      "--pid", str(pid)] + (["--remove"] if remove else []),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=open(os.path.join(d, "watch.log"), "a"),
                     start_new_session=True, close_fds=True)


def cmd_watch(a):
    d = os.path.abspath(a.dir)
    state = os.path.join(d, ".mailsys-state.json")
    while True:
        time.sleep(1)
        if not os.path.exists(state):
            return 0  # DIR removed: stopped (or its owner cleaned up); nothing to do
        if not pid_alive(a.pid):
            log(f"owner process {a.pid} is gone: stopping the mail system in {d}")
            rc = cmd_stop(a)
            if a.remove:
                shutil.rmtree(d, ignore_errors=True)
            return rc
        try:
            if load(d).get("stopped"):
                return 0  # stopped normally
        except (Fail, ValueError):
            pass


def cmd_status(a):
    st = load(a.dir)
    out = public(st)
    pp, dp = postfix_pid(st), dovecot_pid(st)
    out["postfix_running"] = bool(pp and pid_alive(pp))
    out["dovecot_running"] = bool(dp and pid_alive(dp))
    print(json.dumps(out, indent=2))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--dir", required=True)
    s.add_argument("--pki", required=True)
    s.add_argument("--domains", default=DEFAULT_DOMAINS)
    s.add_argument("--password", default=DEFAULT_PASSWORD)
    s.add_argument("--watch-pid", type=int,
                   help="stop this mail system by itself when that process is gone")
    s.add_argument("--watch-remove", action="store_true",
                   help="with --watch-pid: also delete DIR then")
    s.set_defaults(fn=cmd_start)
    s = sub.add_parser("watch")
    s.add_argument("--dir", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--remove", action="store_true")
    s.set_defaults(fn=cmd_watch)
    for name, fn in (("stop", cmd_stop), ("postfix-stop", cmd_postfix_stop),
                     ("postfix-start", cmd_postfix_start), ("dovecot-stop", cmd_dovecot_stop),
                     ("dovecot-start", cmd_dovecot_start), ("status", cmd_status)):
        s = sub.add_parser(name)
        s.add_argument("--dir", required=True)
        s.set_defaults(fn=fn)
    a = ap.parse_args(argv)
    try:
        return a.fn(a)
    except Fail as e:
        log(str(e))
        return 1
    except subprocess.TimeoutExpired as e:
        log(f"timeout: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
