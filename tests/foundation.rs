//! The foundation through a real Postfix and Dovecot: durable intake (store, commit, MOVE),
//! crash safety, the SMTP outbox with its retries, SIGTERM, and both databases.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::time::Duration;

use common::{MailSystem, compose_signed_encrypted, header_values, open_as, user_email};
use gateway::{Db, GATEWAY, Gateway, INFECTIO, postgres_available};
use sha2::{Digest, Sha256};

const T: Duration = Duration::from_secs(60);

fn case1() -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
        .unwrap()
}

/// A request from the GP, as their client makes it (signed, encrypted to the gateway).
fn request(subject: &str) -> Vec<u8> {
    compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        subject,
        // a distinct signed text: the same one signed in the same second is a replay
        &format!("{}\n-- \n{subject}\n", case1()),
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

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Runs one message through and checks what the operator and the users would see.
fn ingest_and_check(db: Db) {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, db);
    gw.start();
    send_request(&mail, &request("Demande d'avis"));

    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "not moved to Traités:\n{}",
        gw.log()
    );
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0, "INBOX must end empty");
    assert_eq!(mail.count(GATEWAY, "Quarantaine"), 0, "{}", gw.log());
    let on_server = mail.fetch(GATEWAY, "Traités").remove(0);

    // Stored byte-identical, with its hash, and marked moved.
    let row = rt().block_on(async {
        let store = gw.store().await;
        let meta = store
            .find_inbound_by_sha256(&sha256(&on_server))
            .await
            .unwrap()
            .expect("inbound row with the server copy's SHA-256");
        store.get_inbound(meta.id).await.unwrap().unwrap()
    });
    assert_eq!(
        row.raw, on_server,
        "stored bytes differ from the server copy"
    );
    assert_eq!(row.meta.outcome, "processed");
    assert_eq!(row.meta.destination.as_deref(), Some("Traités"));
    assert!(row.meta.moved_at.is_some());

    // What it caused went out through the outbox and the real Postfix.
    assert!(
        mail.wait_for_count(&user_email("gp"), "INBOX", 1, T),
        "no acknowledgement:\n{}",
        gw.log()
    );
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 1, T),
        "no forward:\n{}",
        gw.log()
    );
    let threads = gw.threads();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0]["status"], "nouvelle");
    let audit = gw.cli(&["audit", "verify"]);
    assert!(
        audit.status.success() && String::from_utf8_lossy(&audit.stdout).contains("audit chain OK"),
        "{audit:?}"
    );
    gw.stop();
}

#[test]
fn message_is_stored_byte_identical_and_moved_sqlite() {
    ingest_and_check(Db::Sqlite);
}

#[test]
fn message_is_stored_byte_identical_and_moved_postgres() {
    if postgres_available() {
        ingest_and_check(Db::Postgres);
    }
}

#[test]
fn crash_between_commit_and_move_handles_the_message_once() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start_with_env(&[("TELEAVIS_FAULT", "abort-after-commit")]);
    send_request(&mail, &request("Demande d'avis"));
    let status = gw
        .wait_exit(T)
        .unwrap_or_else(|| panic!("the fault did not fire:\n{}", gw.log()));
    assert!(!status.success());
    // Committed, not moved.
    assert_eq!(mail.count(GATEWAY, "INBOX"), 1);
    assert_eq!(
        gw.threads().len(),
        1,
        "the thread was committed before the crash"
    );

    gw.start();
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    assert_eq!(
        gw.threads().len(),
        1,
        "no duplicate thread after the restart"
    );
    let on_server = mail.fetch(GATEWAY, "Traités").remove(0);
    let rows = rt().block_on(async {
        let store = gw.store().await;
        let mid = header_values(&on_server, "Message-ID").remove(0);
        store.find_inbound_by_message_id(&mid).await.unwrap()
    });
    assert_eq!(rows.len(), 1, "the message is stored once");
    // One acknowledgement, however long we wait.
    assert!(mail.wait_for_count(&user_email("gp"), "INBOX", 1, T));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        mail.count(&user_email("gp"), "INBOX"),
        1,
        "exactly one acknowledgement"
    );
    gw.stop();
}

#[test]
fn outbox_message_arrives_signed_encrypted_with_the_convention_headers() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    send_request(&mail, &request("Demande d'avis"));
    let gp = user_email("gp");
    assert!(mail.wait_for_count(&gp, "INBOX", 1, T), "{}", gw.log());
    let ack = mail.fetch(&gp, "INBOX").remove(0);

    let tid = gw.threads()[0]["id"].as_str().unwrap().to_string();
    let shown = gw.cli_json(&["threads", "show", &tid, "--format", "json"]);
    let ack_row = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "ack")
        .expect("ack in the thread")
        .clone();
    assert_eq!(
        header_values(&ack, "Message-ID"),
        vec![ack_row["message_id"].as_str().unwrap().to_string()]
    );
    assert_eq!(
        header_values(&ack, "Auto-Submitted"),
        vec!["auto-generated"]
    );
    assert_eq!(header_values(&ack, "X-Teleavis-Thread"), vec![tid.clone()]);
    let reply_to = header_values(&ack, "Reply-To").join(" ");
    assert!(
        reply_to.contains(&format!(
            "teleexpertise+{}@hopital.test",
            tid.to_lowercase()
        )),
        "{reply_to}"
    );
    let subject = header_values(&ack, "Subject").join(" ");
    assert!(subject.contains(&format!("[{tid}]")), "{subject}");
    // No patient data in any header.
    let (head, _) = common::split_message(&ack);
    let head = String::from_utf8_lossy(head).to_lowercase();
    for secret in [
        "martin julie",
        "julie",
        "23/01/1991",
        "2 91 01",
        "291015746312381",
        "mycoplasme",
    ] {
        assert!(
            !head.contains(secret),
            "patient data {secret:?} in the headers"
        );
    }
    // Signed by the gateway, encrypted to the GP: checked with openssl, not with teleavis.
    let opened = open_as("gp", &ack);
    assert_eq!(opened["verified"], true);
    assert_eq!(opened["encrypted"], true);
    assert_eq!(
        opened["signed_by"].as_str().unwrap().to_lowercase(),
        GATEWAY
    );
    assert!(opened["text"].as_str().unwrap().contains(&tid));
    gw.stop();
}

