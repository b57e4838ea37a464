//! The CDA and the XDM archive checked by the ANS's own validator (`../shared/validators/cda/`)
//! for the seed's two cases and the identities that break naive generators.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;

use super::tests::{paris, seed_case};
use super::*;
use crate::form::Nir;

const KIT: &str = "../shared/validators/cda";

fn nir(body: &str) -> String {
    let key = Nir::key_for(body).expect("13-character body");
    let full = format!("{body}{key:02}");
    Nir::parse(&full).expect("valid NIR").formatted()
}

fn rec() -> RecordIdentity {
    RecordIdentity {
        ins_oid: "1.2.250.1.213.1.4.10".into(),
        finess: "570000745".into(),
        organization_name: "CHR Metz-Thionville".into(),
        facility_type: ("SA01".into(), "Etablissement public de santé".into()),
    }
}

/// The seed's second case: an EHPAD resident, two attachments, answered by the group.
fn second_case() -> ReportData {
    let mut d = seed_case();
    d.thread_id = "TE-2024-000043".into();
    d.patient = ReportPatient {
        birth_name: "Mbappe Nem".into(),
        used_name: None,
        first_names: "Carl".into(),
        sex: "M".into(),
        birth_date: NaiveDate::from_ymd_opt(1945, 3, 2).expect("date"),
        nir: Some(nir("1450375056123")),
    };
    d.requester = ReportPerson {
        name: Some("Dr JR BUA".into()),
        address: "jr.bua@medecin.mssante.fr".into(),
        specialty: Some("Spécialiste MG".into()),
        rpps: Some("10003456789".into()),
    };
    d.requested_at = paris(2024, 10, 14, 10, 56);
    d.answered_at = Some(paris(2024, 10, 14, 13, 48));
    d.closed_at = Some(paris(2024, 10, 14, 13, 51));
    d
}

/// Every case the issue names, with a short file-safe label.
fn cases() -> Vec<(&'static str, ReportData)> {
    let mut long = seed_case();
    long.patient.birth_name = "De La Fontaine-Saint-Exupéry d'Arcy Montmorency-Laval".into();
    long.patient.first_names = "Marie-Thérèse Anne-Sophie Éléonore Bérénice".into();
    long.patient.used_name = Some("O'Brien & Fils <test>".into());

    let mut accents = seed_case();
    accents.patient.birth_name = "Ærøskøbing-Ñúñez Çağlar".into();
    accents.patient.first_names = "Zoë Anaïs Œdipe".into();
    accents.requester.name = Some("Dr Hélène LÉGER-ÉTIENNE".into());

    let mut no_nir = seed_case();
    no_nir.patient.nir = None;

    let mut corsica = seed_case();
    corsica.patient.nir = Some(nir("291012A004101"));

    let mut several = seed_case();
    several.experts.push(ReportPerson {
        name: Some("Pr Anne MARTIN".into()),
        address: "a.martin@chr-metz.mssante.fr".into(),
        specialty: Some("Maladies infectieuses".into()),
        rpps: Some("10009999999".into()),
    });
    several.experts.push(ReportPerson {
        name: None,
        address: "infectio@chr-metz.mssante.fr".into(),
        specialty: None,
        rpps: None,
    });

    // A transfer: the first category's expert, then the second's, who closes.
    let mut transfer = seed_case();
    transfer.category_name = "Dermatologie".into();
    transfer.experts.push(ReportPerson {
        name: Some("Dr Paul DERMA".into()),
        address: "dermato@chr-metz.mssante.fr".into(),
        specialty: Some("Dermatologie".into()),
        rpps: Some("10001111111".into()),
    });

    vec![
        ("seed1", seed_case()),
        ("seed2", second_case()),
        ("long", long),
        ("accents", accents),
        ("nonir", no_nir),
        ("corsica", corsica),
        ("several", several),
        ("transfer", transfer),
    ]
}

