//! The intake's business logic through its seam, `Intake::handle`, without Postfix or Dovecot:
//! each test makes S/MIME mail with `openssl cms` (tests/support/mailtool.py), hands it to the
//! intake on a fresh SQLite database, and asserts on what was committed: the thread row, the
//! thread's messages, the outbox rows (kind, recipients, cleartext body) and the audit trail.
//! One test per branch of `intake::classify`, plus the refusals of the transition table.

mod common;

use std::sync::Arc;

use common::{compose, compose_signed_encrypted, pki, repo_root, user_cert, user_email, user_key};
use mail_parser::{MessageParser, MimeHeaders};
use teleavis::intake::{Fetched, Handled, Intake, Outcome, Reason};
use teleavis::store::{OutboxStatus, Store};

const GATEWAY: &str = "teleexpertise@hopital.test";
const INFECTIO: &str = "infectio@hopital.test";
const PNEUMO: &str = "pneumo@hopital.test";
const ADMIN: &str = "dsi@hopital.test";

fn form(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/data/forms").join(name)).unwrap()
}

fn plus(tag: &str) -> String {
    format!("teleexpertise+{}@hopital.test", tag.to_lowercase())
}

/// A gateway on a fresh SQLite database, with the development configuration.
struct Desk {
    intake: Intake,
    store: Store,
    uid: u32,
    _dir: tempfile::TempDir,
}

/// A queued outgoing message, read back from its outbox row.
#[derive(Debug)]
struct Sent {
    id: i64,
    kind: String,
    to: Vec<String>,
    subject: String,
    text: String,
    attachments: Vec<String>,
    status: OutboxStatus,
    /// The message as queued (before signing and encryption).
    raw: Vec<u8>,
}

impl Desk {
    async fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let template = std::fs::read_to_string(repo_root().join("config/dev.toml.in")).unwrap();
        let text = template
            .replace(
                "@DATABASE_URL@",
                &format!("sqlite://{}/teleavis.db", d.display()),
            )
            .replace("@DIR@", &d.display().to_string())
            .replace("@PKI@", &pki().display().to_string())
            .replace("@IMAPS_PORT@", "993")
            .replace("@SUBMISSION_PORT@", "587")
            .replace("@CIPHER@", "aes-256-gcm");
        let config = d.join("teleavis.toml");
        std::fs::write(&config, text).unwrap();
        for f in ["imap.password", "smtp.password"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(d.join(f), "secret\n").unwrap();
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let settings = teleavis::config::load_and_validate(&config).expect("configuration");
        let store = Store::connect(&settings.database.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let smime = teleavis::smime::SmimeEngine::load(&settings.smime).unwrap();
        let intake = Intake::new(Arc::new(settings), store.clone(), Arc::new(smime));
        Desk {
            intake,
            store,
            uid: 0,
            _dir: dir,
        }
    }

    async fn handle(&mut self, raw: Vec<u8>) -> Handled {
        self.uid += 1;
        let f = Fetched {
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid: self.uid,
            raw,
        };
        self.intake.handle(f).await.expect("handled")
    }

    /// Mail from PKI user `user` to `to`, signed and encrypted to the gateway.
    async fn send(&mut self, user: &str, to: &str, subject: &str, body: &str) -> Handled {
        let raw = compose_signed_encrypted(user, to, "gateway", subject, body, &[]);
        self.handle(raw).await
    }

    /// A new request of the seed's first case from the GP, by plus-tag; its thread id.
    async fn open_case1(&mut self) -> String {
        let h = self
            .send(
                "gp",
                &plus("infectio"),
                "Demande",
                &form("case1_mycoplasme.txt"),
            )
            .await;
        thread_of(&h)
    }

    async fn outbox(&self) -> Vec<Sent> {
        let mut rows = vec![];
        for s in [
            OutboxStatus::Pending,
            OutboxStatus::Held,
            OutboxStatus::Sent,
            OutboxStatus::Failed,
        ] {
            // Listings carry no bytes: each message is read whole, as the worker would.
            for r in self.store.outbox_by_status(s).await.unwrap() {
                rows.push(
                    self.store
                        .get_outbox(r.id)
                        .await
                        .unwrap()
                        .expect("outbox row"),
                );
            }
        }
        rows.sort_by_key(|r| r.id);
        rows.into_iter()
            .map(|r| {
                let m = MessageParser::default()
                    .parse(&r.raw)
                    .expect("outbox message");
                Sent {
                    id: r.id,
                    kind: r.kind.to_string(),
                    to: r.recipients.clone(),
                    subject: m.subject().unwrap_or_default().to_string(),
                    text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                    attachments: m
                        .attachments()
                        .map(|a| a.attachment_name().unwrap_or_default().to_string())
                        .collect(),
                    status: r.status,
                    raw: r.raw.clone(),
                }
            })
            .collect()
    }

    /// The outbox rows queued after the first `skip`.
    async fn outbox_after(&self, skip: usize) -> Vec<Sent> {
        self.outbox().await.into_iter().skip(skip).collect()
    }

    async fn thread_count(&self) -> usize {
        self.store.list_threads(None, None).await.unwrap().len()
    }

    async fn audit(&self) -> Vec<(String, String)> {
        sqlx::query_as::<_, (String, String)>("SELECT action, subject FROM audit ORDER BY id")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
    }

    async fn thread(&self, tid: &str) -> teleavis::store::ThreadRow {
        self.store.get_thread(tid).await.unwrap().expect("thread")
    }

    /// (direction, kind) of the thread's messages, in order.
    async fn messages(&self, tid: &str) -> Vec<(String, String)> {
        self.store
            .thread_messages(tid)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.message.direction.to_string(), m.message.kind.to_string()))
            .collect()
    }
}

