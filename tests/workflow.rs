//! The téléexpertise workflow end to end, through the real Postfix and Dovecot: the seed's two
//! cases (request, acknowledgement, forward, answers both ways, `#clore` and the compte-rendu),
//! incomplete forms, strangers, transfers, help, loops and rate limits, `#prendre`,
//! `#annuler`, refused commands and closed threads. Every mail is made by openssl/Python and
//! every assertion is on what a user would see: the mail that arrived (decrypted and verified
//! with openssl), its headers, and the command line's output.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    MailSystem, compose, compose_signed_encrypted, header_values, open_as, run_ok, split_message,
    user_cert, user_email, user_key,
};
use gateway::{Db, GATEWAY, Gateway, INFECTIO, PNEUMO};
use serde_json::Value;
use sha2::{Digest, Sha256};

const T: Duration = Duration::from_secs(60);
const EXPERT: &str = "dr.ruch@hopital.test";
const INTRUDER: &str = "intrus@cabinet.test";

/// The seed's 16:08 answer.
const ANSWER_1: &str = "Bonjour\n\nCe ne sont que rarement des pathogènes et en tout cas on ne les traite jamais quand asymptomatique. Il faut juste vérifier PCR chlamydia et gonocoque sur les urines. L'orchite peut être une infection urinaire et pas forcément une IST.\n\nCordialement";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms").join(name)).unwrap()
}

