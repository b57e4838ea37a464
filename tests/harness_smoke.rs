//! The test harness itself works: a real Postfix + Dovecot, S/MIME mail made with openssl,
//! plus-addressing, IMAP EXTERNAL, and a Postfix outage.

mod common;

use std::time::{Duration, Instant};

use common::*;

const GATEWAY: &str = "teleexpertise@hopital.test";
const TAGGED: &str = "teleexpertise+infectio@hopital.test";

#[test]
fn mail_system_smime_plus_address_external_and_outage() {
    let t0 = Instant::now();
    let ms = MailSystem::start();

    // A GP's signed and encrypted request, made by openssl cms as a mail client would.
    let raw = compose_signed_encrypted(
        "gp",
        TAGGED,
        "gateway",
        "Demande de téléexpertise",
        "Nom de naissance : DUPONT\nPrénom(s) : Éric\nConsentement du patient : oui\n",
        &[],
    );
    assert!(raw.windows(2).any(|w| w == b"\r\n"), "compose writes CRLF");
    ms.send_raw("dr.martin@cabinet.test", &[TAGGED], &raw);
    assert!(
        ms.wait_for_count(GATEWAY, "INBOX", 1, Duration::from_secs(15)),
        "message not delivered to {GATEWAY}'s INBOX\n{}",
        ms.logs()
    );

    let got = ms.fetch(GATEWAY, "INBOX");
    assert_eq!(got.len(), 1);
    let got = &got[0];
    // body byte-identical; the original headers kept, Received/Delivered-To added
    assert_eq!(
        split_message(got).1,
        split_message(&raw).1,
        "body changed in transit"
    );
    let (orig_head, _) = split_message(&raw);
    let got_head = String::from_utf8_lossy(split_message(got).0).into_owned();
    for line in String::from_utf8_lossy(orig_head)
        .split("\r\n")
        .filter(|l| !l.is_empty())
    {
        assert!(
            got_head.contains(line),
            "header line {line:?} lost:\n{got_head}"
        );
    }
    assert_eq!(header_values(got, "Delivered-To"), vec![TAGGED.to_string()]);
    assert!(!header_values(got, "Received").is_empty());

    // the gateway's key opens it; the signer is the GP
    let opened = open_as("gateway", got);
    assert_eq!(opened["signed_by"], "dr.martin@cabinet.test", "{opened:#}");
    assert_eq!(opened["verified"], true);
    assert_eq!(opened["encrypted"], true);
    assert!(
        opened["text"]
            .as_str()
            .unwrap()
            .contains("Prénom(s) : Éric"),
        "{opened:#}"
    );
    // someone else's key does not
    assert!(try_open_as("gp2", got).is_err());

    // counts and folders (missing folders count 0)
    let counts = ms.counts(GATEWAY);
    assert_eq!(counts["INBOX"], 1);
    assert_eq!(counts["Traités"], 0);
    assert_eq!(ms.count(GATEWAY, "Quarantaine"), 0);

    // AUTHENTICATE EXTERNAL with the imapclient certificate (CN = the gateway address)
    let folders = ms
        .try_external_login("imapclient")
        .expect("IMAP EXTERNAL login");
    assert!(folders.iter().any(|f| f == "INBOX"), "{folders:?}");
    // a certificate from another CA is refused
    assert!(ms.try_external_login("otherca").is_err());

    // submission requires AUTH (or a client certificate)
    ms.submit_raw(
        "dr.martin@cabinet.test",
        "dr.martin@cabinet.test",
        &["infectio@hopital.test"],
        &raw,
    );
    assert!(ms.wait_for_count("infectio@hopital.test", "INBOX", 1, Duration::from_secs(15)));

    // Postfix outage: sends fail, then work again after the restart on the same port
    let port = ms.smtp_port;
    ms.stop_postfix();
    let err = ms
        .try_send_raw("dr.martin@cabinet.test", &[GATEWAY], &raw)
        .expect_err("send must fail while Postfix is stopped");
    assert!(!err.is_empty());
    ms.start_postfix();
    assert_eq!(ms.smtp_port, port);
    ms.send_raw("dr.martin@cabinet.test", &[GATEWAY], &raw);
    assert!(
        ms.wait_for_count(GATEWAY, "INBOX", 2, Duration::from_secs(15)),
        "not delivered after the Postfix restart\n{}",
        ms.logs()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "harness too slow: {:?}",
        t0.elapsed()
    );
}

#[test]
fn two_mail_systems_side_by_side() {
    let a = MailSystem::start();
    let b = MailSystem::start();
    assert_ne!(a.smtp_port, b.smtp_port);
    let msg =
        b"From: dr.bua@cabinet.test\r\nTo: pneumo@hopital.test\r\nSubject: a\r\n\r\nhello\r\n";
    a.send_raw("dr.bua@cabinet.test", &["pneumo@hopital.test"], msg);
    assert!(a.wait_for_count("pneumo@hopital.test", "INBOX", 1, Duration::from_secs(15)));
    assert_eq!(b.count("pneumo@hopital.test", "INBOX"), 0);
    // no relaying outside the local domains
    assert!(
        a.try_send_raw("dr.bua@cabinet.test", &["someone@example.org"], msg)
            .is_err()
    );
}
