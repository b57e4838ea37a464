//! The outbox against a real Postfix: a message the relay accepted and then bounced is recorded
//! as failed and reported to the admin; a message for a recipient without a certificate is
//! held, never sent in clear. (Refusals at SMTP time are classified in tests/mail_edges.rs.)

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::time::Duration;

use chrono::Utc;
use common::{MailSystem, open_as};
use gateway::{ADMIN, Db, Gateway};
use teleavis::address::EmailAddress;
use teleavis::mail::compose::Outgoing;
use teleavis::store::OutboxStatus;

const T: Duration = Duration::from_secs(60);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Queues a notice to `to` exactly as the intake does, in its own transaction.
fn enqueue(gw: &Gateway, to: &str) -> (i64, String) {
    let settings = teleavis::config::load_and_validate(&gw.config).expect("config");
    rt().block_on(async {
        let store = gw.store().await;
        let mut tx = store.begin().await.unwrap();
        let m = Outgoing {
            from_name: settings.gateway.display_name.clone(),
            from: settings.gateway.address.clone(),
            to: vec![EmailAddress::parse(to).unwrap()],
            reply_to: None,
            subject: "Téléexpertise — Test".into(),
            thread: None,
            in_reply_to: None,
            references: vec![],
            automatic: true,
            text: "Bonjour".into(),
            attachments: vec![],
        };
        let r = teleavis::outbox::enqueue(
            &store,
            &mut tx,
            &settings,
            teleavis::store::OutboxKind::Notice,
            &m,
            Utc::now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        r
    })
}

fn row(gw: &Gateway, id: i64) -> teleavis::store::OutboxRow {
    rt().block_on(async { gw.store().await.get_outbox(id).await.unwrap().unwrap() })
}

#[test]
fn permanent_failure_is_recorded_and_reported_to_the_admin() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    // Signed only when no certificate is known, so the message reaches Postfix, which accepts it
    // on the submission port and bounces it: no delivery outside the test domains.
    gw.start_with_env(&[("TELEAVIS__SMIME__ENCRYPT_OUTGOING", "when-possible")]);
    let (id, message_id) = enqueue(&gw, "quelquun@ailleurs.example");
    let failed = gw.wait_until("the bounce to fail the row", T, || {
        let r = row(&gw, id);
        (r.status == OutboxStatus::Failed).then_some(r)
    });
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("bounced")),
        "{:?}",
        failed.last_error
    );
    assert!(failed.failed_at.is_some());
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", 1, T),
        "no report to the admin:\n{}",
        gw.log()
    );
    let report = open_as("admin", &mail.fetch(ADMIN, "INBOX").remove(0));
    assert_eq!(report["verified"], true);
    let text = report["text"].as_str().unwrap();
    assert!(text.contains("en échec"), "{text}");
    assert!(text.contains(&message_id), "{text}");
    assert!(text.contains("quelquun@ailleurs.example"), "{text}");
    gw.stop();
}

#[test]
fn recipient_without_certificate_is_held_not_sent_in_clear() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    // A local mailbox that exists but whose certificate the gateway has never seen.
    let (id, message_id) = enqueue(&gw, "inconnu@cabinet.test");
    let held = gw.wait_until("the row to be held", T, || {
        let r = row(&gw, id);
        (r.status == OutboxStatus::Held).then_some(r)
    });
    assert!(
        held.last_error
            .as_deref()
            .unwrap_or("")
            .contains("inconnu@cabinet.test")
    );
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", 1, T),
        "no alert to the admin:\n{}",
        gw.log()
    );
    let alert = open_as("admin", &mail.fetch(ADMIN, "INBOX").remove(0));
    assert!(alert["text"].as_str().unwrap().contains(&message_id));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        mail.count("inconnu@cabinet.test", "INBOX"),
        0,
        "nothing may go out in clear"
    );
    gw.stop();
}