/// Asserts that the message says `what`, showing it otherwise.
fn says(s: &Sent, what: &str) {
    assert!(s.text.contains(what), "{what:?} not in {}", s.text);
}

fn quarantined(reason: Reason) -> Outcome {
    Outcome::Quarantined { reason }
}

fn thread_of(h: &Handled) -> String {
    match &h.outcome {
        Outcome::Processed { thread: Some(t) } => t.clone(),
        other => panic!("expected a thread, got {other:?}"),
    }
}

fn one<'a>(sent: &'a [Sent], kind: &str, to: &str) -> &'a Sent {
    let found: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.kind == kind && s.to == [to.to_string()])
        .collect();
    assert_eq!(found.len(), 1, "one {kind} to {to} expected in {sent:#?}");
    found[0]
}

/// A "Demande" from `from` to `to`, made with `extra` (signing, encryption, headers).
fn compose_request(from: &str, to: &str, body: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "--from",
        from,
        "--to",
        to,
        "--subject",
        "Demande",
        "--body",
        body,
    ];
    args.extend_from_slice(extra);
    compose(&args)
}

fn kinds(sent: &[Sent]) -> Vec<(&str, &str)> {
    sent.iter()
        .map(|s| (s.kind.as_str(), s.to[0].as_str()))
        .collect()
}

// ---- new requests -------------------------------------------------------------------------

#[tokio::test]
async fn a_request_to_the_plus_tag_opens_a_thread_acknowledged_and_forwarded() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    assert!(tid.starts_with("TE-") && tid.ends_with("-000001"), "{tid}");
    let t = d.thread(&tid).await;
    assert_eq!(
        (t.status.as_str(), t.category.as_str(), t.requester.as_str()),
        ("nouvelle", "infectio", gp.as_str())
    );
    let sent = d.outbox().await;
    assert_eq!(kinds(&sent), [("ack", gp.as_str()), ("forward", INFECTIO)]);
    let ack = one(&sent, "ack", &gp);
    assert_eq!(
        ack.subject,
        format!("[{tid}] Accusé de réception — Maladies infectieuses")
    );
    says(ack, &format!("Référence : {tid}"));
    says(ack, "½ journée");
    assert!(
        !ack.text.contains("MARTIN"),
        "the ack repeats no patient data"
    );
    let fwd = one(&sent, "forward", INFECTIO);
    assert_eq!(
        fwd.subject,
        format!("[{tid}] Nouvelle demande — Maladies infectieuses")
    );
    assert!(fwd.text.contains("MARTIN") && fwd.text.contains("mycoplasme"));
    assert_eq!(
        d.messages(&tid).await,
        [("in", "request"), ("out", "ack"), ("out", "forward")].map(|(a, b)| (a.into(), b.into()))
    );
    let audit = d.audit().await;
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["thread.opened", "inbound.processed"]);
    assert_eq!(audit[0].1, tid);
}

#[tokio::test]
async fn a_request_to_a_category_alias_goes_to_that_category() {
    let mut d = Desk::new().await;
    let h = d
        .send(
            "gp",
            "infectiologie@hopital.test",
            "Demande",
            &form("case1_mycoplasme.txt"),
        )
        .await;
    let tid = thread_of(&h);
    assert_eq!(d.thread(&tid).await.category, "infectio");
    one(&d.outbox().await, "forward", INFECTIO);
}

#[tokio::test]
async fn a_request_to_the_plain_address_is_routed_by_its_category_line() {
    let mut d = Desk::new().await;
    let h = d
        .send("gp", GATEWAY, "Demande d'avis", &form("category_line.txt"))
        .await;
    let tid = thread_of(&h);
    assert_eq!(d.thread(&tid).await.category, "infectio");
    let sent = d.outbox().await;
    assert_eq!(kinds(&sent)[1], ("forward", INFECTIO));
}

#[tokio::test]
async fn the_subject_aide_gets_the_categories_and_their_forms() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let h = d.send("gp", GATEWAY, "Aide", "").await;
    assert_eq!(h.outcome, Outcome::Processed { thread: None });
    let sent = d.outbox().await;
    let help = one(&sent, "notice", &gp);
    assert_eq!(sent.len(), 1);
    assert_eq!(help.subject, "Téléexpertise — Aide");
    says(help, "== Maladies infectieuses ==");
    assert!(help.text.contains("== Pneumologie =="));
    assert!(help.text.contains(&plus("infectio")));
    assert!(help.text.contains("Terrain sous-jacent"));
    assert!(!help.text.contains("ne dit pas"));
}

