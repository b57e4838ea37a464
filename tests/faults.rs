//! Fault tests (issue 12), each bounded in time, through a real Postfix and Dovecot: claims a
//! killed daemon left behind are sent at once after the restart (SQLite and PostgreSQL), a
//! burst survives several SIGKILLs with every request handled exactly once, a Postfix outage
//! under a kept SMTP connection ends with every message sent exactly once, the IMAP backoff
//! forgets an old outage after a session that worked, and an oversized message is quarantined
//! from its `RFC822.SIZE` without its body being downloaded. In their own binary so they run
//! beside the other test files.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{MailSystem, compose_signed_encrypted, user_email};
use gateway::{ADMIN, Db, GATEWAY, Gateway, INFECTIO, postgres_available};
use sha2::Digest as _;

const T: Duration = Duration::from_secs(60);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn request(n: usize) -> Vec<u8> {
    let form =
        std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
            .unwrap();
    compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        &format!("Demande {n}"),
        // a distinct signed text: the same one signed in the same second is a replay
        &format!("{form}\n-- \nDemande {n}\n"),
        &[],
    )
}

fn send_request(mail: &MailSystem, raw: &[u8]) {
    mail.send_raw(
        &user_email("gp"),
        &["teleexpertise+infectio@hopital.test"],
        raw,
    );
}

/// A request with an attachment of `size` bytes that do not compress away; also returns the
/// attachment.
fn request_with_attachment(subject: &str, size: u32) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("examens.pdf");
    let data: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&pdf, &data).unwrap();
    let attach = format!("{}:application/pdf", pdf.display());
    let form =
        std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
            .unwrap();
    let raw = compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        subject,
        &form,
        &["--attach", &attach],
    );
    (raw, data)
}

/// Delivers `raw` into `rcpt`'s mailbox over Dovecot's LMTP, without Postfix (down in a test).
fn lmtp_deliver(mail: &MailSystem, rcpt: &str, raw: &[u8]) {
    let stream = TcpStream::connect(("127.0.0.1", mail.lmtp_port)).expect("LMTP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut reply = |w: &mut TcpStream, line: Option<&[u8]>| -> String {
        if let Some(l) = line {
            w.write_all(l).unwrap();
        }
        let mut text = String::new();
        loop {
            let mut l = String::new();
            reader.read_line(&mut l).expect("LMTP reply");
            text.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return text;
            }
        }
    };
    for (cmd, want) in [
        (None, "220"),
        (Some(b"LHLO faults.test\r\n".to_vec()), "250"),
        (
            Some(b"MAIL FROM:<dr.martin@cabinet.test>\r\n".to_vec()),
            "250",
        ),
        (Some(format!("RCPT TO:<{rcpt}>\r\n").into_bytes()), "250"),
        (Some(b"DATA\r\n".to_vec()), "354"),
    ] {
        let r = reply(&mut w, cmd.as_deref());
        assert!(r.starts_with(want), "LMTP: {r}");
    }
    let mut data = Vec::with_capacity(raw.len() + 16);
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    let r = reply(&mut w, Some(&data));
    assert!(r.starts_with("250"), "LMTP DATA: {r}");
    let _ = w.write_all(b"QUIT\r\n");
}

