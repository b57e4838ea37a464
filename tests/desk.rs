//! The desk end to end, through the real Postfix and Dovecot: a roster imported by the command
//! line, the on-duty notice in the mailbox of the expert on duty (decrypted, verified, no
//! patient data in its headers) and none for an expert off duty, an expert on the roster (not
//! a listed expert) answering in the thread, and a bad roster line that changes nothing.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::time::Duration;

use chrono::Utc;
use common::{
    MailSystem, compose_signed_encrypted, header_values, open_as, split_message, user_email,
};
use gateway::{ADMIN, Db, Gateway, INFECTIO, postgres_available};

const T: Duration = Duration::from_secs(60);
const ON_DUTY: &str = "dr.legrand@hopital.test";
const OFF_DUTY: &str = "dr.ruch@hopital.test";

fn local(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Europe::Paris)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

fn send_as(mail: &MailSystem, user: &str, to: &str, subject: &str, body: &str) {
    let raw = compose_signed_encrypted(user, to, "gateway", subject, body, &[]);
    mail.send_raw(&user_email(user), &[to], &raw);
}

#[test]
fn on_duty_expert_is_notified_and_may_answer() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let now = Utc::now();
    let roster = gw.dir.path().join("planning.csv");
    std::fs::write(
        &roster,
        format!(
            "category,start,end,expert\ninfectio,{},{},{ON_DUTY}\ninfectio,{},{},{OFF_DUTY}\n",
            local(now - chrono::Duration::hours(1)),
            local(now + chrono::Duration::hours(3)),
            local(now + chrono::Duration::days(1)),
            local(now + chrono::Duration::days(1) + chrono::Duration::hours(4)),
        ),
    )
    .unwrap();
    let out = gw.cli(&["roster", "import", roster.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 slots for infectio"));
    let show = |gw: &Gateway| {
        let out = gw.cli(&[
            "roster",
            "show",
            "--category",
            "infectio",
            "--at",
            &local(Utc::now()),
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let shown = show(&gw);
    assert!(
        shown.contains(ON_DUTY) && !shown.contains(OFF_DUTY),
        "{shown}"
    );

    // A bad line (unknown category) is named and changes nothing.
    let bad = gw.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "category,start,end,expert\ninfectio,2026-12-01T08:00,2026-12-01T13:00,x@hopital.test\ncardio,2026-12-01T08:00,2026-12-01T13:00,y@hopital.test\n",
    )
    .unwrap();
    let out = gw.cli(&["roster", "import", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.csv: line 3: unknown category \"cardio\""),
        "{err}"
    );
    assert_eq!(show(&gw), shown);

    // The experts have not written yet: their certificates are placed as an operator would.
    for name in ["expert", "expert2"] {
        std::fs::copy(
            common::user_cert(name),
            common::pki().join(format!("recipients/{name}.pem")),
        )
        .unwrap();
    }
    gw.start();
    let case =
        std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
            .unwrap();
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &case,
    );
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 1, T),
        "no forward\n{}",
        gw.log()
    );
    assert!(
        mail.wait_for_count(ON_DUTY, "INBOX", 1, T),
        "no notice\n{}",
        gw.log()
    );
    let raw = mail.fetch(ON_DUTY, "INBOX").remove(0);
    let notice = open_as(ON_DUTY, &raw);
    assert_eq!(notice["verified"], true);
    assert_eq!(notice["encrypted"], true);
    let tid = header_values(&raw, "X-Teleavis-Thread").remove(0);
    assert_eq!(
        notice["headers"]["Subject"],
        format!("[{tid}] Nouvelle demande — Maladies infectieuses")
    );
    let text = notice["text"].as_str().unwrap();
    assert!(text.contains(&tid) && text.contains("planning"), "{text}");
    assert!(text.contains(INFECTIO), "{text}");
    let head = String::from_utf8_lossy(split_message(&raw).0).to_lowercase();
    for secret in ["julie", "23/01/1991", "291015746312381", "mycoplasme"] {
        assert!(
            !head.contains(secret) && !text.to_lowercase().contains(secret),
            "{secret} in the notice"
        );
    }
    // The expert off duty gets nothing (the forward went to the group only).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(mail.count(OFF_DUTY, "INBOX"), 0);

    // The expert on the roster (not a listed expert of infectio) answers: relayed to the GP.
    send_as(
        &mail,
        "expert2",
        &format!("teleexpertise+{}@hopital.test", tid.to_lowercase()),
        &format!("RE: [{tid}] Nouvelle demande — Maladies infectieuses"),
        "Pas de traitement si asymptomatique.\n",
    );
    let gp = user_email("gp");
    assert!(
        mail.wait_for_count(&gp, "INBOX", 2, T),
        "answer not relayed\n{}",
        gw.log()
    );
    let answer = open_as(&gp, &mail.fetch(&gp, "INBOX").remove(1));
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("Pas de traitement si asymptomatique")
    );
    assert!(gw.quarantine().is_empty(), "{:?}", gw.quarantine());
    // The answer stopped the deadline: no reminder will follow.
    let shown = gw.cli_json(&["threads", "show", &tid, "--format", "json"]);
    assert_eq!(shown["urgent"], false, "{shown}");
    assert!(shown["deadline"].is_string(), "{shown}");
    assert!(shown["deadline_stopped_at"].is_string(), "{shown}");
    gw.stop();
}

