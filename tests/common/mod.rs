//! Test support shared by the integration tests (`mod common;`): the test PKI, a private real
//! Postfix + Dovecot (scripts/mailsys.py) and mail made and read by tools teleavis did not
//! write (tests/support/mailtool.py: Python email/smtplib/imaplib and `openssl cms`).
//!
//! Independent of the teleavis library API on purpose. Every helper panics with the script's
//! stderr when a script fails (tests only).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn mailsys_script() -> PathBuf {
    repo_root().join("scripts/mailsys.py")
}

pub fn mailtool_script() -> PathBuf {
    repo_root().join("tests/support/mailtool.py")
}

fn python() -> String {
    std::env::var("TELEAVIS_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command with optional stdin; returns its output whatever the exit status.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        // a thread, so a large input cannot deadlock against a full stdout pipe
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait for child");
        let _ = writer.join();
        out
    } else {
        child.wait_with_output().expect("wait for child")
    }
}

/// Runs a command and panics with its stderr when it fails; returns stdout.
pub fn run_ok(cmd: &mut Command, input: Option<&[u8]>) -> Vec<u8> {
    let out = run_with_input(cmd, input);
    if !out.status.success() {
        panic!(
            "{} failed ({}):\n--- stderr\n{}\n--- stdout\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    out.stdout
}

// ------------------------------------------------------------------------------------------
// PKI

static PKI: OnceLock<PathBuf> = OnceLock::new();

/// The test PKI made by `certs/make-test-pki.sh`, private to this test process (a fresh copy in
/// a temporary folder, so tests may add files to it). The script runs once per script version
/// into `$CARGO_TARGET_TMPDIR` and each process gets a copy (fast). Layout: `ca.crt`,
/// `server.{crt,key}`, `users/NAME.{crt,key,p12,email}`, `crl/`, `trust/`, `recipients/`.
pub fn pki() -> &'static Path {
    PKI.get_or_init(make_pki).as_path()
}

fn make_pki() -> PathBuf {
    let script = repo_root().join("certs/make-test-pki.sh");
    let text = std::fs::read(&script).expect("read certs/make-test-pki.sh");
    // a cheap stable content hash (FNV-1a) as the cache key
    let mut h: u64 = 0xcbf29ce484222325;
    for b in &text {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let cache_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let cache = cache_root.join(format!("test-pki-{h:016x}"));
    if !cache.join("crl/ca.crl.pem").exists() {
        let tmp = cache_root.join(format!("test-pki-{h:016x}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        run_ok(Command::new("bash").arg(&script).arg(&tmp), None);
        // another process may have won the race: keep theirs
        if std::fs::rename(&tmp, &cache).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(
            cache.join("crl/ca.crl.pem").exists(),
            "PKI cache {} incomplete",
            cache.display()
        );
    }
    cleanup_stale_pki_copies();
    let dir = tempfile::Builder::new()
        .prefix(&format!("teleavis-pki-{}-", std::process::id()))
        .tempdir()
        .expect("temp dir for the PKI")
        .keep();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", cache.display()))
            .arg(&dir),
        None,
    );
    dir
}

/// Removes PKI copies left by test processes that have ended.
fn cleanup_stale_pki_copies() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("teleavis-pki-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // A process of another PID namespace looks dead from here: only copies untouched for
        // hours are removed, so a running test never loses its PKI.
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(6 * 3600));
        if old && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `users/NAME.crt` of the test PKI (NAME: gateway, gp, gp2, infectio, pneumo, expert,
/// expert2, intruder, admin, revoked, expired, nousage, otherca, imapclient; key sizes: weak
/// RSA-1024, ecgp P-256, ecweak P-224, infectioweak RSA-1024 for infectio@).
pub fn user_cert(name: &str) -> PathBuf {
    pki().join(format!("users/{name}.crt"))
}

pub fn user_key(name: &str) -> PathBuf {
    pki().join(format!("users/{name}.key"))
}

/// The e-mail address of a PKI user (`users/NAME.email`).
pub fn user_email(name: &str) -> String {
    std::fs::read_to_string(pki().join(format!("users/{name}.email")))
        .unwrap_or_else(|e| panic!("no PKI user {name}: {e}"))
        .trim()
        .to_string()
}

/// PKI user name from a name or an e-mail address (first user with that address).
pub fn pki_user(name_or_email: &str) -> String {
    if !name_or_email.contains('@') {
        return name_or_email.to_string();
    }
    let want = name_or_email.trim().to_ascii_lowercase();
    let mut names: Vec<String> = std::fs::read_dir(pki().join("users"))
        .expect("read PKI users")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".email")
                .map(|s| s.to_string())
        })
        .collect();
    names.sort();
    // prefer the S/MIME identity over the IMAP client certificate with the same address
    names.retain(|n| n != "imapclient");
    names
        .into_iter()
        .find(|n| user_email(n).eq_ignore_ascii_case(&want))
        .unwrap_or_else(|| panic!("no PKI user with address {want}"))
}

// ------------------------------------------------------------------------------------------
// mailtool.py wrappers

/// Runs tests/support/mailtool.py with args (and stdin); panics with its stderr on failure.
pub fn mailtool(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    run_ok(
        Command::new(python()).arg(mailtool_script()).args(args),
        input,
    )
}

/// Like [`mailtool`] but returns the error output instead of panicking.
pub fn try_mailtool(args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let out = run_with_input(
        Command::new(python()).arg(mailtool_script()).args(args),
        input,
    );
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `mailtool.py compose ARGS`: an RFC 5322 message (CRLF) as a mainstream S/MIME client
/// makes it. E.g. `compose(&["--from", "dr.martin@cabinet.test", "--to", "...",
/// "--subject", "Demande", "--body", "Nom : X", "--sign", gp.crt, gp.key,
/// "--encrypt-to", gateway.crt])`. Paths from [`user_cert`]/[`user_key`] as `&str`.
pub fn compose(args: &[&str]) -> Vec<u8> {
    let mut full = vec!["compose"];
    full.extend_from_slice(args);
    mailtool(&full, None)
}

/// Convenience: a message from PKI user `from` (signed with its key) encrypted to `to_cert`
/// (PKI user names), with the given envelope/header addresses, subject and body, and extra
/// compose args (e.g. `["--attach", path]`).
pub fn compose_signed_encrypted(
    from: &str,
    to_addr: &str,
    encrypt_to: &str,
    subject: &str,
    body: &str,
    extra: &[&str],
) -> Vec<u8> {
    let from_addr = user_email(from);
    let c = user_cert(from);
    let k = user_key(from);
    let e = user_cert(encrypt_to);
    let mut args = vec![
        "--from",
        from_addr.as_str(),
        "--to",
        to_addr,
        "--subject",
        subject,
        "--body",
        body,
        "--sign",
        c.to_str().unwrap(),
        k.to_str().unwrap(),
        "--encrypt-to",
        e.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    compose(&args)
}

/// `mailtool.py open` as PKI user `user` (a name like "gp" or an address): decrypts with its
/// key, verifies against the test CA, returns the JSON ({signed_by, signers, verified,
/// encrypted, smime_type, layers, headers, inner_headers, text, html, attachments}).
/// Panics when decryption or verification fails.
pub fn open_as(user: &str, raw: &[u8]) -> Value {
    try_open_as(user, raw).unwrap_or_else(|e| panic!("mailtool open as {user} failed: {e}"))
}

/// Like [`open_as`]; `Err(stderr)` when the message cannot be decrypted or verified.
pub fn try_open_as(user: &str, raw: &[u8]) -> Result<Value, String> {
    let name = pki_user(user);
    let c = user_cert(&name);
    let k = user_key(&name);
    let ca = pki().join("ca.crt");
    let out = try_mailtool(
        &[
            "open",
            "--cert",
            c.to_str().unwrap(),
            "--key",
            k.to_str().unwrap(),
            "--cafile",
            ca.to_str().unwrap(),
            "-",
        ],
        Some(raw),
    )?;
    Ok(serde_json::from_slice(&out).expect("mailtool open JSON"))
}

// ------------------------------------------------------------------------------------------
// mail system

/// One private Postfix + Dovecot (scripts/mailsys.py) in a temporary folder; stopped on drop.
/// Any `local@hopital.test` / `local@cabinet.test` user logs in with [`MailSystem::password`];
/// mail to `x+tag@d` lands in x@d's INBOX with `Delivered-To: x+tag@d`.
pub struct MailSystem {
    dir: Option<tempfile::TempDir>,
    /// Postfix MTA port: no AUTH, accepts mail for the local domains, STARTTLS offered.
    pub smtp_port: u16,
    /// Postfix submission: STARTTLS then AUTH PLAIN/LOGIN (or a TLS client certificate from
    /// the test CA) required to send.
    pub submission_port: u16,
    /// Postfix implicit TLS submission (+ AUTH or client certificate).
    pub smtps_port: u16,
    /// Dovecot IMAP with STARTTLS.
    pub imap_port: u16,
    /// Dovecot IMAPS (implicit TLS); AUTHENTICATE EXTERNAL with users/imapclient.crt.
    pub imaps_port: u16,
    pub lmtp_port: u16,
    pub host: String,
    /// The password of every user.
    pub password: String,
    /// The CA that signed the servers' certificate (the test PKI's ca.crt).
    pub ca_file: PathBuf,
    /// Maildirs: `maildir_root/DOMAIN/LOCAL/` (Maildir++ folders `.Trait&AOk-s` …).
    pub maildir_root: PathBuf,
    /// The whole mailsys.json.
    pub info: Value,
}

impl MailSystem {
    /// Starts a mail system for hopital.test and cabinet.test.
    pub fn start() -> MailSystem {
        Self::start_with_domains(&["hopital.test", "cabinet.test"])
    }

    pub fn start_with_domains(domains: &[&str]) -> MailSystem {
        let pki = pki();
        let dir = tempfile::Builder::new()
            .prefix("teleavis-mail-")
            .tempdir()
            .expect("temp dir for the mail system");
        let pid = std::process::id().to_string();
        let out = run_ok(
            Command::new(python()).arg(mailsys_script()).args([
                "start",
                "--dir",
                dir.path().to_str().unwrap(),
                "--pki",
                pki.to_str().unwrap(),
                "--domains",
                &domains.join(","),
                "--watch-pid",
                &pid,
                "--watch-remove",
            ]),
            None,
        );
        let info: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "mailsys.py start printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        });
        let port = |k: &str| {
            info[k]
                .as_u64()
                .unwrap_or_else(|| panic!("no {k} in {info}")) as u16
        };
        let s = |k: &str| {
            info[k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} in {info}"))
                .to_string()
        };
        MailSystem {
            smtp_port: port("smtp_port"),
            submission_port: port("submission_port"),
            smtps_port: port("smtps_port"),
            imap_port: port("imap_port"),
            imaps_port: port("imaps_port"),
            lmtp_port: port("lmtp_port"),
            host: s("host"),
            password: s("password"),
            ca_file: PathBuf::from(s("ca_file")),
            maildir_root: PathBuf::from(s("maildir_root")),
            info: info.clone(),
            dir: Some(dir),
        }
    }

    /// The folder holding configs, logs (postfix.log, dovecot.log), queue and mail.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Postfix and Dovecot logs, for assertion messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["postfix.log", "dovecot.log"] {
            let text = std::fs::read_to_string(self.dir().join(f)).unwrap_or_default();
            s.push_str(&format!("--- {f}\n{text}\n"));
        }
        s
    }

    fn port_s(p: u16) -> String {
        p.to_string()
    }

    /// Sends raw bytes through the Postfix MTA port (no AUTH); panics when refused.
    pub fn send_raw(&self, from: &str, to: &[&str], raw: &[u8]) {
        if let Err(e) = self.try_send_raw(from, to, raw) {
            panic!("send_raw from {from} to {to:?} failed: {e}");
        }
    }

    /// Like [`send_raw`](Self::send_raw); `Err(stderr)` when Postfix is down or refuses.
    pub fn try_send_raw(&self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), String> {
        let port = Self::port_s(self.smtp_port);
        let mut args = vec![
            "send", "--host", &self.host, "--port", &port, "--from", from,
        ];
        for t in to {
            args.push("--to");
            args.push(t);
        }
        args.push("-");
        try_mailtool(&args, Some(raw)).map(|_| ())
    }

    /// Sends through the submission port with STARTTLS and AUTH as `user`.
    pub fn submit_raw(&self, user: &str, from: &str, to: &[&str], raw: &[u8]) {
        let port = Self::port_s(self.submission_port);
        let ca = self.ca_file.to_str().unwrap().to_string();
        let mut args = vec![
            "send",
            "--host",
            &self.host,
            "--port",
            &port,
            "--starttls",
            "--cafile",
            &ca,
            "--user",
            user,
            "--password",
            &self.password,
            "--from",
            from,
        ];
        for t in to {
            args.push("--to");
            args.push(t);
        }
        args.push("-");
        mailtool(&args, Some(raw));
    }

    fn imap_args<'a>(
        &'a self,
        cmd: &'a str,
        user: &'a str,
        port: &'a str,
        ca: &'a str,
    ) -> Vec<&'a str> {
        vec![
            cmd,
            "--host",
            &self.host,
            "--port",
            port,
            "--cafile",
            ca,
            "--user",
            user,
            "--password",
            &self.password,
        ]
    }

    /// Every message in `mailbox` of `user` (raw bytes as stored, UID order). Does not set
    /// \Seen. Panics when the mailbox does not exist.
    pub fn fetch(&self, user: &str, mailbox: &str) -> Vec<Vec<u8>> {
        self.fetch_with_flags(user, mailbox)
            .into_iter()
            .map(|m| m.raw)
            .collect()
    }

    /// Like [`fetch`](Self::fetch) with UIDs and flags.
    pub fn fetch_with_flags(&self, user: &str, mailbox: &str) -> Vec<Fetched> {
        let out_dir = tempfile::tempdir().expect("temp dir");
        let port = Self::port_s(self.imaps_port);
        let ca = self.ca_file.to_str().unwrap().to_string();
        let mut args = self.imap_args("fetch", user, &port, &ca);
        let od = out_dir.path().to_str().unwrap().to_string();
        args.extend_from_slice(&["--mailbox", mailbox, "--out", &od]);
        let out = mailtool(&args, None);
        let list: Vec<Value> = serde_json::from_slice(&out).expect("fetch JSON");
        list.into_iter()
            .map(|v| Fetched {
                uid: v["uid"].as_u64().unwrap() as u32,
                flags: v["flags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                raw: std::fs::read(v["file"].as_str().unwrap()).expect("read fetched message"),
            })
            .collect()
    }

    /// Message counts of every folder of `user` (INBOX, Traités, Quarantaine always present).
    pub fn counts(&self, user: &str) -> BTreeMap<String, usize> {
        let port = Self::port_s(self.imaps_port);
        let ca = self.ca_file.to_str().unwrap().to_string();
        let out = mailtool(&self.imap_args("count", user, &port, &ca), None);
        let v: BTreeMap<String, u64> = serde_json::from_slice(&out).expect("count JSON");
        v.into_iter().map(|(k, n)| (k, n as usize)).collect()
    }

    /// Number of messages in `mailbox` of `user`; 0 when the folder does not exist.
    pub fn count(&self, user: &str, mailbox: &str) -> usize {
        self.counts(user).get(mailbox).copied().unwrap_or(0)
    }

    /// Folder names of `user` (UTF-8, `/` separator).
    pub fn folders(&self, user: &str) -> Vec<String> {
        let port = Self::port_s(self.imaps_port);
        let ca = self.ca_file.to_str().unwrap().to_string();
        let out = mailtool(&self.imap_args("folders", user, &port, &ca), None);
        serde_json::from_slice(&out).expect("folders JSON")
    }

    /// Polls (every 200 ms) until `mailbox` of `user` holds at least `n` messages; false on
    /// timeout.
    pub fn wait_for_count(&self, user: &str, mailbox: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count(user, mailbox) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Logs in over IMAPS with AUTHENTICATE EXTERNAL and the client certificate of PKI user
    /// `cert_user` (e.g. "imapclient"); returns the folder list, or Err(stderr).
    pub fn try_external_login(&self, cert_user: &str) -> Result<Vec<String>, String> {
        let port = Self::port_s(self.imaps_port);
        let ca = self.ca_file.to_str().unwrap().to_string();
        let c = user_cert(cert_user);
        let k = user_key(cert_user);
        let out = try_mailtool(
            &[
                "folders",
                "--host",
                &self.host,
                "--port",
                &port,
                "--cafile",
                &ca,
                "--cert",
                c.to_str().unwrap(),
                "--key",
                k.to_str().unwrap(),
            ],
            None,
        )?;
        Ok(serde_json::from_slice(&out).expect("folders JSON"))
    }

    fn mailsys(&self, cmd: &str) {
        run_ok(
            Command::new(python()).arg(mailsys_script()).args([
                cmd,
                "--dir",
                self.dir().to_str().unwrap(),
            ]),
            None,
        );
    }

    /// Stops Postfix only (SMTP outage); Dovecot keeps running.
    pub fn stop_postfix(&self) {
        self.mailsys("postfix-stop");
    }

    /// Restarts Postfix on the same ports (mail queued before the stop is then delivered).
    pub fn start_postfix(&self) {
        self.mailsys("postfix-start");
    }

    /// Stops Dovecot only (IMAP and LMTP outage: Postfix defers delivery meanwhile and retries
    /// every 5-10 s).
    pub fn stop_dovecot(&self) {
        self.mailsys("dovecot-stop");
    }

    /// Restarts Dovecot on the same ports; the mail is kept.
    pub fn start_dovecot(&self) {
        self.mailsys("dovecot-start");
    }

    /// Stops everything now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let out = run_with_input(
                Command::new(python()).arg(mailsys_script()).args([
                    "stop",
                    "--dir",
                    dir.path().to_str().unwrap(),
                ]),
                None,
            );
            if !out.status.success() {
                eprintln!(
                    "mailsys.py stop failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if std::env::var_os("TELEAVIS_KEEP_MAILSYS").is_some() {
                eprintln!("keeping {}", dir.keep().display());
            }
        }
    }
}

impl Drop for MailSystem {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message fetched over IMAP.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
}

// ------------------------------------------------------------------------------------------
// raw message helpers

/// (header block, body) of a raw message, split at the first empty line (CRLF or LF).
pub fn split_message(raw: &[u8]) -> (&[u8], &[u8]) {
    for i in 0..raw.len() {
        if raw[i..].starts_with(b"\r\n\r\n") {
            return (&raw[..i + 2], &raw[i + 4..]);
        }
        if raw[i..].starts_with(b"\n\n") {
            return (&raw[..i + 1], &raw[i + 2..]);
        }
    }
    (raw, &[])
}

/// Values of header `name` (case-insensitive, unfolded) in a raw message.
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let (head, _) = split_message(raw);
    let text = String::from_utf8_lossy(head).replace("\r\n", "\n");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        if let Some(c) = current.take() {
            out.push(c);
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case(name)
        {
            current = Some(v.trim().to_string());
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}