/// For 3 s, the GP's INBOX and the group's hold exactly `n` messages each: one
/// acknowledgement and one forward per request, none sent twice.
fn nothing_more_arrives(mail: &MailSystem, gp: &str, n: usize) {
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        assert_eq!(
            mail.count(gp, "INBOX"),
            n,
            "an acknowledgement was sent twice"
        );
        assert_eq!(mail.count(INFECTIO, "INBOX"), n, "a forward was sent twice");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Queues a message to the admin and claims it for an hour under the name of a worker that is
/// gone, as a daemon killed while sending leaves it.
fn claimed_by_the_dead(gw: &Gateway) -> i64 {
    rt().block_on(async {
        let store = gw.store().await;
        let mut tx = store.begin().await.unwrap();
        let new = teleavis::store::NewOutgoing {
            thread_id: None,
            kind: teleavis::store::OutboxKind::Notice,
            envelope_from: GATEWAY.into(),
            recipients: vec![ADMIN.into()],
        };
        let q = store
            .enqueue(&mut tx, &new, "hopital.test", Utc::now(), |mid| {
                Ok::<_, std::io::Error>(
                    format!(
                        "Message-ID: {mid}\r\nFrom: <{GATEWAY}>\r\nTo: <{ADMIN}>\r\n\
                         Subject: claimed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                         left behind\r\n"
                    )
                    .into_bytes(),
                )
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let claimed = store
            .claim(Utc::now(), "gone-host:1:0", Duration::from_secs(3600))
            .await
            .unwrap()
            .expect("the row is claimable");
        assert_eq!(claimed.row.id, q.id);
        store.close().await;
        q.id
    })
}

fn claims_of_a_killed_daemon_are_sent_at_once(db: Db) {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, db);
    gw.start();
    // Migrated and running: stop it, and leave a claim as a SIGKILL mid-send would.
    assert!(gw.stop().success());
    let id = claimed_by_the_dead(&gw);
    let started = Instant::now();
    gw.start();
    // Not after the hour-long claim: within seconds (the target is 10 s).
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", 1, Duration::from_secs(10)),
        "row {id} not sent within 10 s of the restart:\n{}",
        gw.log()
    );
    eprintln!("claimed row sent {:?} after the restart", started.elapsed());
    let row = rt().block_on(async { gw.store().await.get_outbox(id).await.unwrap().unwrap() });
    assert_eq!(row.status, teleavis::store::OutboxStatus::Sent);
    assert!(gw.stop().success());
    assert_eq!(mail.count(ADMIN, "INBOX"), 1, "sent once");
}

#[test]
fn claims_of_a_killed_daemon_are_sent_at_once_sqlite() {
    claims_of_a_killed_daemon_are_sent_at_once(Db::Sqlite);
}

#[test]
fn claims_of_a_killed_daemon_are_sent_at_once_postgres() {
    if postgres_available() {
        claims_of_a_killed_daemon_are_sent_at_once(Db::Postgres);
    }
}

#[test]
fn a_burst_with_sigkills_handles_every_request_exactly_once() {
    const N: usize = 12;
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let requests: Vec<Vec<u8>> = (0..N).map(request).collect();
    for r in &requests {
        send_request(&mail, r);
    }
    // Killed three times while it works through the burst, restarted each time.
    for done in [2, 5, 8] {
        let deadline = Instant::now() + T;
        while mail.count(GATEWAY, "Traités") < done && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        gw.kill();
        gw.start();
    }
    let gp = user_email("gp");
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", N, T),
        "{}",
        gw.log()
    );
    assert!(mail.wait_for_count(&gp, "INBOX", N, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", N, T), "{}", gw.log());
    nothing_more_arrives(&mail, &gp, N);
    assert_eq!(gw.threads().len(), N, "one thread per request");
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    assert_eq!(mail.count(GATEWAY, "Quarantaine"), 0, "{}", gw.log());
    assert!(gw.stop().success());
}

#[test]
fn postfix_down_for_a_while_then_every_message_is_sent_exactly_once() {
    const N: usize = 5;
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let gp = user_email("gp");
    // A first request: the workers now keep an SMTP connection open.
    send_request(&mail, &request(0));
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 1, T), "{}", gw.log());
    assert!(mail.wait_for_count(&gp, "INBOX", 1, T), "{}", gw.log());
    // Postfix goes down under that connection; requests still arrive (straight into Dovecot).
    mail.stop_postfix();
    for n in 1..N {
        lmtp_deliver(&mail, "teleexpertise+infectio@hopital.test", &request(n));
    }
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", N, T),
        "{}",
        gw.log()
    );
    gw.wait_until("every new row retried at least once", T, || {
        let rows = rt().block_on(async {
            gw.store()
                .await
                .outbox_by_status(teleavis::store::OutboxStatus::Pending)
                .await
                .unwrap()
        });
        (rows.len() >= 2 * (N - 1) && rows.iter().any(|r| r.attempts >= 1)).then_some(())
    });
    mail.start_postfix();
    assert!(mail.wait_for_count(&gp, "INBOX", N, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", N, T), "{}", gw.log());
    nothing_more_arrives(&mail, &gp, N);
    assert_eq!(gw.threads().len(), N);
    assert!(gw.stop().success());
}

#[test]
fn imap_backoff_forgets_an_old_outage_after_a_session_that_worked() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    send_request(&mail, &request(0));
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );

    // A long outage: the reconnect delay doubles (1, 2, 4, 8 s, with jitter)...
    mail.stop_dovecot();
    std::thread::sleep(Duration::from_secs(8));
    mail.start_dovecot();
    send_request(&mail, &request(1));
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 2, Duration::from_secs(30)),
        "no reconnect after the outage:\n{}",
        gw.log()
    );
    // ...and a session that worked resets it: a short blip costs about a second, not the
    // 16 s the next doubling would have been.
    mail.stop_dovecot();
    std::thread::sleep(Duration::from_millis(500));
    mail.start_dovecot();
    let back = Instant::now();
    send_request(&mail, &request(2));
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 3, Duration::from_secs(5)),
        "not reconnected within 5 s of a short blip:\n{}",
        gw.log()
    );
    eprintln!(
        "reconnected and ingested {:?} after the blip",
        back.elapsed()
    );
    assert_eq!(gw.threads().len(), 3);
    assert!(gw.stop().success());
}