#[test]
fn urgent_request_gets_the_short_deadline_and_the_urgent_notice() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let now = Utc::now();
    let roster = gw.dir.path().join("planning.csv");
    std::fs::write(
        &roster,
        format!(
            "category,start,end,expert\ninfectio,{},{},{ON_DUTY}\n",
            local(now - chrono::Duration::hours(1)),
            local(now + chrono::Duration::hours(3)),
        ),
    )
    .unwrap();
    assert!(
        gw.cli(&["roster", "import", roster.to_str().unwrap()])
            .status
            .success()
    );
    std::fs::copy(
        common::user_cert("expert2"),
        common::pki().join("recipients/expert2.pem"),
    )
    .unwrap();
    gw.start();
    let case =
        std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
            .unwrap();
    let sent = Utc::now();
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio-urgent@hopital.test",
        "Demande d'avis",
        &case,
    );
    let gp = user_email("gp");
    assert!(
        mail.wait_for_count(&gp, "INBOX", 1, T),
        "no ack\n{}",
        gw.log()
    );
    let ack = open_as(&gp, &mail.fetch(&gp, "INBOX").remove(0));
    let text = ack["text"].as_str().unwrap().to_string();
    assert!(text.contains("Demande URGENTE"), "{text}");
    // 30 minutes (urgent_deadline_minutes), said in local time; the minute may turn meanwhile.
    let said = [0, 1, 2].map(|m| {
        (sent + chrono::Duration::minutes(30 + m))
            .with_timezone(&chrono_tz::Europe::Paris)
            .format("%d/%m/%Y à %H:%M")
            .to_string()
    });
    assert!(
        said.iter()
            .any(|s| text.contains("Réponse attendue au plus tard le : ")
                && text.contains(s.as_str())),
        "{said:?} not in\n{text}"
    );
    assert!(
        mail.wait_for_count(ON_DUTY, "INBOX", 1, T),
        "no notice\n{}",
        gw.log()
    );
    let raw = mail.fetch(ON_DUTY, "INBOX").remove(0);
    let tid = header_values(&raw, "X-Teleavis-Thread").remove(0);
    let notice = open_as(ON_DUTY, &raw);
    assert_eq!(
        notice["headers"]["Subject"],
        format!("[{tid}] URGENT — Maladies infectieuses")
    );
    let shown = gw.cli_json(&["threads", "show", &tid, "--format", "json"]);
    assert_eq!(shown["urgent"], true, "{shown}");
    assert_eq!(shown["category"], "infectio");
    let deadline =
        chrono::DateTime::parse_from_rfc3339(shown["deadline"].as_str().unwrap()).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(shown["created_at"].as_str().unwrap()).unwrap();
    assert_eq!((deadline - created).num_minutes(), 30, "{shown}");
    assert!(shown["deadline_stopped_at"].is_null(), "{shown}");
    let overdue = gw.cli_json(&["threads", "list", "--overdue", "--format", "json"]);
    assert_eq!(overdue.as_array().unwrap().len(), 0, "{overdue}");
    gw.stop();
}

/// Shortens infectio's deadline to 18 s (`deadline_hours` takes fractions): the reminder is due
/// 18 s after the request, the escalation 36 s after it (the daemon looks every 10 s).
fn short_deadline(gw: &Gateway) {
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let text = text.replacen(
        "urgent_deadline_minutes = 30\n",
        "urgent_deadline_minutes = 30\ndeadline_hours = 0.005\n",
        1,
    );
    assert!(text.contains("deadline_hours = 0.005"));
    std::fs::write(&gw.config, text).unwrap();
}