#[tokio::test]
async fn a_request_naming_no_category_gets_help_saying_so() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let h = d
        .send("gp", GATEWAY, "Demande", &form("case1_mycoplasme.txt"))
        .await;
    assert_eq!(h.outcome, Outcome::Processed { thread: None });
    let sent = d.outbox().await;
    let help = one(&sent, "notice", &gp);
    says(help, "ne dit pas à quelle spécialité");
    assert_eq!(d.thread_count().await, 0, "no thread opened");
}

#[tokio::test]
async fn a_form_with_errors_is_refused_with_what_to_fix() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let h = d
        .send(
            "gp",
            &plus("infectio"),
            "Demande",
            &form("invalid_date.txt"),
        )
        .await;
    assert_eq!(h.outcome, Outcome::Processed { thread: None });
    let sent = d.outbox().await;
    let refusal = one(&sent, "notice", &gp);
    assert_eq!(sent.len(), 1, "nothing forwarded");
    assert_eq!(refusal.subject, "Téléexpertise — Demande incomplète");
    says(refusal, "Date de naissance");
    assert!(refusal.text.contains(&plus("infectio")));
    assert_eq!(d.thread_count().await, 0, "no thread opened");
}

#[tokio::test]
async fn a_request_without_consent_is_refused() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    d.send(
        "gp",
        &plus("infectio"),
        "Demande",
        &form("missing_consent.txt"),
    )
    .await;
    let sent = d.outbox().await;
    assert_eq!(sent.len(), 1, "nothing forwarded: {sent:#?}");
    let refusal = one(&sent, "notice", &gp);
    says(
        refusal,
        "Consentement du patient : champ obligatoire non rempli",
    );
    assert_eq!(d.thread_count().await, 0, "no thread opened");
}

// ---- in a thread --------------------------------------------------------------------------

#[tokio::test]
async fn an_expert_answer_is_relayed_to_the_gp_and_the_thread_is_en_cours() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    let h = d
        .send(
            "expert",
            &plus(&tid),
            &format!("Re: [{tid}]"),
            "PCR sur les urines.",
        )
        .await;
    assert_eq!(thread_of(&h), tid);
    assert_eq!(d.thread(&tid).await.status, "en_cours");
    let sent = d.outbox_after(2).await;
    assert_eq!(kinds(&sent), [("answer", gp.as_str())]);
    assert_eq!(
        sent[0].subject,
        format!("[{tid}] Réponse — Maladies infectieuses")
    );
    says(&sent[0], "PCR sur les urines.");
    assert!(
        sent[0].text.contains("Yvon RUCH (RPPS "),
        "names its author: {}",
        sent[0].text
    );
    assert_eq!(d.messages(&tid).await[3], ("in".into(), "answer".into()));
    assert!(
        d.audit()
            .await
            .iter()
            .any(|(a, s)| a == "thread.answer" && *s == tid)
    );
}

#[tokio::test]
async fn a_gp_follow_up_goes_to_the_group_and_keeps_the_status() {
    let mut d = Desk::new().await;
    let tid = d.open_case1().await;
    d.send(
        "gp",
        &plus(&tid),
        &format!("Re: [{tid}]"),
        "Le partenaire est traité.",
    )
    .await;
    assert_eq!(d.thread(&tid).await.status, "nouvelle");
    let sent = d.outbox_after(2).await;
    assert_eq!(kinds(&sent), [("follow_up", INFECTIO)]);
    assert_eq!(
        sent[0].subject,
        format!("[{tid}] Complément du requérant — Maladies infectieuses")
    );
    assert!(sent[0].text.contains("Le partenaire est traité."));
}

#[tokio::test]
async fn clore_closes_and_sends_the_compte_rendu_to_the_gp_and_the_group() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    d.send("expert", &plus(&tid), "Re", "#clore\nPas de traitement.")
        .await;
    let t = d.thread(&tid).await;
    assert_eq!(t.status, "terminee");
    assert!(t.closed_at.is_some());
    let sent = d.outbox_after(2).await;
    assert_eq!(
        kinds(&sent),
        [("report", gp.as_str()), ("report", INFECTIO)]
    );
    for r in &sent {
        assert_eq!(
            r.subject,
            format!("[{tid}] Compte-rendu — Maladies infectieuses")
        );
        says(r, "MARTIN");
        says(r, "Pas de traitement.");
        assert_eq!(
            r.attachments,
            [format!("compte-rendu-{tid}.pdf"), "IHE_XDM.ZIP".into()]
        );
    }
    let actions: Vec<String> = d.audit().await.into_iter().map(|(a, _)| a).collect();
    assert!(
        actions.contains(&"thread.answer".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"thread.report".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn prendre_records_the_expert_and_tells_the_group() {
    let mut d = Desk::new().await;
    let expert = user_email("expert");
    let tid = d.open_case1().await;
    d.send("expert", &plus(&tid), "Re", "#prendre").await;
    let t = d.thread(&tid).await;
    assert_eq!(t.status, "en_cours");
    assert_eq!(t.taken_by.as_deref(), Some(expert.as_str()));
    let sent = d.outbox_after(2).await;
    assert_eq!(kinds(&sent), [("notice", INFECTIO)]);
    assert_eq!(
        sent[0].subject,
        format!("[{tid}] Prise en charge — Maladies infectieuses")
    );
    assert_eq!(d.messages(&tid).await[3], ("in".into(), "command".into()));
}

#[tokio::test]
async fn transferer_moves_the_thread_and_forwards_the_request_again() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    d.send(
        "expert",
        &plus(&tid),
        "Re",
        "#transferer pneumo\nPlutôt pour vous.",
    )
    .await;
    let t = d.thread(&tid).await;
    assert_eq!(
        (t.status.as_str(), t.category.as_str()),
        ("nouvelle", "pneumo")
    );
    let sent = d.outbox_after(2).await;
    assert_eq!(
        kinds(&sent),
        [
            ("forward", PNEUMO),
            ("follow_up", PNEUMO),
            ("notice", gp.as_str()),
            ("notice", INFECTIO)
        ]
    );
    assert_eq!(
        sent[0].subject,
        format!("[{tid}] Nouvelle demande (transfert) — Pneumologie")
    );
    says(&sent[0], "MARTIN");
    assert!(sent[1].text.contains("Plutôt pour vous."));
    assert_eq!(
        sent[3].subject,
        format!("[{tid}] Transfert — Maladies infectieuses")
    );
    says(&sent[3], "Pneumologie");
}

#[tokio::test]
async fn annuler_by_the_gp_cancels_and_tells_both_sides() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    d.send("gp", &plus(&tid), "Re", "#annuler").await;
    assert_eq!(d.thread(&tid).await.status, "annulee");
    let sent = d.outbox_after(2).await;
    assert_eq!(
        kinds(&sent),
        [("notice", INFECTIO), ("notice", gp.as_str())]
    );
    assert!(sent.iter().all(|s| s.subject.contains("Annulation")));
}