#[test]
fn an_oversized_message_is_quarantined_without_downloading_its_body() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start_with_env(&[("TELEAVIS__LIMITS__MAX_MESSAGE_BYTES", "100000")]);
    let (big, _) = request_with_attachment("Demande volumineuse", 400_000);
    assert!(big.len() > 500_000);
    send_request(&mail, &big);
    assert!(
        mail.wait_for_count(GATEWAY, "Quarantaine", 1, T),
        "{}",
        gw.log()
    );
    let on_server = mail.fetch(GATEWAY, "Quarantaine").remove(0);
    let q = gw.quarantine();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], "oversized");
    let id = q[0]["id"].as_i64().expect("quarantine id");
    let row = rt().block_on(async { gw.store().await.get_inbound(id).await.unwrap().unwrap() });
    // What was stored is the header block alone; the size is the whole message's.
    assert_eq!(row.meta.size, on_server.len() as u64);
    assert!(row.raw.len() < 10_000, "{} bytes stored", row.raw.len());
    assert!(
        on_server.starts_with(&row.raw),
        "the stored headers are the message's"
    );
    assert!(row.raw.ends_with(b"\r\n\r\n"));
    assert!(
        row.meta
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("not downloaded")
    );
    // The admin is alerted; the sender gets nothing.
    assert!(mail.wait_for_count(ADMIN, "INBOX", 1, T), "{}", gw.log());
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    assert!(gw.log().contains("not downloaded"));
    assert!(gw.stop().success());
}

/// Threads in the gateway's database (through `db_url`: the command line would read the
/// configuration file's database, not the one given to the daemon by environment).
fn thread_count(gw: &Gateway) -> usize {
    rt().block_on(async {
        gw.store()
            .await
            .list_threads(None, None)
            .await
            .unwrap()
            .len()
    })
}