/// The threads of the `Relance` messages in `who`'s mailbox (opened as `user`), checking each
/// one's subject and that it names no patient.
fn relances(mail: &MailSystem, who: &str, user: &str) -> Vec<String> {
    let mut out = vec![];
    for raw in mail.fetch(who, "INBOX") {
        let m = open_as(user, &raw);
        let subject = m["headers"]["Subject"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !subject.contains("Relance") {
            continue;
        }
        let tid = header_values(&raw, "X-Teleavis-Thread").remove(0);
        assert_eq!(subject, format!("[{tid}] Relance — Maladies infectieuses"));
        assert_eq!(m["verified"], true);
        let text = m["text"].as_str().unwrap().to_lowercase();
        let head = String::from_utf8_lossy(split_message(&raw).0).to_lowercase();
        for secret in ["julie", "23/01/1991", "291015746312381", "mycoplasme"] {
            assert!(
                !head.contains(secret) && !text.contains(secret),
                "{secret} in a relance"
            );
        }
        assert!(text.contains(&tid.to_lowercase()), "{text}");
        out.push(tid);
    }
    out
}

fn case1() -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
        .unwrap()
}

#[test]
fn an_unanswered_request_is_reminded_once_then_escalated_once_across_a_restart() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    short_deadline(&gw);
    gw.start();
    let opened = std::time::Instant::now();
    let to = "teleexpertise+infectio@hopital.test";
    send_as(&mail, "gp", to, "Demande d'avis", &case1());
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 1, T),
        "no forward\n{}",
        gw.log()
    );
    let first = header_values(
        &mail.fetch(INFECTIO, "INBOX").remove(0),
        "X-Teleavis-Thread",
    )
    .remove(0);
    // A second request, answered by the expert at once: it gets neither.
    send_as(&mail, "gp", to, "Demande d'avis", &case1());
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 2, T),
        "no forward\n{}",
        gw.log()
    );
    let answered = gw
        .threads()
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .find(|id| *id != first)
        .unwrap();
    send_as(
        &mail,
        "expert",
        &format!("teleexpertise+{}@hopital.test", answered.to_lowercase()),
        &format!("RE: [{answered}] Nouvelle demande — Maladies infectieuses"),
        "PCR sur les urines.\n",
    );
    let gp = user_email("gp");
    assert!(
        mail.wait_for_count(&gp, "INBOX", 3, T),
        "answer not relayed\n{}",
        gw.log()
    );
    // The daemon stops before the deadline and is started again after it.
    gw.stop();
    assert!(
        opened.elapsed() < Duration::from_secs(18),
        "too slow to test the restart"
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(opened.elapsed()));
    assert!(relances(&mail, INFECTIO, INFECTIO).is_empty());
    gw.start();
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 3, T),
        "no reminder\n{}",
        gw.log()
    );
    assert_eq!(relances(&mail, INFECTIO, INFECTIO), vec![first.clone()]);
    let reminder = mail.fetch(INFECTIO, "INBOX").remove(2);
    let text = open_as(INFECTIO, &reminder)["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("n'a pas reçu de réponse dans le délai"),
        "{text}"
    );
    assert!(text.contains("#prendre") && text.contains(ADMIN), "{text}");
    // Twice the deadline: the escalation, to the admin (no escalation_address).
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", 1, T),
        "no escalation\n{}",
        gw.log()
    );
    assert_eq!(relances(&mail, ADMIN, "admin"), vec![first.clone()]);
    let escalation = open_as("admin", &mail.fetch(ADMIN, "INBOX").remove(0));
    let text = escalation["text"].as_str().unwrap();
    assert!(
        text.contains("toujours sans réponse au double de son délai"),
        "{text}"
    );
    // Another restart, and more than a tick later: neither is sent again.
    gw.stop();
    gw.start();
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(relances(&mail, INFECTIO, INFECTIO), vec![first.clone()]);
    assert_eq!(relances(&mail, ADMIN, "admin"), vec![first.clone()]);
    let shown = gw.cli_json(&["threads", "show", &answered, "--format", "json"]);
    assert!(shown["deadline_stopped_at"].is_string(), "{shown}");
    gw.stop();
}

#[test]
fn two_instances_on_postgresql_send_one_reminder_and_one_escalation() {
    if !postgres_available() {
        return;
    }
    let mail = MailSystem::start();
    let mut a = Gateway::new(&mail, Db::Postgres);
    short_deadline(&a);
    let mut b = a.sharing_database();
    a.start();
    b.start();
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &case1(),
    );
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 2, T),
        "no reminder\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", 1, T),
        "no escalation\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // More than a tick later, both instances running: still one of each.
    std::thread::sleep(Duration::from_secs(12));
    let tid = header_values(
        &mail.fetch(INFECTIO, "INBOX").remove(0),
        "X-Teleavis-Thread",
    )
    .remove(0);
    assert_eq!(relances(&mail, INFECTIO, INFECTIO), vec![tid.clone()]);
    assert_eq!(relances(&mail, ADMIN, "admin"), [tid]);
    a.stop();
    b.stop();
}