#[tokio::test]
async fn refused_commands_are_explained_and_change_nothing() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let expert = user_email("expert");
    let tid = d.open_case1().await;
    let cases = [
        ("gp", "#clore", gp.as_str(), "seul un expert peut clore"),
        ("gp", "#prendre", gp.as_str(), "seul un expert peut prendre"),
        (
            "gp",
            "#transferer pneumo",
            gp.as_str(),
            "seul un expert peut transférer",
        ),
        (
            "expert",
            "#annuler",
            expert.as_str(),
            "seul le médecin requérant",
        ),
        (
            "expert",
            "#transferer cardio",
            expert.as_str(),
            "catégories : infectio (Maladies infectieuses), pneumo (Pneumologie)",
        ),
        (
            "expert",
            "#transferer infectio",
            expert.as_str(),
            "déjà dans cette catégorie",
        ),
    ];
    for (n, (user, body, to, why)) in cases.into_iter().enumerate() {
        let h = d.send(user, &plus(&tid), "Re", body).await;
        assert_eq!(thread_of(&h), tid);
        let sent = d.outbox_after(2 + n).await;
        assert_eq!(kinds(&sent), [("notice", to)], "{body}");
        assert_eq!(
            sent[0].subject,
            format!("[{tid}] Commande refusée"),
            "{body}"
        );
        assert!(sent[0].text.contains(why), "{body}: {}", sent[0].text);
    }
    let t = d.thread(&tid).await;
    assert_eq!(
        (t.status.as_str(), t.category.as_str()),
        ("nouvelle", "infectio")
    );
    assert_eq!(t.taken_by, None);
}

#[tokio::test]
async fn an_intruder_is_quarantined_told_nothing_about_the_case() {
    let mut d = Desk::new().await;
    let intruder = user_email("intruder");
    let tid = d.open_case1().await;
    let h = d
        .send("intruder", &plus(&tid), "Re", "Je veux savoir.")
        .await;
    assert_eq!(h.outcome, quarantined(Reason::NotAuthorized));
    assert_eq!(h.destination, "Quarantaine");
    let sent = d.outbox_after(2).await;
    assert_eq!(
        kinds(&sent),
        [("notice", intruder.as_str()), ("admin_alert", ADMIN)]
    );
    assert_eq!(sent[0].subject, "Téléexpertise — Message non transmis");
    assert!(!sent[0].text.contains("MARTIN"));
    assert_eq!(sent[1].subject, "[teleavis] Quarantaine : not_authorized");
    assert_eq!(
        d.messages(&tid).await.len(),
        3,
        "nothing recorded in the thread"
    );
    assert_eq!(d.thread(&tid).await.status, "nouvelle");
}

#[tokio::test]
async fn a_token_naming_no_thread_is_quarantined_and_the_sender_told() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let h = d
        .send(
            "gp",
            &plus("te-2026-999999"),
            "Re: [TE-2026-999999]",
            "Alors ?",
        )
        .await;
    assert_eq!(h.outcome, quarantined(Reason::UnknownThread));
    let sent = d.outbox().await;
    assert_eq!(
        kinds(&sent),
        [("notice", gp.as_str()), ("admin_alert", ADMIN)]
    );
    assert_eq!(sent[0].subject, "Téléexpertise — Référence inconnue");
    assert!(sent[0].text.contains("TE-2026-999999"));
}

