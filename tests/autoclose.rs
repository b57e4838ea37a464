//! Idle threads are closed after `auto_close_days` with a compte-rendu, sent like any other
//! mail: the housekeeping pass runs here with a cutoff eight days ahead.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::sync::Arc;
use std::time::Duration;

use common::{MailSystem, compose_signed_encrypted, open_as, user_email};
use gateway::{Db, Gateway, INFECTIO};

const T: Duration = Duration::from_secs(60);

#[test]
fn idle_thread_is_closed_with_a_compte_rendu() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let form =
        std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
            .unwrap();
    let gp = user_email("gp");
    let raw = compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        "Demande d'avis",
        &form,
        &[],
    );
    mail.send_raw(&gp, &["teleexpertise+infectio@hopital.test"], &raw);
    assert!(mail.wait_for_count(&gp, "INBOX", 1, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 1, T));
    let tid = gw.threads()[0]["id"].as_str().unwrap().to_string();

    // Nothing happens at the real time: the thread is not idle yet.
    let settings = Arc::new(teleavis::config::load_and_validate(&gw.config).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = gw.store().await;
        let smime = Arc::new(teleavis::smime::SmimeEngine::load(&settings.smime).unwrap());
        let intake = teleavis::intake::Intake::new(settings.clone(), store, smime);
        teleavis::intake::autoclose::auto_close(&intake, chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(gw.threads()[0]["status"], "nouvelle");
        // Eight days later, seen from now (so the mail it queues is due at once).
        let cutoff = chrono::Utc::now() + chrono::Duration::days(1);
        teleavis::intake::autoclose::close_idle_since(&intake, cutoff, chrono::Utc::now())
            .await
            .unwrap();
    });
    let status = gw.threads()[0]["status"].clone();
    assert_eq!(status, "terminee", "status after auto-close");

    // The GP: acknowledgement, notice, compte-rendu; the group: forward, compte-rendu.
    assert!(mail.wait_for_count(&gp, "INBOX", 3, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 2, T), "{}", gw.log());
    let opened: Vec<_> = mail
        .fetch(&gp, "INBOX")
        .iter()
        .map(|m| open_as("gp", m))
        .collect();
    let subject = |v: &serde_json::Value| {
        v["headers"]["Subject"]
            .as_str()
            .or(v["headers"]["subject"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let report = opened
        .iter()
        .find(|v| subject(v).contains("Compte-rendu"))
        .expect("a compte-rendu");
    assert!(subject(report).contains(&tid));
    let text = report["text"].as_str().unwrap();
    assert!(text.contains("clôturée automatiquement"), "{text}");
    assert!(
        report["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["filename"] == format!("compte-rendu-{tid}.pdf"))
    );
    let notice = opened
        .iter()
        .find(|v| subject(v).contains("Clôture automatique"))
        .expect("a notice");
    assert!(notice["text"].as_str().unwrap().contains("7 jours"));
    let shown = gw.cli_json(&["threads", "show", &tid, "--format", "json"]);
    let kinds: Vec<_> = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.iter().filter(|k| *k == "report").count() == 2,
        "{kinds:?}"
    );
    gw.stop();

    // Retention: the closed thread and its raw mail go, the audit trail stays and still verifies.
    let out = gw.cli(&["purge", "--older-than", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("purged 1 threads"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(gw.threads().is_empty());
    let audit = gw.cli(&["audit", "verify"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let raw_left = rt.block_on(async {
        let store = gw.store().await;
        let mut total = 0;
        for id in 1..=10 {
            if let Some(row) = store.get_inbound(id).await.unwrap() {
                total += row.raw.len();
            }
        }
        total
    });
    assert_eq!(raw_left, 0, "raw mail of the purged thread wiped");
}
