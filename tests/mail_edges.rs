//! The IMAP and SMTP edges against a real Dovecot and Postfix (loopback, test PKI).
//!
//! Uses the harness in `tests/common` (scripts/mailsys.py, test PKI); Python's imaplib plays
//! the independent client. Each test logs in as its own user (Dovecot's static passdb takes any name), so tests do not
//! see each other's mail and may run in parallel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use teleavis::config::{ImapAuth, ImapSettings, SmtpSettings, TlsMode};
use teleavis::mail::{IdleOutcome, ImapClient, MailError, SendError, SmtpSender};

mod common;

use common::MailSystem as Mailsys;

/// One mail system for the whole test binary (the harness stops it when the process ends).
fn mailsys() -> &'static Mailsys {
    static M: std::sync::OnceLock<Mailsys> = std::sync::OnceLock::new();
    M.get_or_init(Mailsys::start)
}

/// A fresh mailbox owner for one test.
fn user(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "edge-{tag}-{}-{nanos}-{}@hopital.test",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn password_file(m: &Mailsys) -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("teleavis-edge-pw-{}", std::process::id()));
        std::fs::write(&path, format!("{}\n", m.password)).unwrap();
        path
    })
    .clone()
}

fn bad_password_file() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("teleavis-edge-badpw-{}", std::process::id()));
        std::fs::write(&path, "not-the-password\n").unwrap();
        path
    })
    .clone()
}

fn imap_settings(m: &Mailsys, user: &str, tls: TlsMode, auth: ImapAuth) -> ImapSettings {
    ImapSettings {
        host: m.host.clone(),
        port: if tls == TlsMode::Implicit {
            m.imaps_port
        } else {
            m.imap_port
        },
        tls,
        auth,
        username: user.to_string(),
        password_file: Some(password_file(m)),
        client_certificate: None,
        client_key: None,
        ca_file: Some(m.ca_file.clone()),
        mailbox: "INBOX".into(),
        processed_mailbox: "Traités".into(),
        quarantine_mailbox: "Quarantaine".into(),
        poll_seconds: 60,
        idle_seconds: 60,
    }
}

fn smtp_settings(m: &Mailsys, tls: TlsMode, user: Option<&str>) -> SmtpSettings {
    SmtpSettings {
        host: m.host.clone(),
        port: if tls == TlsMode::Implicit {
            m.smtps_port
        } else {
            m.submission_port
        },
        tls,
        username: user.map(str::to_string),
        password_file: user.map(|_| password_file(m)),
        client_certificate: None,
        client_key: None,
        ca_file: Some(m.ca_file.clone()),
        timeout_seconds: 20,
    }
}

/// A small message with CRLF endings and an 8-bit body line.
fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <dr.martin@cabinet.test>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{subject}@cabinet.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Bonjour,\r\nDemande d'avis : fièvre au retour de voyage.\r\n.leading dot line\r\n\r\nCordialement\r\n"
    )
    .into_bytes()
}

async fn submit(m: &Mailsys, to: &str, raw: &[u8]) {
    let sender = SmtpSender::new(&smtp_settings(m, TlsMode::Starttls, Some(to))).unwrap();
    sender
        .send_raw("dr.martin@cabinet.test", &[to.to_string()], raw)
        .await
        .unwrap();
}