#[tokio::test]
async fn a_message_on_a_closed_thread_points_to_a_new_request() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    d.send("expert", &plus(&tid), "Re", "#clore\nFin.").await;
    let before = d.outbox().await.len();
    let h = d
        .send("gp", &plus(&tid), "Re", "Une question encore.")
        .await;
    assert_eq!(thread_of(&h), tid);
    let sent = d.outbox_after(before).await;
    assert_eq!(kinds(&sent), [("notice", gp.as_str())]);
    assert_eq!(sent[0].subject, format!("[{tid}] Demande close"));
    assert!(
        sent[0]
            .text
            .contains(&format!("Demande précédente : {tid}"))
    );
    assert_eq!(d.thread(&tid).await.status, "terminee");
    assert_eq!(d.messages(&tid).await.last().unwrap().1, "notice");
}

#[tokio::test]
async fn a_new_request_naming_the_closed_one_opens_a_linked_thread() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let first = d.open_case1().await;
    d.send("expert", &plus(&first), "Re", "#clore\nFin.").await;
    let before = d.outbox().await.len();
    // Sent to the closed thread's token, as the closed-thread notice invites.
    let body = format!(
        "Demande précédente : {first}\n{}",
        form("case1_mycoplasme.txt")
    );
    let h = d.send("gp", &plus(&first), "Re", &body).await;
    let second = thread_of(&h);
    assert_ne!(second, first);
    let t = d.thread(&second).await;
    assert_eq!(t.previous_thread.as_deref(), Some(first.as_str()));
    assert_eq!(t.category, "infectio");
    let sent = d.outbox_after(before).await;
    assert_eq!(kinds(&sent), [("ack", gp.as_str()), ("forward", INFECTIO)]);
    assert!(
        sent[0]
            .text
            .contains(&format!("Suite de la demande : {first}"))
    );
}

// ---- before classification ----------------------------------------------------------------

#[tokio::test]
async fn a_bounce_of_our_mail_fails_its_row_and_alerts_the_admin() {
    let mut d = Desk::new().await;
    d.open_case1().await;
    let ack = d.outbox().await.remove(0);
    let mut tx = d.store.begin().await.unwrap();
    d.store
        .mark_sent(&mut tx, ack.id, chrono::Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row = d.store.get_outbox(ack.id).await.unwrap().unwrap();
    let dsn = format!(
        "From: MAILER-DAEMON@hopital.test\r\nTo: {GATEWAY}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn1@hopital.test>\r\nAuto-Submitted: auto-replied\r\nContent-Type: text/plain\r\n\r\n\
         Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 unknown user\r\n\r\n\
         Message-ID: {}\r\n",
        row.message_id
    );
    let h = d.handle(dsn.into_bytes()).await;
    assert_eq!(h.outcome, quarantined(Reason::Automatic));
    let sent = d.outbox().await;
    assert_eq!(sent[0].status, OutboxStatus::Failed);
    let alerts: Vec<&Sent> = sent.iter().filter(|s| s.kind == "admin_alert").collect();
    assert_eq!(alerts.len(), 1, "{sent:#?}");
    assert_eq!(alerts[0].to, [ADMIN]);
    assert_eq!(alerts[0].subject, "[teleavis] Message en échec");
    says(alerts[0], "550 5.1.1");
}

#[tokio::test]
async fn the_same_mail_twice_is_handled_once() {
    let mut d = Desk::new().await;
    let raw = compose_signed_encrypted(
        "gp",
        &plus("infectio"),
        "gateway",
        "Demande",
        &form("case1_mycoplasme.txt"),
        &["--message-id", "<same@cabinet.test>"],
    );
    let first = d.handle(raw.clone()).await;
    thread_of(&first);
    // The same bytes (a lost MOVE), then the same Message-ID in other bytes (a resend).
    let again = d.handle(raw).await;
    assert_eq!(
        again.outcome,
        Outcome::Duplicate {
            of: first.inbound_id
        }
    );
    let resent = compose_signed_encrypted(
        "gp",
        &plus("infectio"),
        "gateway",
        "Demande",
        &form("case1_mycoplasme.txt"),
        &["--message-id", "<same@cabinet.test>"],
    );
    let h = d.handle(resent).await;
    assert_eq!(
        h.outcome,
        Outcome::Duplicate {
            of: first.inbound_id
        }
    );
    assert_eq!(h.destination, "Traités");
    assert_eq!(d.store.list_threads(None, None).await.unwrap().len(), 1);
    assert_eq!(d.outbox().await.len(), 2, "acknowledged and forwarded once");
    let audit = d.audit().await;
    assert!(
        audit
            .iter()
            .any(|(a, s)| a == "inbound.duplicate" && *s == format!("inbound:{}", h.inbound_id))
    );
}

#[tokio::test]
async fn an_unsigned_message_is_quarantined_unanswered() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let e = user_cert("gateway");
    let encrypt = ["--encrypt-to", e.to_str().unwrap()];
    let raw = compose_request(&gp, &plus("infectio"), "Bonjour", &encrypt);
    let h = d.handle(raw).await;
    assert!(
        matches!(
            h.outcome,
            Outcome::Quarantined {
                reason: Reason::Smime(_)
            }
        ),
        "{h:?}"
    );
    let sent = d.outbox().await;
    assert_eq!(
        kinds(&sent),
        [("admin_alert", ADMIN)],
        "no reply to an unproven sender"
    );
}

