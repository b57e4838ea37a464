//! The national directory end to end, through the real Postfix and Dovecot: the sample in the
//! real file's layout imported by the command line, then who people are in the
//! acknowledgement, the forward and the compte-rendu (PDF read by `pdftotext`), `stats --by
//! department` with real departments, a pharmacist refused, a bad file that changes nothing,
//! and a certificate whose RPPS is not the directory's quarantined as `directory_mismatch`.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::process::Command;
use std::time::Duration;

use common::{MailSystem, compose_signed_encrypted, open_as, run_ok, user_email};
use gateway::{Db, GATEWAY, Gateway, INFECTIO};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn sample() -> std::path::PathBuf {
    common::repo_root().join("../shared/directory/Extraction_Correspondance_MSSante_sample.txt")
}

fn send_as(mail: &MailSystem, user: &str, to: &str, subject: &str, body: &str) {
    let raw = compose_signed_encrypted(user, to, "gateway", subject, body, &[]);
    mail.send_raw(&user_email(user), &[to], &raw);
}

/// The `n`-th message of `user`'s INBOX, decrypted and verified by openssl.
fn nth(mail: &MailSystem, gw: &Gateway, user: &str, n: usize) -> Value {
    assert!(
        mail.wait_for_count(user, "INBOX", n, T),
        "{user}: fewer than {n} messages\n--- teleavis log\n{}",
        gw.log()
    );
    let open = open_as(user, &mail.fetch(user, "INBOX").remove(n - 1));
    assert_eq!(open["verified"], true, "{user} #{n} not verified");
    open
}

fn text(v: &Value) -> String {
    v["text"].as_str().unwrap_or_default().to_string()
}