/// A PostgreSQL of the test's own (initdb + pg_ctl on a free port in a temp dir), so that
/// restarting it disturbs no other test on the shared server. Stopped on drop.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePg {
    /// `None` (with a notice) when the PostgreSQL server binaries are not installed.
    fn start() -> Option<PrivatePg> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("pg_ctl").exists());
        let Some(bin) = bin else {
            eprintln!("\n!!!!! NOTICE: no PostgreSQL server binaries: test SKIPPED !!!!!\n");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("teleavis-pg-")
            .tempdir()
            .unwrap();
        let ok = std::process::Command::new("chown")
            .args(["postgres:", &dir.path().display().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown the private PostgreSQL folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePg { dir, bin, port };
        let data = pg.dir.path().join("data");
        pg.as_postgres(&[
            "initdb",
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        pg.ctl("start");
        let out = std::process::Command::new("psql")
            .args([&pg.url("postgres"), "-qAtc", "CREATE DATABASE teleavis"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Some(pg)
    }

    fn as_postgres(&self, args: &[&str]) {
        let tool = self.bin.join(args[0]);
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(tool)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    fn ctl(&self, action: &str) {
        let d = self.dir.path();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            d.display()
        );
        let (data, log) = (d.join("data"), d.join("postgres.log"));
        let mut args = vec!["pg_ctl", "-D", data.to_str().unwrap(), "-w", "-t", "60"];
        if action == "start" {
            args.extend(["-l", log.to_str().unwrap(), "-o", &opts]);
        } else {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.as_postgres(&args);
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn postgres_restarted_under_the_daemon_loses_nothing() {
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let url = pg.url("teleavis");
    gw.db_url = url.clone();
    gw.start_with_env(&[("TELEAVIS__DATABASE__URL", &url)]);
    let gp = user_email("gp");
    for n in 0..2 {
        send_request(&mail, &request(n));
    }
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 2, T), "{}", gw.log());
    // Down for a few seconds while two more requests arrive, then up again.
    pg.ctl("stop");
    for n in 2..4 {
        send_request(&mail, &request(n));
    }
    assert!(mail.wait_for_count(GATEWAY, "INBOX", 2, T));
    std::thread::sleep(Duration::from_secs(2));
    assert!(gw.is_running(), "the daemon must outlive its database");
    assert_eq!(
        mail.count(GATEWAY, "INBOX"),
        2,
        "nothing leaves INBOX uncommitted"
    );
    pg.ctl("start");
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 4, T),
        "{}",
        gw.log()
    );
    assert!(mail.wait_for_count(&gp, "INBOX", 4, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 4, T), "{}", gw.log());
    nothing_more_arrives(&mail, &gp, 4);
    assert_eq!(thread_count(&gw), 4);
    assert!(gw.stop().success());
}

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("teleavis-disk-")
            .tempdir()
            .unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a small tmpfs (root needed): {out:?}"
        );
        SmallDisk(dir)
    }

    /// Writes zeros until the disk is full; returns the filler's path.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .output();
    }
}

#[test]
fn a_full_database_disk_keeps_mail_in_the_inbox_alerts_and_recovers() {
    let disk = SmallDisk::mount("24m");
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let url = format!("sqlite://{}/teleavis.db", disk.0.path().display());
    gw.db_url = url.clone();
    gw.start_with_env(&[("TELEAVIS__DATABASE__URL", &url)]);
    let filler = disk.fill();
    // A request larger than any space SQLite may have left in its files.
    let (big, _) = request_with_attachment("Demande avec examens", 1_500_000);
    send_request(&mail, &big);
    // The admin hears of it straight over SMTP; the message waits in INBOX, the daemon runs.
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", 1, T),
        "no alert:\n{}",
        gw.log()
    );
    assert!(gw.is_running());
    assert_eq!(mail.count(GATEWAY, "INBOX"), 1, "{}", gw.log());
    assert_eq!(mail.count(GATEWAY, "Traités"), 0);
    // Space returns: the message is handled.
    std::fs::remove_file(filler).unwrap();
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 1, T), "{}", gw.log());
    assert_eq!(thread_count(&gw), 1);
    assert!(gw.stop().success());
    drop(disk);
}

#[test]
fn a_25_mib_request_is_processed_with_its_attachment_byte_identical() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    // 13.7 MB of attachment: 24.5 MiB on the wire once base64, signed, encrypted and base64
    // again, under the default limits.max_message_bytes of 25 MiB.
    let (big, data) = request_with_attachment("Demande avec imagerie", 13_700_000);
    eprintln!("request of {:.1} MiB", big.len() as f64 / 1_048_576.0);
    assert!(big.len() > 24 * 1_048_576 && big.len() < 25 * 1_048_576);
    send_request(&mail, &big);
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, Duration::from_secs(120)),
        "{}",
        gw.log()
    );
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 1, Duration::from_secs(120)),
        "{}",
        gw.log()
    );
    let forward = mail.fetch(INFECTIO, "INBOX").remove(0);
    let opened = common::open_as("infectio", &forward);
    let want = hex::encode(sha2::Sha256::digest(&data));
    let shas: Vec<&str> = opened["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["sha256"].as_str())
        .collect();
    assert!(
        shas.contains(&want.as_str()),
        "attachment altered: {shas:?}"
    );
    assert!(gw.stop().success());
}