/// Runs a kit script; `None` (with a loud notice) only when Java cannot be installed.
fn run_kit(script: &str, args: &[&Path]) -> Option<(bool, String)> {
    let out = Command::new("bash")
        .arg(Path::new(KIT).join(script))
        .args(args)
        .output()
        .expect("run the validator kit");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(2) && Command::new("java").arg("-version").output().is_err() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! NOTICE: Java could not be installed: the ANS CDA/XDM validation is\n\
             !! SKIPPED ({script}). Output:\n{text}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return None;
    }
    Some((out.status.success(), text))
}

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("teleavis-record-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn every_case_passes_the_ans_validators() {
    let dir = work_dir("cases");
    let mut zips = vec![];
    let mut cdas = vec![];
    for (label, d) in cases() {
        let pdf = render_pdf(&d).expect("pdf");
        let (zip, doc) = build_xdm(&d, &rec(), &pdf).expect("xdm");
        let cda_path = dir.join(format!("{label}.xml"));
        std::fs::write(&cda_path, &doc.xml).expect("write cda");
        let zip_path = dir.join(format!("{label}.zip"));
        std::fs::write(&zip_path, &zip).expect("write zip");
        assert_eq!(doc.ins.is_some(), d.patient.nir.is_some(), "{label}");
        zips.push((label, zip_path));
        cdas.push(cda_path);
    }
    // The CDA layer on every case in one run (the schematrons load once).
    let paths: Vec<&Path> = cdas.iter().map(PathBuf::as_path).collect();
    let Some((ok, out)) = run_kit("validate.sh", &paths) else {
        return;
    };
    assert!(ok, "validate.sh:\n{out}");
    // The totals line, wherever it falls: on a machine's first run the kit's note that it is
    // compiling the schematrons (stderr) comes after it.
    assert!(
        out.lines()
            .any(|l| l.starts_with("cda: ") && l.ends_with(" 0 errors, 0 warnings")),
        "{out}"
    );
    // The package layer (and the CDA inside it again) per archive.
    for (label, zip) in &zips {
        let Some((ok, out)) = run_kit("validate-xdm.sh", &[zip.as_path()]) else {
            return;
        };
        assert!(ok, "validate-xdm.sh on {label}:\n{out}");
        assert!(
            out.contains("cda: 0 errors, 0 warnings") && out.contains("xdm: 0 errors, 0 warnings"),
            "{label}:\n{out}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_validator_catches_a_broken_archive() {
    // The check of the check: a document entry whose hash does not match the CDA must fail.
    let d = seed_case();
    let pdf = render_pdf(&d).expect("pdf");
    let (zip, _) = build_xdm(&d, &rec(), &pdf).expect("xdm");
    let dir = work_dir("broken");
    let unpacked = dir.join("x");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip reads");
    archive.extract(&unpacked).expect("extract");
    let doc = unpacked.join("IHE_XDM/SUBSET01/DOC0001.XML");
    let mut xml = std::fs::read(&doc).expect("doc");
    xml.extend_from_slice(b"\n");
    std::fs::write(&doc, xml).expect("tamper");
    let Some((ok, out)) = run_kit("validate-xdm.sh", &[unpacked.as_path()]) else {
        return;
    };
    assert!(!ok, "a tampered archive passed:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn archive_layout_and_header_values() {
    let d = seed_case();
    let pdf = render_pdf(&d).expect("pdf");
    let (zip, doc) = build_xdm(&d, &rec(), &pdf).expect("xdm");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip reads");
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("entry name").into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "IHE_XDM/SUBSET01/DOC0001.XML",
            "IHE_XDM/SUBSET01/METADATA.XML",
            "INDEX.HTM",
            "README.TXT"
        ]
    );
    let xml = String::from_utf8(doc.xml.clone()).expect("utf-8");
    for needle in [
        r#"code="85208-7""#,
        r#"code="TE2""#,
        r#"root="1.2.250.1.213.1.4.10" extension="291015746310123""#,
        r#"root="1.2.250.1.71.4.2.1" extension="810007654321""#,
        r#"root="1.2.250.1.71.4.2.2" extension="1570000745""#,
        r#"<family qualifier="BR">Zébulon</family>"#,
        r#"<birthTime value="19910123"/>"#,
        // 16:04 in Paris in July is UTC+2.
        r#"<low value="20240715160400+0200"/>"#,
        r#"representation="B64""#,
        "<versionNumber value=\"1\"/>",
    ] {
        assert!(xml.contains(needle), "CDA lacks {needle}");
    }
    // The PDF inside is the PDF given.
    use base64::Engine;
    let start = xml.find(r#"representation="B64">"#).expect("body") + 21;
    let end = start + xml[start..].find('<').expect("end of body");
    let back = base64::engine::general_purpose::STANDARD
        .decode(xml[start..end].trim())
        .expect("base64");
    assert_eq!(back, pdf);
    // Nothing in the README or the index names the patient.
    for name in ["README.TXT", "INDEX.HTM"] {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut archive.by_name(name).expect(name), &mut s)
            .expect("text");
        assert!(!s.contains("Zébulon") && !s.contains("1991"), "{name}: {s}");
    }
}

#[test]
fn values_are_escaped_by_the_writer() {
    let mut d = seed_case();
    d.patient.birth_name = "A</family><x>&\"'".into();
    let pdf = render_pdf(&d).expect("pdf");
    let doc = build_cda(&d, &rec(), &pdf).expect("cda");
    let xml = String::from_utf8(doc.xml).expect("utf-8");
    assert!(xml.contains("A&lt;/family&gt;&lt;x&gt;&amp;"), "escaped");
    assert!(!xml.contains("<x>"));
}

#[test]
fn no_archive_without_an_expert_answer() {
    let mut d = seed_case();
    d.answered_at = None;
    d.experts.clear();
    let pdf = render_pdf(&d).expect("pdf");
    assert!(matches!(
        build_xdm(&d, &rec(), &pdf),
        Err(XdmError::Cda(CdaError::NoAct))
    ));
}