fn subject(v: &Value) -> String {
    v["headers"]["Subject"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms").join(name)).unwrap()
}

#[test]
fn directory_import_then_who_people_are_everywhere() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let sample = sample();

    // Import, then a bad file that changes nothing and is named with its line.
    let out = gw.cli(&["directory", "import", sample.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("12 lines, 11 entries"), "{said}");
    let text_file = std::fs::read_to_string(&sample).unwrap();
    let mut lines: Vec<&str> = text_file.lines().collect();
    lines[3] = "PER|dr.x@cabinet.test|8|1";
    let bad = gw.dir.path().join("Extraction_bad.txt");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = gw.cli(&["directory", "import", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Extraction_bad.txt: line 4:"), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    let out = gw.cli(&["directory", "show", "Dr.Martin@Cabinet.test"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("Spécialiste en Médecine générale"),
        "{shown}"
    );
    assert!(shown.contains("57"), "{shown}");
    let out = gw.cli(&["directory", "show", "810005550006"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pharmacien"));

    gw.start();
    // The seed's first case from dr.martin (RPPS 10001234567, Médecine générale, Moselle).
    send_as(
        &mail,
        "gp",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &fixture("case1_mycoplasme.txt"),
    );
    let gp = user_email("gp");
    let ack = nth(&mail, &gw, &gp, 1);
    let t = text(&ack);
    assert!(
        t.contains(
            "Requérant : Dr Olivier MARTIN — Spécialiste en Médecine générale — RPPS 10001234567"
        ),
        "{t}"
    );
    assert!(
        t.contains("Dr Yvon RUCH — Spécialiste en Maladies infectieuses et tropicales"),
        "{t}"
    );
    let fwd = nth(&mail, &gw, INFECTIO, 1);
    let t = text(&fwd);
    assert!(
        t.lines().any(|l| l.starts_with("Requérant : ")
            && l.contains("Spécialiste en Médecine générale")
            && l.contains("département 57")),
        "{t}"
    );
    let tid = gw.threads()[0]["id"].as_str().unwrap().to_string();

    // The expert closes; the compte-rendu names both with their specialties.
    send_as(
        &mail,
        "expert",
        &format!("teleexpertise+{}@hopital.test", tid.to_lowercase()),
        &format!("RE: [{tid}] Nouvelle demande — Maladies infectieuses"),
        "#clore\nPas de traitement chez une patiente asymptomatique.\n",
    );
    let report = gw.wait_until("the compte-rendu", T, || {
        let n = mail.count(&gp, "INBOX");
        (2..=n)
            .map(|i| open_as(&gp, &mail.fetch(&gp, "INBOX").remove(i - 1)))
            .find(|m| subject(m).contains("Compte-rendu"))
    });
    let t = text(&report);
    assert!(t.contains("Spécialiste en Médecine générale"), "{t}");
    assert!(
        t.contains("Spécialiste en Maladies infectieuses et tropicales"),
        "{t}"
    );
    let pdf = gw.dir.path().join("cr.pdf");
    let out = gw.cli(&[
        "report",
        &tid,
        "--format",
        "pdf",
        "--output",
        pdf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pdf_text = String::from_utf8(run_ok(
        Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&pdf)
            .arg("-"),
        None,
    ))
    .unwrap();
    let flat = pdf_text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Spécialiste en Médecine générale"),
        "{pdf_text}"
    );
    assert!(
        flat.contains("Maladies infectieuses et tropicales"),
        "{pdf_text}"
    );

    // A pharmacist may not request: told so in French, no thread opened.
    send_as(
        &mail,
        "pharma",
        "teleexpertise+infectio@hopital.test",
        "Demande d'avis",
        &fixture("case1_mycoplasme.txt"),
    );
    let refused = nth(&mail, &gw, "ph.blanc@cabinet.test", 1);
    let t = text(&refused);
    assert!(
        subject(&refused).contains("Demande refusée"),
        "{}",
        subject(&refused)
    );
    assert!(
        t.contains("Pharmacien") && t.contains("ne peut pas demander"),
        "{t}"
    );
    assert_eq!(gw.threads().len(), 1);

    // Statistics by the requérant's department and specialty, from the directory.
    let by_dep = gw.cli_json(&["stats", "--by", "department", "--format", "json"]);
    assert_eq!(by_dep.as_array().unwrap().len(), 1, "{by_dep}");
    assert_eq!(by_dep[0]["group"], "57", "{by_dep}");
    assert_eq!(by_dep[0]["requests"], 1);
    assert_eq!(by_dep[0]["answered"], 1);
    assert_eq!(by_dep[0]["within_deadline_pct"], 100.0);
    let by_spec = gw.cli_json(&["stats", "--by", "specialty", "--format", "json"]);
    assert_eq!(by_spec[0]["group"], "Médecine générale", "{by_spec}");
    gw.stop();

    // dr.legrand's certificate says RPPS 10001112223, the directory 10005550001: with
    // require_match the message is quarantined as directory_mismatch and the sender told.
    gw.start_with_env(&[("TELEAVIS__DIRECTORY__REQUIRE_MATCH", "true")]);
    send_as(
        &mail,
        "expert2",
        "teleexpertise+pneumo@hopital.test",
        "Demande d'avis",
        &fixture("case1_mycoplasme.txt"),
    );
    let q = gw.wait_until("the quarantine", T, || {
        let q = gw.quarantine();
        (!q.is_empty()).then_some(q)
    });
    assert_eq!(q[0]["reason"], "directory_mismatch", "{q:?}");
    let told = nth(&mail, &gw, "dr.legrand@hopital.test", 1);
    assert!(text(&told).contains("RPPS"), "{}", text(&told));
    assert_eq!(gw.threads().len(), 1);
    assert!(mail.count(GATEWAY, "Quarantaine") >= 1);
    gw.stop();
}

#[test]
fn directory_file_is_reimported_when_it_changes() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let file = gw.dir.path().join("Extraction_Correspondance_MSSante.txt");
    let text = std::fs::read_to_string(sample()).unwrap();
    std::fs::write(&file, &text).unwrap();
    gw.start_with_env(&[
        ("TELEAVIS__DIRECTORY__FILE", file.to_str().unwrap()),
        ("TELEAVIS__DIRECTORY__CHECK_SECONDS", "1"),
    ]);
    let show = |gw: &Gateway| {
        let out = gw.cli(&["directory", "show", "dr.hoarau@cabinet.test"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    gw.wait_until("the first import", T, || {
        show(&gw).contains("974").then_some(())
    });
    // Dr Hoarau moves from La Réunion to Mayotte; the daemon sees the file change.
    std::fs::write(&file, text.replace("|97400|974|", "|97600|976|")).unwrap();
    gw.wait_until("the re-import", T, || {
        show(&gw).contains("976").then_some(())
    });
    // A bad file is refused in the log and the directory keeps serving.
    std::fs::write(&file, "not|a|directory\n").unwrap();
    gw.wait_until("the refusal in the log", T, || {
        gw.log()
            .contains("directory.file not imported")
            .then_some(())
    });
    assert!(show(&gw).contains("976"));
    gw.stop();
}