fn gp() -> String {
    user_email("gp")
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn plus(tid: &str) -> String {
    format!("teleexpertise+{}@hopital.test", tid.to_lowercase())
}

/// A mail from PKI user `user` to `to`, signed with its key and encrypted to the gateway, as
/// the user's client makes it; sent through the Postfix MTA port.
fn send_as(
    mail: &MailSystem,
    user: &str,
    to: &str,
    subject: &str,
    body: &str,
    extra: &[&str],
) -> Vec<u8> {
    let raw = compose_signed_encrypted(user, to, "gateway", subject, body, extra);
    mail.send_raw(&user_email(user), &[to], &raw);
    raw
}

/// One received message: raw bytes and openssl's view of it (decrypted as its recipient).
struct Got {
    raw: Vec<u8>,
    open: Value,
}

impl Got {
    fn subject(&self) -> String {
        self.open["headers"]["Subject"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn text(&self) -> String {
        self.open["text"].as_str().unwrap_or_default().to_string()
    }
    fn header(&self, name: &str) -> Vec<String> {
        header_values(&self.raw, name)
    }
    /// The header block as the user's client shows it: raw and decoded, lowercased.
    fn headers_lower(&self) -> String {
        let (head, _) = split_message(&self.raw);
        format!(
            "{}\n{}",
            String::from_utf8_lossy(head),
            self.open["headers"]
        )
        .to_lowercase()
    }
    fn attachments(&self) -> Vec<Value> {
        self.open["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Waits until `user`'s INBOX holds `n` messages and returns the `n`-th (UID order), checked:
/// signed by the gateway (verified against the CA) and encrypted to the recipient.
fn nth(mail: &MailSystem, gw: &Gateway, user: &str, n: usize) -> Got {
    assert!(
        mail.wait_for_count(user, "INBOX", n, T),
        "{user}: fewer than {n} messages in INBOX\n--- teleavis log\n{}",
        gw.log()
    );
    let raw = mail.fetch(user, "INBOX").remove(n - 1);
    let open = open_as(user, &raw);
    assert_eq!(open["verified"], true, "{user} #{n}: not verified");
    assert_eq!(open["encrypted"], true, "{user} #{n}: not encrypted");
    assert_eq!(
        open["signed_by"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase(),
        GATEWAY
    );
    Got { raw, open }
}

/// `user`'s INBOX count stays `n` for a few seconds (the outbox polls every second).
fn stays(mail: &MailSystem, user: &str, n: usize) {
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(mail.count(user, "INBOX"), n, "{user}: INBOX count changed");
}

fn thread(gw: &Gateway, tid: &str) -> Value {
    gw.cli_json(&["threads", "show", tid, "--format", "json"])
}

fn status_of(gw: &Gateway, tid: &str) -> String {
    thread(gw, tid)["status"].as_str().unwrap().to_string()
}

fn wait_status(gw: &Gateway, tid: &str, want: &str) {
    gw.wait_until(&format!("{tid} {want}"), T, || {
        (status_of(gw, tid) == want).then_some(())
    });
}

/// Waits until the gateway has handled `n` messages (moved out of INBOX).
fn wait_handled(mail: &MailSystem, gw: &Gateway, processed: usize, quarantined: usize) {
    gw.wait_until(
        &format!("{processed} processed, {quarantined} quarantined"),
        T,
        || {
            let c = mail.counts(GATEWAY);
            let get = |k: &str| c.get(k).copied().unwrap_or(0);
            (get("Traités") >= processed && get("Quarantaine") >= quarantined && get("INBOX") == 0)
                .then_some(())
        },
    );
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The attachments of a gateway message, decrypted and unwrapped with openssl and Python's
/// email package (not teleavis): file name → bytes.
fn extract_attachments(user: &str, raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    const PY: &str = r#"
import sys, os, subprocess, email, email.policy, json
cert, key, out = sys.argv[1:4]
data = sys.stdin.buffer.read()
def cms(args, data):
    return subprocess.run(["openssl", "cms"] + args, input=data, capture_output=True, check=True).stdout
for _ in range(6):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    ct = msg.get_content_type()
    st = (msg.get_param("smime-type") or "").lower()
    if ct in ("application/pkcs7-mime", "application/x-pkcs7-mime") and "signed" not in st:
        data = cms(["-decrypt", "-binary", "-inform", "SMIME", "-recip", cert, "-inkey", key], data)
    elif "signed" in st:
        data = cms(["-verify", "-noverify", "-nosigs", "-binary", "-inform", "SMIME"], data)
    elif ct == "multipart/signed":
        msg = msg.get_payload(0)
        break
    else:
        break
names = []
for p in msg.walk():
    fn = p.get_filename()
    if fn and not p.is_multipart():
        names.append(fn)
        with open(os.path.join(out, str(len(names))), "wb") as f:
            f.write(p.get_payload(decode=True))
print(json.dumps(names))
"#;
    let dir = tempfile::tempdir().unwrap();
    let name = common::pki_user(user);
    let out = run_ok(
        Command::new("python3")
            .args(["-c", PY])
            .arg(user_cert(&name))
            .arg(user_key(&name))
            .arg(dir.path()),
        Some(raw),
    );
    let names: Vec<String> = serde_json::from_slice(&out).unwrap();
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n,
                std::fs::read(dir.path().join((i + 1).to_string())).unwrap(),
            )
        })
        .collect()
}

fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.pdf");
    std::fs::write(&p, pdf).unwrap();
    let out = run_ok(
        Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&p)
            .arg("-"),
        None,
    );
    String::from_utf8(out).unwrap()
}

/// Patient data of the seed's first case that must never appear in a header.
const CASE1_SECRETS: &[&str] = &[
    "julie",
    "23/01/1991",
    "2 91 01",
    "291015746312381",
    "mycoplasme",
    "orchite",
    "ureaplasma",
];

fn assert_no_patient_data_in_headers(got: &Got, secrets: &[&str]) {
    let head = got.headers_lower();
    for s in secrets {
        assert!(
            !head.contains(&s.to_lowercase()),
            "patient data {s:?} in the headers of {:?}",
            got.subject()
        );
    }
}

/// Opens a thread with the seed's first case; returns (thread id, the ack, the forward).
fn open_case1(mail: &MailSystem, gw: &Gateway, gp_n: usize, group_n: usize) -> (String, Got, Got) {
    send_as(
        mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &fixture("case1_mycoplasme.txt"),
        &[],
    );
    let ack = nth(mail, gw, &gp(), gp_n);
    let fwd = nth(mail, gw, INFECTIO, group_n);
    let tid = ack
        .header("X-Teleavis-Thread")
        .first()
        .cloned()
        .expect("X-Teleavis-Thread on the ack");
    (tid, ack, fwd)
}

fn assert_kinds_in_order(shown: &Value, want: &[(&str, &str)]) {
    let msgs = shown["messages"].as_array().unwrap();
    let got: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_string(),
                m["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut it = got.iter();
    for (d, k) in want {
        assert!(
            it.any(|(gd, gk)| gd == d && gk == k),
            "({d}, {k}) missing or out of order in {got:?}"
        );
    }
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = msgs
        .iter()
        .map(|m| chrono::DateTime::parse_from_rfc3339(m["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "messages not in time order: {times:?}"
    );
}

// ---------------------------------------------------------------------------------------------

#[test]
fn seed_case1_full_round_trip() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let (tid, ack, fwd) = open_case1(&mail, &gw, 1, 1);
    assert!(
        tid.starts_with("TE-") && tid.len() == "TE-2026-000001".len(),
        "{tid}"
    );

    // The acknowledgement: id, category, response time, phone.
    assert!(
        ack.subject().contains(&format!("[{tid}]")),
        "{}",
        ack.subject()
    );
    let t = ack.text();
    for want in [
        tid.as_str(),
        "Maladies infectieuses",
        "½ journée, du lundi au samedi matin",
        "03 00 00 00 00",
    ] {
        assert!(t.contains(want), "ack lacks {want:?}:\n{t}");
    }
    assert_no_patient_data_in_headers(&ack, CASE1_SECRETS);

    // The forward to the group.
    assert_eq!(
        fwd.subject(),
        format!("[{tid}] Nouvelle demande — Maladies infectieuses")
    );
    let reply_to = fwd.header("Reply-To").join(" ");
    assert!(reply_to.contains(&plus(&tid)), "Reply-To {reply_to}");
    assert_eq!(fwd.header("X-Teleavis-Thread"), vec![tid.clone()]);
    let t = fwd.text();
    for want in [
        "MARTIN",
        "Julie",
        "23/01/1991",
        "mycoplasme hominis et ureaplasma urealyticum",
        "Intérêt à la traiter ?",
        "10001234567",
    ] {
        assert!(t.contains(want), "forward lacks {want:?}:\n{t}");
    }
    assert_no_patient_data_in_headers(&fwd, CASE1_SECRETS);
    assert!(
        !fwd.headers_lower().contains("martin"),
        "the patient's name in the forward's headers"
    );
    let fwd_mid = fwd.header("Message-ID").remove(0);

    // The expert answers from their client: Reply-To, In-Reply-To, quoted history.
    let quoted = format!(
        "{ANSWER_1}\n\nLe 15/07/2024 à 16:04, Téléexpertise Hôpital de test <teleexpertise@hopital.test> a écrit :\n> Nouvelle demande de téléexpertise {tid} — Maladies infectieuses\n>\n> Patiente ayant eu des relations sexuelles non protégées avec un partenaire\n> Faut il faire ses recherches chez la patiente ?\n"
    );
    let in_reply_to = format!("In-Reply-To: {fwd_mid}");
    send_as(
        &mail,
        "expert",
        &plus(&tid),
        &format!("RE: [{tid}] Nouvelle demande — Maladies infectieuses"),
        &quoted,
        &[
            "--header",
            &in_reply_to,
            "--header",
            &format!("References: {fwd_mid}"),
        ],
    );
    let answer = nth(&mail, &gw, &gp(), 2);
    assert!(
        answer.subject().starts_with(&format!("[{tid}] Réponse")),
        "{}",
        answer.subject()
    );
    assert!(answer.header("Reply-To").join(" ").contains(&plus(&tid)));
    let t = answer.text();
    assert!(
        normalize(&t).contains(&normalize(&ANSWER_1[9..])),
        "answer not relayed:\n{t}"
    );
    for gone in ["a écrit", "> ", "Patiente ayant eu", "Faut il faire"] {
        assert!(!t.contains(gone), "quoted history {gone:?} relayed:\n{t}");
    }
    assert_no_patient_data_in_headers(&answer, CASE1_SECRETS);
    assert_eq!(status_of(&gw, &tid), "en_cours");

    // The GP follows up, answering the answer (token in the subject, the Reply-To address).
    let gp_reply_to = answer.header("Reply-To").join(" ");
    let gp_to = gp_reply_to
        .trim_matches(|c| c == '<' || c == '>' || c == ' ')
        .rsplit('<')
        .next()
        .unwrap()
        .trim_end_matches('>')
        .to_string();
    assert_eq!(gp_to, plus(&tid));
    let follow = format!(
        "Merci, je fais faire la PCR chlamydia et gonocoque.\n\nLe 15/07/2024 à 16:08, Téléexpertise Hôpital de test a écrit :\n> {}\n",
        ANSWER_1.replace('\n', "\n> ")
    );
    send_as(
        &mail,
        "gp",
        &gp_to,
        &format!("Re: [{tid}] Réponse — Maladies infectieuses"),
        &follow,
        &[
            "--header",
            &format!("In-Reply-To: {}", answer.header("Message-ID")[0]),
        ],
    );
    let relayed = nth(&mail, &gw, INFECTIO, 2);
    assert!(
        relayed.subject().contains(&format!("[{tid}]")),
        "{}",
        relayed.subject()
    );
    let t = relayed.text();
    assert!(
        t.contains("je fais faire la PCR chlamydia et gonocoque"),
        "{t}"
    );
    assert!(
        !t.contains("rarement des pathogènes"),
        "quoted history relayed to the group:\n{t}"
    );

    // The expert closes with a final sentence.
    let final_words = "Si les PCR reviennent négatives, pas de traitement.";
    send_as(
        &mail,
        "expert",
        &plus(&tid),
        &format!("RE: [{tid}] Complément"),
        &format!("#clore\n{final_words}\n"),
        &[],
    );
    wait_status(&gw, &tid, "terminee");
    let pdf_name = format!("compte-rendu-{tid}.pdf");
    for (user, n) in [(gp(), 3), (INFECTIO.to_string(), 3)] {
        let report = nth(&mail, &gw, &user, n);
        assert!(
            report
                .subject()
                .starts_with(&format!("[{tid}] Compte-rendu")),
            "{user}: {}",
            report.subject()
        );
        assert_no_patient_data_in_headers(&report, CASE1_SECRETS);
        let atts = report.attachments();
        assert_eq!(atts.len(), 1, "{atts:?}");
        assert_eq!(atts[0]["filename"], pdf_name.as_str());
        assert_eq!(atts[0]["content_type"], "application/pdf");
        let text = report.text();
        assert!(text.contains(&tid) && text.contains(final_words), "{text}");
        let files = extract_attachments(&user, &report.raw);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, pdf_name);
        assert_eq!(
            sha256(&files[0].1),
            atts[0]["sha256"].as_str().unwrap(),
            "extractor disagrees with mailtool"
        );
        let pdf = normalize(&pdftotext(&files[0].1));
        for want in [
            tid.as_str(),
            "Maladies infectieuses",
            "Hôpital de test",
            "née le 23/01/1991",
            "consentement exprès",
            "rarement des pathogènes",
            "PCR chlamydia et gonocoque",
            final_words,
            "TE2",
            "RQD",
            "Olivier",
            "Yvon",
        ] {
            assert!(pdf.contains(want), "{user}: the PDF lacks {want:?}:\n{pdf}");
        }
    }

    // The record, from the command line.
    let shown = thread(&gw, &tid);
    assert_eq!(shown["status"], "terminee");
    assert_eq!(shown["category"], "infectio");
    assert_eq!(shown["requester"], gp().as_str());
    assert!(shown["closed_at"].is_string());
    assert_kinds_in_order(
        &shown,
        &[
            ("in", "request"),
            ("out", "ack"),
            ("out", "forward"),
            ("in", "answer"),
            ("out", "answer"),
            ("in", "follow_up"),
            ("out", "follow_up"),
            ("in", "answer"),
            ("out", "report"),
            ("out", "report"),
        ],
    );
    let msgs = shown["messages"].as_array().unwrap();
    let ack_row = msgs.iter().find(|m| m["kind"] == "ack").unwrap();
    assert_eq!(
        ack_row["message_id"].as_str().unwrap(),
        ack.header("Message-ID")[0]
    );
    assert_eq!(ack_row["to"][0], gp().as_str());
    let fwd_row = msgs.iter().find(|m| m["kind"] == "forward").unwrap();
    assert_eq!(fwd_row["message_id"].as_str().unwrap(), fwd_mid);
    assert_eq!(fwd_row["to"][0], INFECTIO);
    let answer_in = msgs
        .iter()
        .find(|m| m["direction"] == "in" && m["kind"] == "answer")
        .unwrap();
    assert_eq!(answer_in["from"], EXPERT);

    let out = gw.cli(&["report", &tid, "--format", "text"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = normalize(&String::from_utf8_lossy(&out.stdout));
    for want in [
        tid.as_str(),
        "Maladies infectieuses",
        "née le 23/01/1991",
        "consentement exprès",
        "rarement des pathogènes",
        final_words,
        "TE2",
        "RQD",
    ] {
        assert!(
            text.contains(want),
            "report --format text lacks {want:?}:\n{text}"
        );
    }
    let pdf_path = gw.dir.path().join("cr.pdf");
    let out = gw.cli(&[
        "report",
        &tid,
        "--format",
        "pdf",
        "--output",
        pdf_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pdf = std::fs::read(&pdf_path).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let pdf = normalize(&pdftotext(&pdf));
    assert!(
        pdf.contains(&tid) && pdf.contains("née le 23/01/1991") && pdf.contains(final_words),
        "{pdf}"
    );

    // The human-readable thread, and the activity figures.
    let out = gw.cli(&["threads", "show", &tid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown_text = String::from_utf8_lossy(&out.stdout);
    for want in [
        tid.as_str(),
        "terminee",
        "request",
        "forward",
        "answer",
        "follow_up",
        "report",
    ] {
        assert!(
            shown_text.contains(want),
            "threads show lacks {want:?}:\n{shown_text}"
        );
    }
    let stats = gw.cli_json(&["stats", "--by", "category", "--format", "json"]);
    let row = &stats[0];
    assert_eq!(stats.as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(row["group"], "infectio");
    assert_eq!(row["requests"], 1);
    assert_eq!(row["distinct_requesters"], 1);
    assert_eq!(row["answered"], 1);
    assert_eq!(row["closed"], 1);
    let out = gw.cli(&["stats", "--by", "month", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(out.status.success() && lines.len() == 2, "{csv}");
    assert!(
        lines[0].starts_with("month,requests,distinct_requesters"),
        "{csv}"
    );
    gw.stop();
}

fn write_pdf(dir: &Path, name: &str, label: &str) -> (std::path::PathBuf, Vec<u8>) {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({label}) Tj ET");
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = vec![];
    for (i, o) in objs.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    let path = dir.join(name);
    std::fs::write(&path, &pdf).unwrap();
    (path, pdf)
}

#[test]
fn seed_case2_attachments_forwarded_unchanged_then_transferred_to_pneumo() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let files = tempfile::tempdir().unwrap();
    let (p1, b1) = write_pdf(
        files.path(),
        "20241012135021541.pdf",
        "ECBU 12/10 Klebsiella pneumoniae BLSE",
    );
    let (p2, b2) = write_pdf(
        files.path(),
        "251be22f-1352-4c69-9b83-dffac445989f.pdf",
        "Bilan renal DFG 31",
    );
    let a1 = format!("{}:application/pdf", p1.display());
    let a2 = format!("{}:application/pdf", p2.display());
    send_as(
        &mail,
        "gp2",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &fixture("case2_klebsiella.txt"),
        &["--attach", &a1, "--attach", &a2],
    );
    let gp2 = user_email("gp2");
    let ack = nth(&mail, &gw, &gp2, 1);
    let tid = ack.header("X-Teleavis-Thread").remove(0);
    let secrets = [
        "carl",
        "nem",
        "12/03/1945",
        "1 45 03",
        "145036748204506",
        "blebsiella",
        "ceftriaxone",
    ];

    let fwd = nth(&mail, &gw, INFECTIO, 1);
    assert_eq!(
        fwd.subject(),
        format!("[{tid}] Nouvelle demande — Maladies infectieuses")
    );
    assert_no_patient_data_in_headers(&fwd, &secrets);
    let want = [
        ("20241012135021541.pdf", sha256(&b1), b1.len()),
        (
            "251be22f-1352-4c69-9b83-dffac445989f.pdf",
            sha256(&b2),
            b2.len(),
        ),
    ];
    let check_files = |got: &Got, user: &str| {
        let atts = got.attachments();
        assert_eq!(atts.len(), 2, "{atts:?}");
        for (name, sha, size) in &want {
            let a = atts
                .iter()
                .find(|a| a["filename"] == *name)
                .unwrap_or_else(|| panic!("{name} missing: {atts:?}"));
            assert_eq!(a["sha256"].as_str().unwrap(), sha, "{name} changed");
            assert_eq!(a["size"].as_u64().unwrap() as usize, *size);
            assert_eq!(a["content_type"], "application/pdf");
        }
        let extracted = extract_attachments(user, &got.raw);
        assert_eq!(
            extracted
                .iter()
                .find(|(n, _)| n == "20241012135021541.pdf")
                .unwrap()
                .1,
            b1
        );
        assert_eq!(
            extracted
                .iter()
                .find(|(n, _)| n == "251be22f-1352-4c69-9b83-dffac445989f.pdf")
                .unwrap()
                .1,
            b2
        );
    };
    check_files(&fwd, INFECTIO);
    let t = fwd.text();
    for want in [
        "Terrain sous-jacent",
        "infection urinaire à blebsiella pneumoniae BLSE",
        "Allergies médicamenteuses connues (dont antibiotiques)",
        "Patient actuellement en structure hospitalière",
        "Fonction rénale récente",
        "30-60",
        "Anamnèse",
        "retour à l'ehpad avec poursuite ceftriaxone",
        "poids 66kg",
        "quel antibiothérapie vous parait envisageable ?",
        "NEM",
        "Carl",
        "12/03/1945",
    ] {
        assert!(t.contains(want), "forward lacks {want:?}:\n{t}");
    }
    // The record lists the files with their hashes.
    let shown = thread(&gw, &tid);
    let req = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "request")
        .unwrap()
        .clone();
    let shas: Vec<&str> = req["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sha256"].as_str().unwrap())
        .collect();
    assert!(
        shas.contains(&want[0].1.as_str()) && shas.contains(&want[1].1.as_str()),
        "{req}"
    );

    // The group answers from its own address to the plain gateway address: matched by
    // In-Reply-To alone.
    let fwd_mid = fwd.header("Message-ID").remove(0);
    let irt = format!("In-Reply-To: {fwd_mid}");
    send_as(
        &mail,
        "infectio",
        GATEWAY,
        "RE: Nouvelle demande",
        "Quelle est la clairance de la créatinine ?",
        &["--header", &irt],
    );
    let question = nth(&mail, &gw, &gp2, 2);
    assert!(
        question.subject().starts_with(&format!("[{tid}] Réponse")),
        "{}",
        question.subject()
    );
    assert!(
        question
            .text()
            .contains("Quelle est la clairance de la créatinine ?")
    );
    assert_eq!(status_of(&gw, &tid), "en_cours");
    // The GP answers to the plain address, the token only in the subject.
    send_as(
        &mail,
        "gp2",
        GATEWAY,
        &format!("Re: [{tid}] Réponse — Maladies infectieuses"),
        "Clairance 31 mL/min (Cockcroft).",
        &[],
    );
    let complement = nth(&mail, &gw, INFECTIO, 2);
    assert!(
        complement.subject().contains(&format!("[{tid}]")),
        "{}",
        complement.subject()
    );
    assert!(
        complement
            .text()
            .contains("Clairance 31 mL/min (Cockcroft).")
    );

    // A transfer to a category that does not exist is refused, with the valid ids.
    send_as(
        &mail,
        "expert",
        &plus(&tid),
        &format!("RE: [{tid}] Nouvelle demande — Maladies infectieuses"),
        "#transferer nephro\n",
        &[],
    );
    let refused = nth(&mail, &gw, EXPERT, 1);
    let t = refused.text();
    assert!(
        refused.subject().contains(&format!("[{tid}]")),
        "{}",
        refused.subject()
    );
    assert!(t.contains("nephro") && t.contains("n'existe pas"), "{t}");
    assert!(
        t.contains("pneumo (Pneumologie)") && t.contains("infectio (Maladies infectieuses)"),
        "{t}"
    );
    assert_eq!(thread(&gw, &tid)["category"], "infectio");

    // Transfer: the expert sends `#transferer pneumo` from their own address.
    send_as(
        &mail,
        "expert",
        &plus(&tid),
        &format!("RE: [{tid}] Nouvelle demande — Maladies infectieuses"),
        "#transferer pneumo\nAvis pneumologique souhaité (terrain respiratoire).\n",
        &[],
    );
    let moved = nth(&mail, &gw, PNEUMO, 1);
    let shown = thread(&gw, &tid);
    assert_eq!(shown["category"], "pneumo");
    assert_eq!(shown["status"], "nouvelle");
    assert!(
        moved
            .subject()
            .starts_with(&format!("[{tid}] Nouvelle demande")),
        "{}",
        moved.subject()
    );
    assert!(
        moved.subject().contains("Pneumologie"),
        "{}",
        moved.subject()
    );
    assert!(moved.header("Reply-To").join(" ").contains(&plus(&tid)));
    assert_no_patient_data_in_headers(&moved, &secrets);
    check_files(&moved, PNEUMO);
    let t = moved.text();
    for want in [
        "Fonction rénale récente",
        "30-60",
        "quel antibiothérapie vous parait envisageable ?",
        "12/03/1945",
    ] {
        assert!(t.contains(want), "transferred request lacks {want:?}:\n{t}");
    }
    // The GP is told.
    let told = nth(&mail, &gw, &gp2, 3);
    assert!(
        told.subject().contains(&format!("[{tid}]")),
        "{}",
        told.subject()
    );
    assert!(
        told.text().contains("Pneumologie") && told.text().contains(&tid),
        "{}",
        told.text()
    );
    // The group that had it learns where it went.
    let left = nth(&mail, &gw, INFECTIO, 3);
    assert!(
        left.subject().contains(&format!("[{tid}] Transfert")),
        "{}",
        left.subject()
    );
    assert!(left.text().contains("Pneumologie"), "{}", left.text());
    // Pneumo's expert may now answer; the infectio expert's rights went with the category.
    send_as(
        &mail,
        "expert2",
        &plus(&tid),
        &format!("RE: [{tid}] Nouvelle demande"),
        "Pas d'argument pour une atteinte pulmonaire : avis infectiologique suffisant.",
        &[],
    );
    let answer = nth(&mail, &gw, &gp2, 4);
    assert!(
        answer.subject().starts_with(&format!("[{tid}] Réponse")),
        "{}",
        answer.subject()
    );
    assert!(
        answer
            .text()
            .contains("Pas d'argument pour une atteinte pulmonaire")
    );
    assert_eq!(status_of(&gw, &tid), "en_cours");

    // The pneumologist closes: the compte-rendu names the new category, the form's fields and
    // the files.
    send_as(
        &mail,
        "expert2",
        &plus(&tid),
        &format!("RE: [{tid}] Nouvelle demande"),
        "#clore\nRelais par l'infectiologue de garde pour l'antibiothérapie.",
        &[],
    );
    wait_status(&gw, &tid, "terminee");
    let report = nth(&mail, &gw, &gp2, 5);
    assert!(
        report
            .subject()
            .starts_with(&format!("[{tid}] Compte-rendu — Pneumologie")),
        "{}",
        report.subject()
    );
    assert_no_patient_data_in_headers(&report, &secrets);
    let files = extract_attachments(&gp2, &report.raw);
    let pdf = files
        .iter()
        .find(|(n, _)| n == &format!("compte-rendu-{tid}.pdf"))
        .expect("the PDF");
    let pdf = normalize(&pdftotext(&pdf.1));
    for want in [
        tid.as_str(),
        "Pneumologie",
        "homme né le 12/03/1945",
        "Fonction rénale récente",
        "30-60",
        "Terrain sous-jacent",
        "quel antibiothérapie vous parait envisageable ?",
        "Clairance 31 mL/min",
        "Relais par l'infectiologue de garde",
        "20241012135021541.pdf",
        "251be22f-1352-4c69-9b83-dffac445989f.pdf",
        // Each expert with their own specialty, the group once.
        "Yvon RUCH, Maladies infectieuses, RPPS : 10009876543",
        "Anne LEGRAND, Pneumologie, RPPS : 10001112223",
        "Maladies infectieuses, RPPS : non communiqué, messagerie : infectio@hopital.test",
    ] {
        assert!(pdf.contains(want), "the PDF lacks {want:?}:\n{pdf}");
    }
    assert!(
        !pdf.contains("Maladies infectieuses, Maladies infectieuses"),
        "{pdf}"
    );
    assert!(!pdf.contains("Maladies infectieuses, Pneumologie"), "{pdf}");
    gw.stop();
}

#[test]
fn missing_consent_is_sent_back_and_nothing_is_forwarded() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &fixture("missing_consent.txt"),
        &[],
    );
    let reply = nth(&mail, &gw, &gp(), 1);
    let t = reply.text();
    for want in [
        "n'a pas été transmise",
        "Consentement du patient : champ obligatoire non rempli",
        "teleexpertise+infectio@hopital.test",
        "GARNIER",
        "Hugo",
        "19/09/2001",
        "Syphilis latente précoce, allergie pénicilline",
    ] {
        assert!(t.contains(want), "reply lacks {want:?}:\n{t}");
    }
    // The filled-in form, ready to correct: the consent line is there, empty.
    assert!(
        t.lines()
            .any(|l| l.starts_with("Consentement du patient") && l.trim_end().ends_with(':')),
        "{t}"
    );
    assert_eq!(reply.header("Auto-Submitted"), vec!["auto-generated"]);
    assert_no_patient_data_in_headers(&reply, &["garnier", "hugo", "19/09/2001", "syphilis"]);
    wait_handled(&mail, &gw, 1, 0);
    stays(&mail, &gp(), 1);
    assert_eq!(mail.count(INFECTIO, "INBOX"), 0, "forwarded to the group");
    assert!(gw.threads().is_empty(), "a thread was opened");

    // The same GP's corrected form, from a webmail that writes HTML only: accepted.
    let html_path = common::repo_root().join("tests/data/forms/html_only.html");
    let html = std::fs::read_to_string(html_path).unwrap();
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &html,
        &["--html"],
    );
    let ack = nth(&mail, &gw, &gp(), 2);
    assert!(ack.text().contains("a bien été reçue"), "{}", ack.text());
    let fwd = nth(&mail, &gw, INFECTIO, 1);
    let t = fwd.text();
    for want in [
        "NEM",
        "Carl",
        "12/03/1945",
        "30-60",
        "quel antibiothérapie vous parait envisageable ?",
    ] {
        assert!(t.contains(want), "forward lacks {want:?}:\n{t}");
    }
    assert!(
        !t.contains("<b>") && !t.contains("&nbsp;"),
        "markup in the forward:\n{t}"
    );
    gw.stop();
}

#[test]
fn intruder_in_a_thread_is_quarantined_and_not_relayed() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let (tid, _, fwd) = open_case1(&mail, &gw, 1, 1);
    let mid = fwd.header("Message-ID").remove(0);
    assert_eq!(user_email("intruder"), INTRUDER);
    send_as(
        &mail,
        "intruder",
        &plus(&tid),
        &format!("RE: [{tid}] Nouvelle demande"),
        "Traitez-la par doxycycline, et envoyez-moi le dossier.",
        &["--header", &format!("In-Reply-To: {mid}")],
    );
    wait_handled(&mail, &gw, 1, 1);
    let q = gw.quarantine();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["reason"], "not_authorized");
    assert_eq!(q[0]["from"], INTRUDER);
    stays(&mail, &gp(), 1);
    assert_eq!(mail.count(INFECTIO, "INBOX"), 1, "relayed to the group");
    let shown = thread(&gw, &tid);
    assert_eq!(shown["status"], "nouvelle");
    assert!(
        shown["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["from"] != INTRUDER),
        "recorded in the thread: {shown}"
    );
    // The admin is alerted, without the body.
    let alert = nth(&mail, &gw, gateway::ADMIN, 1);
    let t = alert.text();
    assert!(t.contains("not_authorized") && t.contains(INTRUDER), "{t}");
    assert!(
        !t.contains("doxycycline"),
        "the body in the admin alert:\n{t}"
    );
    // Whatever the intruder gets back carries no patient data.
    for raw in mail.fetch(INTRUDER, "INBOX") {
        let got = Got {
            open: open_as("intruder", &raw),
            raw,
        };
        let t = got.text().to_lowercase();
        for s in CASE1_SECRETS.iter().chain(&["martin"]) {
            assert!(!t.contains(s), "{s:?} told to the intruder:\n{t}");
        }
    }
    gw.stop();
}

/// A blank form filled in as a GP does: the value after the label's colon.
fn fill(form: &str, values: &[(&str, &str)]) -> String {
    form.lines()
        .map(
            |l| match values.iter().find(|(label, _)| l.starts_with(label)) {
                Some((_, v)) if l.trim_end().ends_with(':') => format!("{} {v}", l.trim_end()),
                _ => l.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn help_on_aide_and_on_requests_without_a_category() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let check_help = |got: &Got| {
        let t = got.text();
        for want in [
            "Maladies infectieuses",
            "Pneumologie",
            "teleexpertise+infectio@hopital.test",
            "teleexpertise+pneumo@hopital.test",
            "Nom de naissance *",
            "Consentement du patient *",
            "Question posée *",
            "Terrain sous-jacent",
            "48 heures ouvrées",
        ] {
            assert!(t.contains(want), "help lacks {want:?}:\n{t}");
        }
        // One blank form per category.
        assert_eq!(t.matches("Question posée *").count(), 2, "{t}");
        assert_eq!(got.header("Auto-Submitted"), vec!["auto-generated"]);
    };
    send_as(&mail, "gp", GATEWAY, "aide", "", &[]);
    let help = nth(&mail, &gw, &gp(), 1);
    check_help(&help);

    // A request to the plain address with no `Catégorie :` line: the same help, and why.
    send_as(
        &mail,
        "gp",
        GATEWAY,
        "Demande d'avis",
        &fixture("case1_mycoplasme.txt"),
        &[],
    );
    let help2 = nth(&mail, &gw, &gp(), 2);
    check_help(&help2);
    assert!(
        help2.text().contains("ne dit pas à quelle spécialité"),
        "{}",
        help2.text()
    );
    assert!(gw.threads().is_empty());

    // With `Catégorie : Pneumologie`: a pneumo thread.
    let body = format!(
        "Catégorie : Pneumologie\n\n{}",
        fixture("case1_mycoplasme.txt")
    );
    send_as(&mail, "gp", GATEWAY, "Demande d'avis", &body, &[]);
    let ack = nth(&mail, &gw, &gp(), 3);
    let tid = ack.header("X-Teleavis-Thread").remove(0);
    assert!(
        ack.text().contains("Pneumologie") && ack.text().contains("48 heures ouvrées"),
        "{}",
        ack.text()
    );
    let fwd = nth(&mail, &gw, PNEUMO, 1);
    assert_eq!(
        fwd.subject(),
        format!("[{tid}] Nouvelle demande — Pneumologie")
    );
    let threads = gw.threads();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0]["category"], "pneumo");
    assert_eq!(mail.count(INFECTIO, "INBOX"), 0);

    // The GP copies the blank form of the help, fills it in, and sends it to the plain address:
    // the form's own `Catégorie :` line takes it to the right group.
    let help_text = help.text();
    let section = help_text
        .split("== Maladies infectieuses ==")
        .nth(1)
        .and_then(|s| s.split("== Pneumologie ==").next())
        .expect("the infectio section of the help");
    let blank = &section[section.find("Les champs marqués").expect("the blank form")..];
    let filled = fill(
        blank,
        &[
            ("Nom de naissance", "DURAND"),
            ("Prénom(s)", "Anne"),
            ("Sexe", "F"),
            ("Date de naissance", "14/02/1980"),
            ("Consentement du patient", "oui"),
            ("Terrain sous-jacent", "aucun"),
            (
                "Question posée",
                "Érythème migrant après morsure de tique : doxycycline 14 jours ?",
            ),
        ],
    );
    send_as(&mail, "gp", GATEWAY, "Demande d'avis", &filled, &[]);
    let ack = nth(&mail, &gw, &gp(), 4);
    assert!(
        ack.text().contains("Maladies infectieuses"),
        "{}\n--- sent:\n{filled}",
        ack.text()
    );
    let fwd = nth(&mail, &gw, INFECTIO, 1);
    assert!(
        fwd.text().contains("DURAND") && fwd.text().contains("Érythème migrant"),
        "{}",
        fwd.text()
    );

    // An alias address chooses the category too (the mail server delivers the alias to the
    // gateway's mailbox; the To header keeps the alias).
    let raw = compose_signed_encrypted(
        "gp2",
        "infectiologie@hopital.test",
        "gateway",
        "Demande d'avis",
        &fixture("case1_mycoplasme.txt"),
        &[],
    );
    mail.send_raw(&user_email("gp2"), &[GATEWAY], &raw);
    let fwd = nth(&mail, &gw, INFECTIO, 2);
    assert!(
        fwd.subject()
            .ends_with("Nouvelle demande — Maladies infectieuses"),
        "{}",
        fwd.subject()
    );
    assert_eq!(gw.threads().len(), 3);
    gw.stop();
}

#[test]
fn auto_replies_are_quarantined_and_answers_are_rate_limited() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let (tid, _, _) = open_case1(&mail, &gw, 1, 1);
    let subject = format!("Réponse automatique : [{tid}] Accusé de réception");
    let body = "Je suis absent du cabinet jusqu'au 02/12. En cas d'urgence, contactez le 15.";
    // Signed and encrypted, as an MSSanté client's absence message is.
    for _ in 0..2 {
        send_as(
            &mail,
            "gp",
            &plus(&tid),
            &subject,
            body,
            &["--header", "Auto-Submitted: auto-replied"],
        );
    }
    // In clear, as a server-side vacation responder writes it.
    for extra in [
        ["--header", "Auto-Submitted: auto-replied"],
        ["--header", "Precedence: bulk"],
    ] {
        let raw = compose(&[
            "--from",
            &gp(),
            "--to",
            &plus(&tid),
            "--subject",
            &subject,
            "--body",
            body,
            extra[0],
            extra[1],
        ]);
        mail.send_raw(&gp(), &[&plus(&tid)], &raw);
    }
    wait_handled(&mail, &gw, 1, 4);
    let q = gw.quarantine();
    assert_eq!(q.len(), 4, "{q:?}");
    assert!(q.iter().all(|r| r["reason"] == "automatic"), "{q:?}");
    stays(&mail, &gp(), 1);
    assert_eq!(
        mail.count(INFECTIO, "INBOX"),
        1,
        "an automatic message relayed to the group"
    );
    assert_eq!(status_of(&gw, &tid), "nouvelle");

    // Seven `aide` mails within the hour: five answers at most. Each text differs: the same
    // text signed in the same second would be one message replayed (a duplicate).
    for n in 0..7 {
        send_as(&mail, "gp", GATEWAY, "aide", &format!("Envoi {n}"), &[]);
    }
    wait_handled(&mail, &gw, 8, 4);
    assert!(mail.wait_for_count(&gp(), "INBOX", 6, T), "{}", gw.log());
    stays(&mail, &gp(), 6);
    gw.stop();
}

#[test]
fn prendre_annuler_refused_clore_and_closed_threads() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let (a, _, _) = open_case1(&mail, &gw, 1, 1);

    // #prendre by the expert.
    send_as(
        &mail,
        "expert",
        &plus(&a),
        &format!("RE: [{a}] Nouvelle demande"),
        "#prendre\n",
        &[],
    );
    let taken = nth(&mail, &gw, INFECTIO, 2);
    assert!(
        taken
            .subject()
            .starts_with(&format!("[{a}] Prise en charge")),
        "{}",
        taken.subject()
    );
    assert!(
        taken.text().contains("prise en charge") && taken.text().contains("RUCH"),
        "{}",
        taken.text()
    );
    let shown = thread(&gw, &a);
    assert_eq!(shown["status"], "en_cours");
    assert_eq!(shown["taken_by"], EXPERT);
    assert!(
        shown["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["direction"] == "in" && m["kind"] == "command")
    );

    // #clore from the GP is refused, with a notice; the thread stays open.
    send_as(
        &mail,
        "gp",
        &plus(&a),
        &format!("Re: [{a}] Accusé de réception"),
        "#clore\n",
        &[],
    );
    let refused = nth(&mail, &gw, &gp(), 2);
    assert!(
        refused.subject().contains(&format!("[{a}]")),
        "{}",
        refused.subject()
    );
    assert!(
        refused.text().contains("seul un expert peut clore") && refused.text().contains("#annuler"),
        "{}",
        refused.text()
    );
    wait_handled(&mail, &gw, 3, 0);
    assert_eq!(status_of(&gw, &a), "en_cours");
    stays(&mail, INFECTIO, 2);

    // #annuler by the GP on another thread.
    let (b, _, _) = open_case1(&mail, &gw, 3, 3);
    send_as(
        &mail,
        "gp",
        &plus(&b),
        &format!("Re: [{b}] Accusé de réception"),
        // As the acknowledgement writes it, period included.
        "#annuler.\nLa patiente a consulté aux urgences.\n",
        &[],
    );
    wait_status(&gw, &b, "annulee");
    let group_msgs: Vec<Got> = (4..=5).map(|n| nth(&mail, &gw, INFECTIO, n)).collect();
    assert!(
        group_msgs
            .iter()
            .any(|g| g.subject().starts_with(&format!("[{b}] Annulation"))
                && g.text().contains("annulée")),
        "no cancellation notice: {:?}",
        group_msgs.iter().map(Got::subject).collect::<Vec<_>>()
    );
    assert!(
        group_msgs
            .iter()
            .any(|g| g.text().contains("La patiente a consulté aux urgences."))
    );
    let gp_cancel = nth(&mail, &gw, &gp(), 4);
    assert!(gp_cancel.text().contains("annulée"), "{}", gp_cancel.text());
    assert_eq!(status_of(&gw, &a), "en_cours", "the other thread changed");

    // A message to the closed thread: a notice pointing to a new request.
    send_as(
        &mail,
        "gp",
        &plus(&b),
        &format!("Re: [{b}] Annulation"),
        "Finalement, pouvez-vous quand même répondre ?",
        &[],
    );
    let closed = nth(&mail, &gw, &gp(), 5);
    let t = closed.text();
    assert!(t.contains(&format!("Demande précédente : {b}")), "{t}");
    assert!(t.contains("teleexpertise+infectio@hopital.test"), "{t}");
    stays(&mail, INFECTIO, 5);
    assert_eq!(status_of(&gw, &b), "annulee");

    // A new request with that line is linked to the old thread. The GP does as the notice
    // says, answering it: the subject keeps the old token, the address is the category's.
    let body = format!(
        "Demande précédente : {b}\n\n{}",
        fixture("case1_mycoplasme.txt")
    );
    let irt = format!("In-Reply-To: {}", closed.header("Message-ID")[0]);
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        &format!("Re: {}", closed.subject()),
        &body,
        &["--header", &irt],
    );
    let ack = nth(&mail, &gw, &gp(), 6);
    let c = ack.header("X-Teleavis-Thread").remove(0);
    assert_ne!(c, b);
    assert!(ack.text().contains(&b), "{}", ack.text());
    let threads = gw.threads();
    let new = threads.iter().find(|t| t["id"] == c.as_str()).unwrap();
    assert_eq!(new["previous_thread"], b.as_str());
    assert_eq!(new["status"], "nouvelle");
    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["threads", "list", "--format", "json"];
        full.extend_from_slice(args);
        let v = gw.cli_json(&full);
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&["--status", "annulee"]), vec![b.clone()]);
    assert_eq!(
        ids(&["--status", "en_cours", "--category", "infectio"]),
        vec![a.clone()]
    );
    assert!(ids(&["--category", "pneumo"]).is_empty());
    // The compte-rendu of an open thread can be printed at any time.
    let out = gw.cli(&["report", &a, "--format", "text"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a));
    let out = gw.cli(&["report", "TE-2026-999999"]);
    assert_eq!(out.status.code(), Some(2), "unknown thread: {out:?}");

    // Back on the first thread: the expert answers from Outlook (HTML only, an Outlook header
    // block above the quoted request, a prescription attached), to the Reply-To address as
    // the client wrote it in capitals.
    let files = tempfile::tempdir().unwrap();
    let (rx, rx_bytes) = write_pdf(files.path(), "ordonnance.pdf", "Doxycycline 100 mg");
    let rx_arg = format!("{}:application/pdf", rx.display());
    let html = format!(
        "<html><body><p>Bonjour,</p><p>Ordonnance ci-jointe : doxycycline 7 jours pour le couple.</p>\
         <p>Bien confraternellement</p><div><hr><p><b>De :</b> Téléexpertise Hôpital de test \
         &lt;teleexpertise@hopital.test&gt;<br><b>Envoyé :</b> lundi 15 juillet 2024 16:04<br>\
         <b>À :</b> infectio@hopital.test<br><b>Objet :</b> [{a}] Nouvelle demande</p></div>\
         <p>Patiente ayant eu des relations sexuelles non protégées avec un partenaire</p>\
         </body></html>"
    );
    let upper = format!("teleexpertise+{a}@hopital.test");
    send_as(
        &mail,
        "expert",
        &upper,
        &format!("RE: [{a}] Nouvelle demande"),
        &html,
        &["--html", "--attach", &rx_arg],
    );
    let answer = nth(&mail, &gw, &gp(), 7);
    assert!(
        answer.subject().starts_with(&format!("[{a}] Réponse")),
        "{}",
        answer.subject()
    );
    let t = answer.text();
    assert!(t.contains("doxycycline 7 jours pour le couple"), "{t}");
    for gone in ["Envoyé", "Patiente ayant eu", "Objet"] {
        assert!(!t.contains(gone), "quoted history {gone:?} relayed:\n{t}");
    }
    let atts = answer.attachments();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["filename"], "ordonnance.pdf");
    assert_eq!(atts[0]["sha256"].as_str().unwrap(), sha256(&rx_bytes));

    // The GP simply answers the closed-thread notice (to its Reply-To, the old token) with the
    // line and a new form: a new request in the old thread's category.
    let notice_reply_to = closed.header("Reply-To").join(" ");
    assert!(notice_reply_to.contains(&plus(&b)), "{notice_reply_to}");
    let body = format!(
        "Demande précédente : {b}\n\n{}",
        fixture("case1_mycoplasme.txt")
    );
    send_as(
        &mail,
        "gp",
        &plus(&b),
        &format!("Re: {}", closed.subject()),
        &body,
        &[],
    );
    let ack = nth(&mail, &gw, &gp(), 8);
    let d = ack.header("X-Teleavis-Thread").remove(0);
    assert!(
        ![a.as_str(), b.as_str(), c.as_str()].contains(&d.as_str()),
        "{d}"
    );
    assert!(
        ack.text().contains("Maladies infectieuses"),
        "{}",
        ack.text()
    );
    let threads = gw.threads();
    let new = threads.iter().find(|t| t["id"] == d.as_str()).unwrap();
    assert_eq!(new["previous_thread"], b.as_str());
    assert_eq!(new["category"], "infectio");
    gw.stop();
}