#[tokio::test]
async fn an_idle_thread_is_closed_by_housekeeping_with_a_compte_rendu() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let tid = d.open_case1().await;
    let now = chrono::Utc::now();
    let cutoff = now + chrono::Duration::minutes(1);
    teleavis::intake::autoclose::close_idle_since(&d.intake, cutoff, now)
        .await
        .unwrap();
    assert_eq!(d.thread(&tid).await.status, "terminee");
    let sent = d.outbox_after(2).await;
    assert_eq!(
        kinds(&sent),
        [
            ("report", gp.as_str()),
            ("report", INFECTIO),
            ("notice", gp.as_str())
        ]
    );
    assert_eq!(
        sent[2].subject,
        format!("[{tid}] Clôture automatique — Maladies infectieuses")
    );
    says(&sent[2], "close automatiquement après 7 jours");
    assert!(
        d.audit()
            .await
            .iter()
            .any(|(a, s)| a == "thread.auto_closed" && *s == tid)
    );
    // Closed: a second pass finds nothing to do.
    teleavis::intake::autoclose::close_idle_since(&d.intake, cutoff, now)
        .await
        .unwrap();
    assert_eq!(d.outbox().await.len(), 5);
}

// ---- the patient's record and receipts (issue 11) -----------------------------------------

/// The value of header `name` of a queued message, as its recipient reads it.
fn header(s: &Sent, name: &str) -> Option<String> {
    let m = MessageParser::default()
        .parse(&s.raw)
        .expect("outbox message");
    m.header_raw(name).map(|v| v.trim().to_string())
}

#[tokio::test]
async fn the_compte_rendu_carries_the_cda_in_ihe_xdm_zip_and_the_mss_headers() {
    let mut d = Desk::new().await;
    let tid = d.open_case1().await;
    d.send("expert", &plus(&tid), "Re", "#clore\nPas de traitement.")
        .await;
    let sent = d.outbox_after(2).await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    for r in &sent {
        assert_eq!(header(r, "X-MSS-CODECDA").as_deref(), Some("85208-7"));
        assert_eq!(header(r, "X-MSS-INS").as_deref(), Some("O"));
        let m = MessageParser::default().parse(&r.raw).unwrap();
        let zip = m
            .attachments()
            .find(|a| a.attachment_name() == Some("IHE_XDM.ZIP"))
            .expect("IHE_XDM.ZIP attached");
        let ct = zip.content_type().expect("content type");
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("application", Some("zip")),
            "{ct:?}"
        );
        let bytes = std::io::Cursor::new(zip.contents().to_vec());
        let mut archive = zip::ZipArchive::new(bytes).expect("a zip");
        let mut cda = String::new();
        // The archive's layout is the unit tests' (report/record_tests.rs): here, its CDA.
        let mut doc = archive
            .by_name("IHE_XDM/SUBSET01/DOC0001.XML")
            .expect("the CDA in the archive");
        std::io::Read::read_to_string(&mut doc, &mut cda).unwrap();
        assert!(cda.contains("85208-7"), "the CDA is a TLM-CR");
        assert!(cda.contains("MARTIN"), "the CDA names the patient");
        // The headers carry no patient data.
        let head = String::from_utf8_lossy(common::split_message(&r.raw).0).into_owned();
        assert!(!head.contains("MARTIN"), "{head}");
    }
    assert!(
        !d.store.thread_acts(&tid).await.unwrap().is_empty(),
        "the acts are settled with the compte-rendu"
    );
}

/// A request from the GP with this Message-ID and `Disposition-Notification-To`.
async fn request_with_dnt(d: &mut Desk, id: &str, dnt: &str, form_name: &str) -> Handled {
    let header = format!("Disposition-Notification-To: {dnt}");
    let raw = compose_signed_encrypted(
        "gp",
        &plus("infectio"),
        "gateway",
        "Demande",
        &form(form_name),
        &["--message-id", id, "--header", &header],
    );
    d.handle(raw).await
}

/// The fields of a queued MDN, checking it is a `multipart/report` with its
/// `message/disposition-notification` part.
fn mdn_fields(s: &Sent) -> String {
    let m = MessageParser::default().parse(&s.raw).expect("MDN");
    let ct = m.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(
        ct.attribute("report-type"),
        Some("disposition-notification")
    );
    let part = m
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("disposition-notification"))
        })
        .expect("a message/disposition-notification part");
    String::from_utf8_lossy(part.contents()).into_owned()
}

#[tokio::test]
async fn an_mdn_says_processed_when_the_thread_opens() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let dnt = format!("\"Dr\" <{gp}>");
    let h = request_with_dnt(&mut d, "<req-1@cabinet.test>", &dnt, "case1_mycoplasme.txt").await;
    let tid = thread_of(&h);
    let sent = d.outbox().await;
    assert_eq!(
        kinds(&sent),
        [
            ("ack", gp.as_str()),
            ("forward", INFECTIO),
            ("mdn", gp.as_str())
        ]
    );
    let mdn = one(&sent, "mdn", &gp);
    assert_eq!(mdn.subject, format!("[{tid}] Accusé de traitement"));
    says(mdn, &tid);
    let fields = mdn_fields(mdn);
    assert!(
        fields.contains("Original-Message-ID: <req-1@cabinet.test>\r\n"),
        "{fields}"
    );
    assert!(
        fields.contains("Disposition: automatic-action/MDN-sent-automatically; processed\r\n"),
        "{fields}"
    );
    assert!(
        !mdn.raw.windows(6).any(|w| w == b"MARTIN"),
        "no patient data"
    );
    // A receipt is not part of the thread's story.
    assert_eq!(d.messages(&tid).await.len(), 3);
}