/// Polls INBOX until `n` messages are there (delivery goes through Postfix's queue and LMTP).
async fn wait_for_messages(client: &mut ImapClient, mailbox: &str, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        client.select(mailbox).await.unwrap();
        let uids = client.uids().await.unwrap();
        if uids.len() >= n {
            return uids;
        }
        assert!(
            Instant::now() < deadline,
            "{n} message(s) not delivered to {mailbox} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a Python imaplib snippet logged in as `user` over implicit TLS; returns its stdout.
fn imaplib(m: &Mailsys, user: &str, code: &str) -> String {
    let script = format!(
        "import imaplib, ssl, sys\nctx = ssl.create_default_context(cafile={ca:?})\n\
         M = imaplib.IMAP4_SSL({host:?}, {port}, ssl_context=ctx)\nM.login({user:?}, {pw:?})\n{code}\nM.logout()\n",
        ca = m.ca_file.to_str().unwrap(),
        host = m.host,
        port = m.imaps_port,
        pw = m.password,
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python imaplib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Puts exact bytes into a mailbox with IMAP APPEND (no trace headers added).
fn append(m: &Mailsys, user: &str, raw: &[u8]) {
    let path = std::env::temp_dir().join(format!(
        "teleavis-edge-append-{}-{}",
        std::process::id(),
        user
    ));
    std::fs::write(&path, raw).unwrap();
    imaplib(
        m,
        user,
        &format!(
            "typ, _ = M.append('INBOX', None, None, open({:?}, 'rb').read())\nassert typ == 'OK'",
            path.to_str().unwrap()
        ),
    );
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn imap_implicit_tls_with_plain() {
    let m = mailsys();
    let u = user("plain");
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    let state = c.select("INBOX").await.unwrap();
    assert_eq!(state.exists, 0);
    assert!(state.uidvalidity > 0);
    assert!(c.has_idle());
    c.noop().await.unwrap();
    c.logout().await;
}

#[tokio::test]
async fn imap_starttls_with_login() {
    let m = mailsys();
    let u = user("login");
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Starttls, ImapAuth::Login))
        .await
        .unwrap();
    c.select("INBOX").await.unwrap();
    c.logout().await;
}

#[tokio::test]
async fn imap_starttls_with_plain() {
    let m = mailsys();
    let u = user("stplain");
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Starttls, ImapAuth::Plain))
        .await
        .unwrap();
    c.select("INBOX").await.unwrap();
    c.logout().await;
}

#[tokio::test]
async fn imap_external_with_client_certificate() {
    let m = mailsys();
    for tls in [TlsMode::Implicit, TlsMode::Starttls] {
        let mut s = imap_settings(m, "teleexpertise@hopital.test", tls, ImapAuth::External);
        s.password_file = None;
        s.client_certificate = Some(common::user_cert("imapclient"));
        s.client_key = Some(common::user_key("imapclient"));
        let mut c = ImapClient::connect(&s).await.unwrap();
        c.select("INBOX").await.unwrap();
        c.logout().await;
    }
}

#[tokio::test]
async fn imap_external_without_certificate_is_a_configuration_error() {
    let m = mailsys();
    let mut s = imap_settings(
        m,
        "teleexpertise@hopital.test",
        TlsMode::Implicit,
        ImapAuth::External,
    );
    s.password_file = None;
    let err = ImapClient::connect(&s).await.unwrap_err();
    assert!(matches!(err, MailError::Config { .. }), "{err}");
}

#[tokio::test]
async fn imap_refuses_a_key_readable_by_others() {
    use std::os::unix::fs::PermissionsExt as _;
    let m = mailsys();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client.key");
    std::fs::copy(common::user_key("imapclient"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = imap_settings(
        m,
        "teleexpertise@hopital.test",
        TlsMode::Implicit,
        ImapAuth::External,
    );
    s.client_certificate = Some(common::user_cert("imapclient"));
    s.client_key = Some(key.clone());
    let err = ImapClient::connect(&s).await.unwrap_err().to_string();
    assert!(
        err.contains(key.to_str().unwrap()) && err.contains("readable by others"),
        "{err}"
    );
}

#[tokio::test]
async fn imap_wrong_ca_is_a_tls_error() {
    let m = mailsys();
    let u = user("wrongca");
    for tls in [TlsMode::Implicit, TlsMode::Starttls] {
        let mut s = imap_settings(m, &u, tls, ImapAuth::Plain);
        s.ca_file = Some(common::pki().join("other-ca.crt"));
        let err = ImapClient::connect(&s).await.unwrap_err();
        assert_eq!(err.step(), Some("tls"), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&m.host) && text.contains("certificate"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn imap_wrong_password_fails_at_authentication() {
    let m = mailsys();
    let u = user("badpw");
    let mut s = imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain);
    s.password_file = Some(bad_password_file());
    let err = ImapClient::connect(&s).await.unwrap_err();
    assert_eq!(err.step(), Some("authenticate"), "{err}");
}

#[tokio::test]
async fn imap_connection_refused_names_host_and_step() {
    let m = mailsys();
    let mut s = imap_settings(m, &user("refused"), TlsMode::Implicit, ImapAuth::Plain);
    s.port = closed_port();
    let err = ImapClient::connect(&s).await.unwrap_err();
    assert_eq!(err.step(), Some("connect"), "{err}");
    assert!(
        err.to_string().contains(&format!("{}:{}", m.host, s.port)),
        "{err}"
    );
}

#[tokio::test]
async fn ensure_mailboxes_creates_utf7_names_once() {
    let m = mailsys();
    let u = user("boxes");
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    c.ensure_mailboxes(&["Traités", "Quarantaine", "INBOX"])
        .await
        .unwrap();
    c.ensure_mailboxes(&["Traités", "Quarantaine"])
        .await
        .unwrap(); // idempotent
    let state = c.select("Traités").await.unwrap();
    assert_eq!(state.exists, 0);
    c.logout().await;
    let listing = imaplib(m, &u, "for l in M.list()[1]: print(l.decode())");
    assert!(
        listing.contains("\"Trait&AOk-s\"") || listing.contains(" Trait&AOk-s"),
        "{listing}"
    );
    assert!(listing.contains("Quarantaine"), "{listing}");
    assert_eq!(listing.matches("Trait&AOk-s").count(), 1, "{listing}");
    assert!(!listing.contains("Traités"), "{listing}");
    // Dovecot stores it as the Maildir++ folder ".Trait&AOk-s"; decoded, it is "Traités".
    let local = u.split('@').next().unwrap();
    assert!(
        m.maildir_root
            .join("hopital.test")
            .join(local)
            .join(".Trait&AOk-s")
            .is_dir()
    );
    let folders = m.folders(&u);
    assert!(folders.iter().any(|f| f == "Traités"), "{folders:?}");
}

#[tokio::test]
async fn fetch_raw_returns_the_exact_bytes() {
    let m = mailsys();
    let u = user("fetch");
    let mut raw = message(&u, "exact-bytes");
    // Binary-looking but legal 8-bit content and trailing whitespace must survive.
    raw.extend_from_slice("Ligne avec espaces   \r\n\tindentée\r\nÀ bientôt\r\n".as_bytes());
    append(m, &u, &raw);
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    c.select("INBOX").await.unwrap();
    let uids = c.uids().await.unwrap();
    assert_eq!(uids.len(), 1);
    assert_eq!(
        c.fetch_raw(uids[0]).await.unwrap().as_deref(),
        Some(&raw[..])
    );
    assert_eq!(c.fetch_raw(uids[0] + 1000).await.unwrap(), None);
    // BODY.PEEK: still unseen.
    let flags = imaplib(
        m,
        &u,
        "M.select('INBOX')\nprint(M.fetch('1', '(FLAGS)')[1][0].decode())",
    );
    assert!(!flags.contains("\\Seen"), "{flags}");
    c.logout().await;
}

#[tokio::test]
async fn fetch_raw_of_delivered_mail_keeps_the_submitted_bytes() {
    let m = mailsys();
    let u = user("delivered");
    let raw = message(&u, "delivered-bytes");
    submit(m, &u, &raw).await;
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    let uids = wait_for_messages(&mut c, "INBOX", 1).await;
    let got = c.fetch_raw(uids[0]).await.unwrap().unwrap();
    // Postfix and Dovecot prepend trace headers; what we sent follows unchanged.
    assert!(got.ends_with(&raw), "{}", String::from_utf8_lossy(&got));
    c.logout().await;
}

#[tokio::test]
async fn move_to_leaves_inbox_empty_and_keeps_the_bytes() {
    let m = mailsys();
    let u = user("move");
    let raw = message(&u, "to-be-moved");
    append(m, &u, &raw);
    let other = message(&u, "stays-in-inbox");
    append(m, &u, &other);
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    assert!(c.has_capability("MOVE"));
    c.ensure_mailboxes(&["Traités", "Quarantaine"])
        .await
        .unwrap();
    c.select("INBOX").await.unwrap();
    let uids = c.uids().await.unwrap();
    assert_eq!(uids.len(), 2);
    c.move_to(uids[0], "Traités").await.unwrap();
    assert_eq!(c.uids().await.unwrap(), vec![uids[1]]);
    c.move_to(uids[1], "Quarantaine").await.unwrap();
    assert!(c.uids().await.unwrap().is_empty());
    assert_eq!(c.select("INBOX").await.unwrap().exists, 0);

    let t = c.select("Traités").await.unwrap();
    assert_eq!(t.exists, 1);
    let moved = c.uids().await.unwrap();
    assert_eq!(
        c.fetch_raw(moved[0]).await.unwrap().as_deref(),
        Some(&raw[..])
    );
    c.select("Quarantaine").await.unwrap();
    let q = c.uids().await.unwrap();
    assert_eq!(
        c.fetch_raw(q[0]).await.unwrap().as_deref(),
        Some(&other[..])
    );
    c.logout().await;
    // Seen by an independent client: INBOX empty, nothing lost, same bytes.
    let counts = m.counts(&u);
    assert_eq!(
        (counts["INBOX"], counts["Traités"], counts["Quarantaine"]),
        (0, 1, 1),
        "{counts:?}"
    );
    assert_eq!(m.fetch(&u, "Traités"), vec![raw]);
}

#[tokio::test]
async fn move_without_move_capability_expunges_only_that_uid() {
    let m = mailsys();
    let u = user("nomove");
    let (first, second, third) = (
        message(&u, "first"),
        message(&u, "second"),
        message(&u, "third"),
    );
    for raw in [&first, &second, &third] {
        append(m, &u, raw);
    }
    // Someone else flagged the third message \Deleted without expunging it.
    imaplib(
        m,
        &u,
        "M.select('INBOX')\nM.store('3', '+FLAGS', '\\\\Deleted')",
    );
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    assert!(c.has_capability("UIDPLUS"));
    c.ignore_capability("MOVE");
    assert!(!c.has_capability("move"));
    c.ensure_mailboxes(&["Traités"]).await.unwrap();
    c.select("INBOX").await.unwrap();
    let uids = c.uids().await.unwrap();
    assert_eq!(uids.len(), 2, "a \\Deleted message is not listed");
    assert_eq!(c.size(uids[0]).await.unwrap(), Some(first.len() as u32));
    assert_eq!(c.size(9999).await.unwrap(), None);

    c.move_to(uids[0], "Traités").await.unwrap();
    assert_eq!(c.uids().await.unwrap(), vec![uids[1]]);
    // COPY + STORE + UID EXPUNGE: the other \Deleted message is still there.
    let state = c.select("INBOX").await.unwrap();
    assert_eq!(state.exists, 2);

    // Neither MOVE nor UIDPLUS: copied and flagged, never expunged.
    c.ignore_capability("UIDPLUS");
    c.move_to(uids[1], "Traités").await.unwrap();
    assert!(c.uids().await.unwrap().is_empty());
    assert_eq!(c.select("INBOX").await.unwrap().exists, 2);

    c.select("Traités").await.unwrap();
    let moved = c.uids().await.unwrap();
    assert_eq!(moved.len(), 2);
    assert_eq!(
        c.fetch_raw(moved[0]).await.unwrap().as_deref(),
        Some(&first[..])
    );
    assert_eq!(
        c.fetch_raw(moved[1]).await.unwrap().as_deref(),
        Some(&second[..])
    );
    c.logout().await;
}

#[tokio::test]
async fn idle_does_not_miss_mail_reported_before_it() {
    let m = mailsys();
    let u = user("early");
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    c.select("INBOX").await.unwrap();
    assert!(c.uids().await.unwrap().is_empty());
    submit(m, &u, &message(&u, "early-bird")).await;
    // Wait (with another session) until Dovecot has it, then let this session hear of it.
    let mut other = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    wait_for_messages(&mut other, "INBOX", 1).await;
    other.logout().await;
    c.noop().await.unwrap();
    let started = Instant::now();
    let (c, outcome) = c.idle_wait(Duration::from_secs(30)).await.unwrap();
    assert_eq!(outcome, IdleOutcome::NewData);
    assert!(started.elapsed() < Duration::from_secs(5));
    c.logout().await;
}

#[tokio::test]
async fn idle_wakes_up_on_new_mail_and_times_out_otherwise() {
    let m = mailsys();
    let u = user("idle");
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    c.select("INBOX").await.unwrap();

    let started = Instant::now();
    let (mut c, outcome) = c.idle_wait(Duration::from_secs(2)).await.unwrap();
    assert_eq!(outcome, IdleOutcome::Timeout);
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(10)
    );
    // The session is usable after IDLE.
    assert!(c.uids().await.unwrap().is_empty());

    let to = u.clone();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        submit(mailsys(), &to, &message(&to, "wake-up")).await;
    });
    let started = Instant::now();
    let (mut c, outcome) = c.idle_wait(Duration::from_secs(60)).await.unwrap();
    assert_eq!(outcome, IdleOutcome::NewData);
    assert!(started.elapsed() < Duration::from_secs(30));
    sender.await.unwrap();
    assert_eq!(c.uids().await.unwrap().len(), 1);
    c.logout().await;
}

#[tokio::test]
async fn smtp_submission_starttls_auth_delivers() {
    let m = mailsys();
    let u = user("sub");
    let sender = SmtpSender::new(&smtp_settings(m, TlsMode::Starttls, Some(&u))).unwrap();
    assert!(sender.test_connection().await.unwrap());
    // Bare LF line endings are sent as CRLF.
    let raw = format!(
        "From: <teleexpertise@hopital.test>\nTo: <{u}>\nSubject: bare-lf\nDate: Fri, 27 Nov 2026 10:00:00 +0100\nMessage-ID: <bare-lf@hopital.test>\n\nligne 1\nligne 2\n"
    );
    sender
        .send_raw(
            "teleexpertise@hopital.test",
            std::slice::from_ref(&u),
            raw.as_bytes(),
        )
        .await
        .unwrap();
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    let uids = wait_for_messages(&mut c, "INBOX", 1).await;
    let got = c.fetch_raw(uids[0]).await.unwrap().unwrap();
    let expected = raw.replace('\n', "\r\n");
    assert!(
        got.ends_with(expected.as_bytes()),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(!got.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    c.logout().await;
}

#[tokio::test]
async fn smtp_implicit_tls_with_client_certificate_delivers() {
    let m = mailsys();
    let u = user("smtps");
    let mut s = smtp_settings(m, TlsMode::Implicit, None);
    s.client_certificate = Some(common::user_cert("imapclient"));
    s.client_key = Some(common::user_key("imapclient"));
    let sender = SmtpSender::new(&s).unwrap();
    assert!(sender.test_connection().await.unwrap());
    let raw = message(&u, "smtps-cert");
    sender
        .send_raw("teleexpertise@hopital.test", std::slice::from_ref(&u), &raw)
        .await
        .unwrap();
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    let uids = wait_for_messages(&mut c, "INBOX", 1).await;
    let got = c.fetch_raw(uids[0]).await.unwrap().unwrap();
    assert!(got.ends_with(&raw));
    c.logout().await;
    // Postfix saw and verified the certificate (its Received header says so).
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("Client CN \"teleexpertise@hopital.test\"") && text.contains("(verified OK)"),
        "{text}"
    );
}

#[tokio::test]
async fn smtp_implicit_tls_with_auth_delivers() {
    let m = mailsys();
    let u = user("smtpsauth");
    let sender = SmtpSender::new(&smtp_settings(m, TlsMode::Implicit, Some(&u))).unwrap();
    let raw = message(&u, "smtps-auth");
    sender
        .send_raw(&u, std::slice::from_ref(&u), &raw)
        .await
        .unwrap();
    let mut c = ImapClient::connect(&imap_settings(m, &u, TlsMode::Implicit, ImapAuth::Plain))
        .await
        .unwrap();
    wait_for_messages(&mut c, "INBOX", 1).await;
    c.logout().await;
}

#[tokio::test]
async fn smtp_rejected_recipient_is_permanent() {
    let m = mailsys();
    // Unauthenticated, outside the local domains: Postfix refuses to relay (554).
    let sender = SmtpSender::new(&smtp_settings(m, TlsMode::Starttls, None)).unwrap();
    let err = sender
        .send_raw(
            "teleexpertise@hopital.test",
            &["someone@elsewhere.example".into()],
            &message("x", "relay"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn smtp_wrong_password_and_wrong_ca_are_temporary() {
    let m = mailsys();
    let u = user("smtpbad");
    let mut s = smtp_settings(m, TlsMode::Starttls, Some(&u));
    s.password_file = Some(bad_password_file());
    let err = SmtpSender::new(&s)
        .unwrap()
        .send_raw(&u, std::slice::from_ref(&u), &message(&u, "badpw"))
        .await
        .unwrap_err();
    // 535: a configuration problem to fix, not a reason to give up on the message.
    assert!(
        matches!(&err, SendError::Temporary(t) if t.contains("535")),
        "{err:?}"
    );

    let mut s = smtp_settings(m, TlsMode::Implicit, Some(&u));
    s.ca_file = Some(common::pki().join("other-ca.crt"));
    let sender = SmtpSender::new(&s).unwrap();
    let err = sender
        .send_raw(&u, std::slice::from_ref(&u), &message(&u, "wrongca"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Temporary(t) if t.contains("certificate")),
        "{err:?}"
    );
    assert!(sender.test_connection().await.is_err());

    // check-config --connect logs in: a wrong password shows there too.
    let mut s = smtp_settings(m, TlsMode::Starttls, Some(&u));
    s.password_file = Some(bad_password_file());
    let err = SmtpSender::new(&s)
        .unwrap()
        .test_connection()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("535"), "{err}");
}

#[tokio::test]
async fn smtp_connection_refused_is_temporary() {
    let m = mailsys();
    let mut s = smtp_settings(m, TlsMode::Starttls, None);
    s.port = closed_port();
    let err = SmtpSender::new(&s)
        .unwrap()
        .send_raw(
            "teleexpertise@hopital.test",
            &["x@hopital.test".into()],
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Temporary(_)), "{err:?}");
}

#[tokio::test]
async fn smtp_invalid_address_is_permanent() {
    let m = mailsys();
    let sender = SmtpSender::new(&smtp_settings(m, TlsMode::Starttls, None)).unwrap();
    let err = sender
        .send_raw(
            "teleexpertise@hopital.test",
            &["not an address".into()],
            b"x\r\n",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A one-connection fake server on loopback: sends `greeting`, then answers each line it reads
/// with `answer(line)` (None: close). Returns its port and everything the client sent.
async fn fake_server(
    greeting: &'static str,
    answer: fn(&str) -> Option<String>,
) -> (u16, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        let mut seen = String::new();
        w.write_all(greeting.as_bytes()).await.unwrap();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            match answer(line.trim_end()) {
                Some(reply) => {
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        seen
    });
    (port, task)
}

#[tokio::test]
async fn imap_starttls_refused_never_goes_on_in_plaintext() {
    let m = mailsys();
    let (port, server) = fake_server("* OK fake IMAP\r\n", |line| {
        Some(if line.starts_with("T0 STARTTLS") {
            "T0 BAD no TLS here\r\n".to_string()
        } else {
            "* BAD unexpected\r\n".to_string()
        })
    })
    .await;
    let mut s = imap_settings(m, &user("nostarttls"), TlsMode::Starttls, ImapAuth::Plain);
    s.port = port;
    let err = ImapClient::connect(&s).await.unwrap_err();
    assert_eq!(err.step(), Some("starttls"), "{err}");
    let seen = server.await.unwrap();
    assert_eq!(
        seen, "T0 STARTTLS\r\n",
        "nothing but STARTTLS was sent in clear"
    );
}

#[tokio::test]
async fn imap_implicit_tls_against_a_plaintext_server_fails_in_tls() {
    let m = mailsys();
    let (port, _server) = fake_server("* OK plaintext IMAP\r\n", |_| None).await;
    let mut s = imap_settings(m, &user("plainsrv"), TlsMode::Implicit, ImapAuth::Plain);
    s.port = port;
    let err = ImapClient::connect(&s).await.unwrap_err();
    assert_eq!(err.step(), Some("tls"), "{err}");
}

#[tokio::test]
async fn smtp_without_starttls_sends_nothing_in_clear() {
    let m = mailsys();
    let (port, server) = fake_server("220 fake ESMTP\r\n", |line| {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        Some(match verb.as_str() {
            "EHLO" => "250-fake\r\n250 AUTH PLAIN LOGIN\r\n".to_string(),
            "QUIT" => "221 bye\r\n".to_string(),
            _ => "250 ok\r\n".to_string(),
        })
    })
    .await;
    let u = user("nosmtptls");
    let mut s = smtp_settings(m, TlsMode::Starttls, Some(&u));
    s.port = port;
    let err = SmtpSender::new(&s)
        .unwrap()
        .send_raw(&u, std::slice::from_ref(&u), &message(&u, "clear"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Temporary(_)), "{err:?}");
    let seen = server.await.unwrap();
    assert!(!seen.contains("AUTH") && !seen.contains("MAIL"), "{seen}");
}
