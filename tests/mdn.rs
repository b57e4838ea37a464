//! Disposition notifications (RFC 8098) through the real Postfix and Dovecot: a request whose
//! `Disposition-Notification-To` is its authenticated sender gets a signed and encrypted MDN,
//! `processed` when its thread opens and `processed/error` when it is refused; a header naming
//! someone else gets nothing. The MDN is read by Python's `email`, as a client would.

mod common;
#[path = "common/gateway.rs"]
mod gateway;
#[path = "common/record.rs"]
mod record;

use std::process::Command;
use std::time::Duration;

use common::{
    MailSystem, compose, compose_signed_encrypted, open_as, run_ok, user_cert, user_email, user_key,
};
use gateway::{Db, GATEWAY, Gateway};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms").join(name)).unwrap()
}

/// Sends a request from the GP with a Message-ID and a Disposition-Notification-To.
fn request(mail: &MailSystem, message_id: &str, dnt: &str, form: &str) {
    let header = format!("Disposition-Notification-To: {dnt}");
    let raw = compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        "Demande d'avis",
        &fixture(form),
        &["--message-id", message_id, "--header", &header],
    );
    mail.send_raw(
        &user_email("gp"),
        &["teleexpertise+infectio@hopital.test"],
        &raw,
    );
}

/// The decrypted, verified message as Python's `email` reads it: content type, report-type,
/// the parts' types and the disposition-notification fields.
fn read_mdn(user: &str, raw: &[u8]) -> Value {
    const READ: &str = r#"
out = {"content_type": msg.get_content_type(), "report_type": msg.get_param("report-type"),
       "parts": [], "fields": {}, "text": ""}
if msg.is_multipart():
    for p in msg.get_payload():
        out["parts"].append(p.get_content_type())
        if p.get_content_type() == "message/disposition-notification":
            for block in p.get_payload():
                for k, v in block.items():
                    out["fields"][k] = str(v)
        elif p.get_content_type() == "text/plain":
            out["text"] = p.get_content()
print(json.dumps(out))
"#;
    let name = common::pki_user(user);
    let out = run_ok(
        Command::new("python3")
            .args(["-c", &format!("{}{READ}", record::UNWRAP_PY)])
            .arg(user_cert(&name))
            .arg(user_key(&name)),
        Some(raw),
    );
    serde_json::from_slice(&out).unwrap()
}

/// The GP's messages whose subject is an MDN's, decrypted and checked as the gateway's.
fn mdns(mail: &MailSystem, gp: &str) -> Vec<Value> {
    mail.fetch(gp, "INBOX")
        .into_iter()
        .filter_map(|raw| {
            let open = open_as(gp, &raw);
            let subject = open["headers"]["Subject"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            subject.contains("Accusé de traitement").then(|| {
                assert_eq!(open["verified"], true, "MDN not verified");
                assert_eq!(open["encrypted"], true, "MDN not encrypted");
                assert_eq!(
                    open["signed_by"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    GATEWAY
                );
                read_mdn(gp, &raw)
            })
        })
        .collect()
}

#[test]
fn mdn_processed_on_open_error_on_refusal_and_never_to_a_stranger() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let gp = user_email("gp");

    // A request that opens a thread: acknowledgement, then the MDN.
    request(
        &mail,
        "<req-1@cabinet.test>",
        &format!("\"Dr\" <{gp}>"),
        "case1_mycoplasme.txt",
    );
    assert!(mail.wait_for_count(&gp, "INBOX", 2, T), "{}", gw.log());
    let got = mdns(&mail, &gp);
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m["content_type"], "multipart/report");
    assert_eq!(m["report_type"], "disposition-notification");
    assert_eq!(m["parts"][0], "text/plain");
    assert_eq!(m["parts"][1], "message/disposition-notification");
    assert_eq!(m["fields"]["Original-Message-ID"], "<req-1@cabinet.test>");
    assert!(
        m["fields"]["Disposition"]
            .as_str()
            .unwrap_or_default()
            .ends_with("; processed"),
        "{m}"
    );
    assert!(
        m["text"].as_str().unwrap_or_default().contains("TE-"),
        "{m}"
    );

    // A refused request (no consent): the refusal, then a processed/error MDN with a reason.
    request(&mail, "<req-2@cabinet.test>", &gp, "missing_consent.txt");
    assert!(mail.wait_for_count(&gp, "INBOX", 4, T), "{}", gw.log());
    let got = mdns(&mail, &gp);
    assert_eq!(got.len(), 2, "{got:?}");
    let m = got
        .iter()
        .find(|m| m["fields"]["Original-Message-ID"] == "<req-2@cabinet.test>")
        .expect("the MDN of the refused request");
    assert!(
        m["fields"]["Disposition"]
            .as_str()
            .unwrap_or_default()
            .ends_with("processed/error"),
        "{m}"
    );
    assert!(
        m["fields"]["Error"]
            .as_str()
            .unwrap_or_default()
            .contains("demande incomplete"),
        "{m}"
    );

    // A header naming someone else: nothing is sent to them, nor an MDN to the GP.
    let stranger = user_email("gp2");
    request(
        &mail,
        "<req-3@cabinet.test>",
        &stranger,
        "case1_mycoplasme.txt",
    );
    assert!(mail.wait_for_count(&gp, "INBOX", 5, T), "{}", gw.log());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(mail.count(&stranger, "INBOX"), 0, "a stranger got mail");
    assert_eq!(mail.count(&gp, "INBOX"), 5);
    assert_eq!(mdns(&mail, &gp).len(), 2);

    // Unsigned: the sender is not authenticated, so nothing is sent back at all.
    let header = format!("Disposition-Notification-To: {gp}");
    let body = fixture("case1_mycoplasme.txt");
    let raw = compose(&[
        "--from",
        &gp,
        "--to",
        "teleexpertise+infectio@hopital.test",
        "--subject",
        "Demande d'avis",
        "--body",
        &body,
        "--header",
        &header,
    ]);
    mail.send_raw(&gp, &["teleexpertise+infectio@hopital.test"], &raw);
    assert!(
        mail.wait_for_count(GATEWAY, "Quarantaine", 1, T),
        "{}",
        gw.log()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        mail.count(&gp, "INBOX"),
        5,
        "an unauthenticated sender got mail"
    );
    gw.stop();
}