#[tokio::test]
async fn an_mdn_says_processed_error_with_the_reason_when_the_form_is_refused() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    request_with_dnt(&mut d, "<req-2@cabinet.test>", &gp, "missing_consent.txt").await;
    let sent = d.outbox().await;
    assert_eq!(
        kinds(&sent),
        [("notice", gp.as_str()), ("mdn", gp.as_str())]
    );
    let mdn = one(&sent, "mdn", &gp);
    says(mdn, "demande incomplète");
    let fields = mdn_fields(mdn);
    assert!(fields.contains("; processed/error\r\n"), "{fields}");
    assert!(fields.contains("Error: demande incomplete ("), "{fields}");
    assert_eq!(d.thread_count().await, 0);
}

#[tokio::test]
async fn an_mdn_says_processed_error_when_an_authenticated_message_is_refused() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let (c, k) = (user_cert("gp"), user_key("gp"));
    let header = format!("Disposition-Notification-To: {gp}");
    // Signed by the GP but not encrypted to the gateway: refused, the sender still known.
    let extra = [
        "--sign",
        c.to_str().unwrap(),
        k.to_str().unwrap(),
        "--message-id",
        "<req-3@cabinet.test>",
        "--header",
        &header,
    ];
    let raw = compose_request(
        &gp,
        &plus("infectio"),
        &form("case1_mycoplasme.txt"),
        &extra,
    );
    let h = d.handle(raw).await;
    assert_eq!(
        h.outcome,
        quarantined(Reason::Smime(teleavis::smime::RejectReason::NotEncrypted))
    );
    let sent = d.outbox().await;
    one(&sent, "notice", &gp);
    let fields = mdn_fields(one(&sent, "mdn", &gp));
    assert!(fields.contains("; processed/error\r\n"), "{fields}");
    assert!(
        fields.contains("Error: message refuse (not_encrypted)"),
        "{fields}"
    );
}

#[tokio::test]
async fn no_mdn_to_anyone_but_the_authenticated_sender() {
    let mut d = Desk::new().await;
    let gp = user_email("gp");
    let stranger = user_email("gp2");
    request_with_dnt(
        &mut d,
        "<req-4@cabinet.test>",
        &stranger,
        "case1_mycoplasme.txt",
    )
    .await;
    let sent = d.outbox().await;
    assert_eq!(kinds(&sent), [("ack", gp.as_str()), ("forward", INFECTIO)]);
}

// ---- deadlines (issue 10): reminder and escalation, on an injected clock ------------------

#[tokio::test]
async fn an_unanswered_thread_is_reminded_at_its_deadline_then_escalated_at_twice_it() {
    use teleavis::intake::deadlines::tick;
    let mut d = Desk::new().await;
    let opened = chrono::Utc::now();
    let tid = d.open_case1().await;
    let before = d.outbox().await.len();
    let hours = |h: i64| opened + chrono::Duration::hours(h) + chrono::Duration::minutes(1);
    // Before the deadline (48 h): nothing, and not overdue (what `status` and the metric say).
    assert_eq!(tick(&d.intake, hours(47)).await.unwrap(), 0);
    assert!(d.outbox_after(before).await.is_empty());
    assert!(d.store.overdue_threads(hours(47)).await.unwrap().is_empty());
    let overdue = d.store.overdue_threads(hours(48)).await.unwrap();
    assert_eq!(overdue, [("infectio".to_string(), false)]);
    // At the deadline: one reminder to the group, and only one however often the tick runs.
    assert_eq!(tick(&d.intake, hours(48)).await.unwrap(), 1);
    assert_eq!(tick(&d.intake, hours(49)).await.unwrap(), 0);
    let sent = d.outbox_after(before).await;
    assert_eq!(kinds(&sent), [("reminder", INFECTIO)]);
    assert_eq!(
        sent[0].subject,
        format!("[{tid}] Relance — Maladies infectieuses")
    );
    says(&sent[0], &tid);
    says(&sent[0], "n'a pas reçu de réponse dans le délai");
    says(&sent[0], ADMIN);
    for secret in ["Julie", "mycoplasme", "291015746312381"] {
        assert!(!sent[0].text.contains(secret), "{secret} in the reminder");
    }
    // At twice the deadline: one escalation to the admin (no escalation_address configured).
    assert_eq!(tick(&d.intake, hours(96)).await.unwrap(), 1);
    assert_eq!(tick(&d.intake, hours(200)).await.unwrap(), 0);
    let sent = d.outbox_after(before).await;
    assert_eq!(kinds(&sent), [("reminder", INFECTIO), ("reminder", ADMIN)]);
    assert_eq!(
        sent[1].subject,
        format!("[{tid}] Relance — Maladies infectieuses")
    );
    says(&sent[1], "toujours sans réponse au double de son délai");
    let audit = d.audit().await;
    for action in ["thread.reminder", "thread.escalation"] {
        let n = audit
            .iter()
            .filter(|(a, s)| a == action && *s == tid)
            .count();
        assert_eq!(n, 1, "{action} in {audit:?}");
    }
    // Both are in the thread's record, as notices sent.
    let messages = d.messages(&tid).await;
    let out_notices = messages
        .iter()
        .filter(|(dir, k)| dir == "out" && k == "notice")
        .count();
    assert_eq!(out_notices, 2, "{messages:?}");
}