#[test]
fn postfix_outage_is_retried_and_delivered_once() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    // The request is in the mailbox before the outage; the gateway starts during it.
    send_request(&mail, &request("Demande d'avis"));
    assert!(mail.wait_for_count(GATEWAY, "INBOX", 1, T));
    mail.stop_postfix();
    gw.start();
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );
    let tid = gw.threads()[0]["id"].as_str().unwrap().to_string();
    // The sends fail and are retried with backoff, the rows kept.
    gw.wait_until("a retried outbox row", T, || {
        let rows = rt().block_on(async {
            gw.store()
                .await
                .outbox_by_status(teleavis::store::OutboxStatus::Pending)
                .await
                .unwrap()
        });
        rows.iter().any(|r| r.attempts >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    mail.start_postfix();
    let gp = user_email("gp");
    assert!(
        mail.wait_for_count(&gp, "INBOX", 1, T),
        "not delivered after the outage:\n{}",
        gw.log()
    );
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 1, T));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(mail.count(&gp, "INBOX"), 1, "exactly one copy");
    assert_eq!(mail.count(INFECTIO, "INBOX"), 1, "exactly one copy");
    let ack = mail.fetch(&gp, "INBOX").remove(0);
    assert_eq!(header_values(&ack, "X-Teleavis-Thread"), vec![tid]);
    let sent = rt().block_on(async {
        gw.store()
            .await
            .outbox_by_status(teleavis::store::OutboxStatus::Sent)
            .await
            .unwrap()
    });
    assert!(sent.iter().all(|r| r.attempts >= 1));
    gw.stop();
}

#[test]
fn sigterm_stops_cleanly_with_exit_code_zero() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let status = gw.stop();
    assert!(status.success(), "exit status {status}:\n{}", gw.log());
    assert!(gw.log().contains("stopped"));
}

#[test]
fn systemd_is_told_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let sock_path = gw.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    gw.start_with_env(&[
        ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "400000"),
    ]);
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !(seen.contains("READY=1") && seen.matches("WATCHDOG=1").count() >= 2) {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({e}); got {seen:?}\n{}", gw.log()));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    let status = gw.stop();
    assert!(status.success());
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
}

#[test]
fn a_message_that_meets_a_bug_is_quarantined_and_the_next_still_goes_through() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start_with_env(&[("TELEAVIS_FAULT", "panic-on-subject:PANIQUE")]);
    send_request(&mail, &request("PANIQUE"));
    send_request(&mail, &request("Demande d'avis"));
    assert!(
        mail.wait_for_count(GATEWAY, "Quarantaine", 1, T),
        "{}",
        gw.log()
    );
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );
    assert!(gw.is_running(), "the daemon must survive");
    let q = gw.quarantine();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], "processing_error");
    assert_eq!(gw.threads().len(), 1);
    // Once the bug is gone, the operator reprocesses it.
    gw.stop();
    let id = q[0]["id"].to_string();
    let out = gw.cli(&["quarantine", "reprocess", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("processed"));
    assert_eq!(gw.threads().len(), 2);
    assert!(gw.quarantine().is_empty());
}

#[test]
fn uidvalidity_change_neither_loses_nor_repeats_a_message() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    // Committed, then a crash before the MOVE: the message is still in INBOX.
    gw.start_with_env(&[("TELEAVIS_FAULT", "abort-after-commit")]);
    send_request(&mail, &request("Demande d'avis"));
    gw.wait_exit(T)
        .unwrap_or_else(|| panic!("the fault did not fire:\n{}", gw.log()));
    assert_eq!(mail.count(GATEWAY, "INBOX"), 1);
    // The server renumbers the mailbox meanwhile.
    let conf = mail.dir().join("dovecot/dovecot.conf");
    let out = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(&conf)
        .args([
            "mailbox",
            "update",
            "-u",
            GATEWAY,
            "--uid-validity",
            "4242",
            "INBOX",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "doveadm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.start();
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    assert_eq!(gw.threads().len(), 1, "not handled a second time");
    let on_server = mail.fetch(GATEWAY, "Traités").remove(0);
    let rows = rt().block_on(async {
        let store = gw.store().await;
        let mid = header_values(&on_server, "Message-ID").remove(0);
        store.find_inbound_by_message_id(&mid).await.unwrap()
    });
    assert_eq!(rows.len(), 1, "stored once");
    assert_ne!(
        rows[0].uidvalidity, 4242,
        "the row keeps where it was first read"
    );
    gw.stop();
}