#[tokio::test]
async fn an_answer_prendre_or_annuler_before_the_deadline_means_no_reminder() {
    use teleavis::intake::deadlines::tick;
    let late = chrono::Utc::now() + chrono::Duration::days(30);
    for (user, body) in [
        ("expert", "PCR sur les urines."),
        ("expert", "#prendre"),
        ("gp", "#annuler"),
    ] {
        let mut d = Desk::new().await;
        let tid = d.open_case1().await;
        let before = d.outbox().await.len();
        d.send(user, &plus(&tid), &format!("Re: [{tid}]"), body)
            .await;
        let after = d.outbox().await.len();
        assert_eq!(tick(&d.intake, late).await.unwrap(), 0, "after {body}");
        assert_eq!(d.outbox().await.len(), after, "after {body}");
        assert!(after > before, "{body} was handled");
        assert!(
            !d.audit().await.iter().any(|(a, _)| a == "thread.reminder"),
            "after {body}"
        );
    }
}

// ---- stats (issue 10): the HTML page with its charts, as a browser prints it --------------

#[tokio::test]
async fn stats_html_prints_with_its_charts_axis_labels_and_figures() {
    let mut d = Desk::new().await;
    let tid = d.open_case1().await;
    // A second request (its own text, so not a replay of the first).
    let second = format!("{}\nMerci.\n", form("case1_mycoplasme.txt"));
    let h = d.send("gp", &plus("infectio"), "Demande", &second).await;
    assert_ne!(thread_of(&h), tid);
    d.send(
        "expert",
        &plus(&tid),
        &format!("Re: [{tid}]"),
        "PCR sur les urines.",
    )
    .await;
    let dir = d._dir.path();
    let html = dir.join("stats.html");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_teleavis"))
        .arg("--config")
        .arg(dir.join("teleavis.toml"))
        .args(["stats", "--by", "category", "--format", "html", "--output"])
        .arg(&html)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: no script, no stylesheet, image or font to fetch.
    for external in ["<script", "src=", "href=", "https://", "@import", "url("] {
        assert!(!page.contains(external), "{external} in the page");
    }
    // Requests per month, category, department and specialty; the response times.
    assert_eq!(page.matches("<svg").count(), 5, "five charts");
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("chromium (scripts/install-test-deps.sh installs it)");
    let pdf = dir.join("stats.pdf");
    // Bounded: a browser that hangs fails the test instead of holding it.
    let printed = std::process::Command::new("timeout")
        .args(["120", chromium])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        pdf.exists(),
        "chromium printed nothing: {}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let text = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    for label in [
        "Téléexpertise Hôpital de test",
        "statistiques",
        "Demandes par catégorie",
        "Demandes par mois",
        "Demandes par département",
        "Demandes par spécialité",
        "Délais de première réponse",
        "Demandes répondues",
        "< 30 min",
        "> 48 h",
        "infectio",
        "Catégorie",
        "Répondues",
        "Requérants",
        "Closes",
    ] {
        assert!(
            text.contains(label),
            "{label:?} not in the printed page:\n{text}"
        );
    }
    // The table's row: 2 requests, 1 requérant, 1 answered, median/p90/mean 0 min, 50 %
    // within the deadline, none closed.
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("infectio") && l.contains("50.0"))
        .unwrap_or_else(|| panic!("no figures row in:\n{text}"));
    let figures: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        figures,
        ["infectio", "2", "1", "1", "0", "0", "0", "50.0", "0"],
        "{text}"
    );
}

#[tokio::test]
async fn the_reminder_also_goes_to_the_experts_on_duty_then() {
    use teleavis::intake::deadlines::tick;
    let mut d = Desk::new().await;
    let tid = d.open_case1().await;
    let at = chrono::Utc::now() + chrono::Duration::hours(48) + chrono::Duration::minutes(1);
    let on_duty = "dr.legrand@hopital.test";
    let slot = teleavis::store::RosterSlot {
        category: "infectio".into(),
        starts_at: at - chrono::Duration::hours(1),
        ends_at: at + chrono::Duration::hours(1),
        expert: on_duty.into(),
    };
    let mut tx = d.store.begin().await.unwrap();
    d.store
        .roster_replace(&mut tx, &["infectio".into()], &[slot])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let before = d.outbox().await.len();
    assert_eq!(tick(&d.intake, at).await.unwrap(), 1);
    let sent = d.outbox_after(before).await;
    assert_eq!(
        kinds(&sent),
        [("reminder", INFECTIO), ("reminder", on_duty)]
    );
    for s in &sent {
        assert_eq!(
            s.subject,
            format!("[{tid}] Relance — Maladies infectieuses")
        );
    }
}
