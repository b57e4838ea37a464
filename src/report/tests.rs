//! Tests of the compte-rendu, with the seed's first case (the mycoplasma question) as data.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::*;

pub(super) fn paris(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

const QUESTION: &str = "Bonjour\r\n\r\nPatiente ayant eu des relations sexuelles non protégées avec un partenaire qui présente a priori une orchite. Il a fait un test urinaire qui retrouve par PCR mycoplasme hominis et ureaplasma urealyticum .\r\n\r\nFaut il faire ses recherches chez la patiente ? Intérêt à la traiter ?\r\n\r\n(il me semble que c'est 2 germes ne sont pas pathogènes mais comme le partenaire est symptomatique...)\r\n\r\nMerci";
const ANSWER: &str = "Bonjour\n\nCe ne sont que rarement des pathogènes et en tout cas on ne les traite jamais quand asymptomatique. Il faut juste vérifier PCR chlamydia et gonocoque sur les urines. L'orchite peut être une infection urinaire et pas forcément une IST.\n\nCordialement";

pub(super) fn seed_case() -> ReportData {
    let requester = ReportPerson {
        name: Some("Dr Olivier HANRIOT".into()),
        address: "o.hanriot@medecin.mssante.fr".into(),
        specialty: Some("Spécialiste en Médecine Générale".into()),
        rpps: Some("10001234567".into()),
    };
    let expert = ReportPerson {
        name: Some("Dr Yvon RUCH".into()),
        address: "infectio@chr-metz.mssante.fr".into(),
        specialty: Some("Médecine interne".into()),
        rpps: Some("10007654321".into()),
    };
    ReportData {
        thread_id: "TE-2024-000042".into(),
        network: "CHR Metz-Thionville".into(),
        category_name: "Maladies infectieuses".into(),
        requested_at: paris(2024, 7, 15, 16, 4),
        answered_at: Some(paris(2024, 7, 15, 16, 8)),
        closed_at: Some(paris(2024, 7, 15, 16, 8)),
        status: "terminee".into(),
        patient: ReportPatient {
            birth_name: "Zébulon".into(),
            used_name: None,
            first_names: "Joséphine".into(),
            sex: "F".into(),
            birth_date: NaiveDate::from_ymd_opt(1991, 1, 23).expect("valid date"),
            nir: Some("2 91 01 57 463 101 23".into()),
        },
        requester: requester.clone(),
        experts: vec![expert.clone()],
        consent_confirmed: true,
        form_lines: vec![
            ("Terrain sous-jacent".into(), "aucun".into()),
            (
                "Allergies médicamenteuses connues (dont antibiotiques)".into(),
                "Non".into(),
            ),
            (
                "Question posée".into(),
                "Faut-il traiter la patiente ?".into(),
            ),
        ],
        // Deliberately out of order: the report sorts by time.
        exchanges: vec![
            ReportExchange {
                author: "Dr Yvon RUCH".into(),
                role: "expert".into(),
                at: paris(2024, 7, 15, 16, 8),
                text: ANSWER.into(),
            },
            ReportExchange {
                author: "Dr Olivier HANRIOT".into(),
                role: "requérant".into(),
                at: paris(2024, 7, 15, 16, 4),
                text: QUESTION.into(),
            },
        ],
        attachments: vec![ReportAttachment {
            name: "20241012135021541.pdf".into(),
            content_type: "application/pdf".into(),
            size: 48_213,
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        }],
        generated_at: paris(2024, 11, 12, 11, 14),
        timezone: chrono_tz::Europe::Paris,
        acts: vec![],
    }
}

#[test]
fn text_holds_every_required_element() {
    let t = render_text(&seed_case());
    for needle in [
        "Compte-rendu de téléexpertise",
        "TE-2024-000042",
        "Réalisée le 15/07/2024 à 16h08.",
        "Adressée au réseau CHR Metz-Thionville (catégorie Maladies infectieuses) le 15/07/2024",
        "ZÉBULON Joséphine, femme née le 23/01/1991",
        "NIR : 2 91 01 57 463 101 23",
        "Requérant : Dr Olivier HANRIOT, Spécialiste en Médecine Générale, RPPS : 10001234567, messagerie : o.hanriot@medecin.mssante.fr",
        "Expert : Dr Yvon RUCH, Médecine interne, RPPS : 10007654321, messagerie : infectio@chr-metz.mssante.fr",
        "Le requérant confirme le consentement exprès du patient.",
        "Dr Olivier HANRIOT (requérant), le 15/07/2024 à 16h04",
        "Dr Yvon RUCH (expert), le 15/07/2024 à 16h08",
        "mycoplasme hominis et ureaplasma urealyticum",
        "Il faut juste vérifier PCR chlamydia et gonocoque",
        "Terrain sous-jacent : aucun",
        "Allergies médicamenteuses connues (dont antibiotiques) : Non",
        "Question posée : Faut-il traiter la patiente ?",
        "20241012135021541.pdf (application/pdf, 48\u{a0}213 octets (47,1 Ko))",
        "SHA-256 : 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Actes : TE2 (expert, téléexpertise) — RQD (requérant, demande de téléexpertise)",
        "Compte-rendu généré le 12/11/2024 à 11h14.",
        "Statut : terminée.",
        "Clôturée le 15/07/2024 à 16h08.",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
    // Time order, whatever the input order; no CR left from the mail.
    let q = t.find("(requérant), le 15/07").expect("question");
    let a = t.find("(expert), le 15/07").expect("answer");
    assert!(q < a);
    assert!(!t.contains('\r'));
}

#[test]
fn status_variants() {
    let mut d = seed_case();
    d.status = "annulee".into();
    assert!(render_text(&d).contains("Statut : annulée par le requérant."));

    let mut d = seed_case();
    d.answered_at = None;
    d.experts.clear();
    d.exchanges.retain(|e| e.role != "expert");
    let t = render_text(&d);
    assert!(
        t.contains("Statut : clôturée automatiquement sans réponse."),
        "{t}"
    );
    assert!(t.contains("Non réalisée"));
    assert!(t.contains("Actes : aucun"));
    assert!(!t.contains("TE2"));
    assert!(t.contains("Expert : aucun"));
}

#[test]
fn consent_sentence_only_when_confirmed() {
    let mut d = seed_case();
    d.consent_confirmed = false;
    let t = render_text(&d);
    assert!(!t.contains("confirme le consentement exprès"));
    assert!(t.contains("non confirmé"));
}

#[test]
fn used_name_male_and_several_experts() {
    let mut d = seed_case();
    d.patient.used_name = Some("Martin".into());
    d.patient.sex = "M".into();
    d.patient.nir = None;
    d.requester.specialty = None;
    d.requester.rpps = None;
    let e = d.experts[0].clone();
    d.experts.push(ReportPerson { name: None, ..e });
    let t = render_text(&d);
    assert!(
        t.contains("ZÉBULON Joséphine (nom d'usage : MARTIN), homme né le 23/01/1991"),
        "{t}"
    );
    assert!(!t.contains("NIR"));
    assert!(t.contains("Requérant : Dr Olivier HANRIOT, RPPS : non communiqué, messagerie :"));
    assert!(t.contains("Experts :\n– Dr Yvon RUCH"));
    assert!(t.contains("– Médecine interne, RPPS : 10007654321"));
}

#[test]
fn winter_time_is_local_too() {
    let mut d = seed_case();
    // 10:14 UTC in November is 11:14 in Paris.
    d.generated_at = Utc
        .with_ymd_and_hms(2024, 11, 12, 10, 14, 0)
        .single()
        .expect("utc");
    assert!(render_text(&d).contains("Compte-rendu généré le 12/11/2024 à 11h14."));
}

#[test]
fn file_name() {
    assert_eq!(
        pdf_file_name("TE-2024-000042"),
        "compte-rendu-TE-2024-000042.pdf"
    );
    assert_eq!(pdf_file_name("TE/../x y"), "compte-rendu-TExy.pdf");
}

#[test]
fn debug_hides_patient_data() {
    let d = seed_case();
    let dbg = format!("{d:?}");
    for secret in [
        "Zébulon",
        "ZÉBULON",
        "Joséphine",
        "1991",
        "2 91 01",
        "mycoplasme",
        "Faut-il",
        "20241012135021541",
    ] {
        assert!(!dbg.contains(secret), "{secret:?} leaked in {dbg}");
    }
    assert!(dbg.contains("TE-2024-000042"));
}

/// Runs a poppler-utils tool on `pdf`; `None` with a loud notice when poppler-utils is missing
/// (scripts/install-test-deps.sh installs it).
fn poppler(tool: &str, args: &[&str], pdf: &[u8], name: &str) -> Option<String> {
    let path = Path::new("/usr/bin").join(tool);
    if !path.exists() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! NOTICE: {} is missing (apt-get install poppler-utils):\n\
             !! the PDF assertions of {name} are SKIPPED.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
            path.display()
        );
        return None;
    }
    let dir = std::env::temp_dir().join(format!(
        "teleavis-report-{}-{name}-{tool}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("cr.pdf");
    std::fs::write(&input, pdf).expect("write pdf");
    let out = Command::new(&path)
        .args(args)
        .arg(&input)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .expect("run poppler tool");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8 from poppler"))
}

/// pdftotext's output, or `None` when poppler-utils is missing.
fn pdftotext(pdf: &[u8], name: &str) -> Option<String> {
    poppler("pdftotext", &["-enc", "UTF-8"], pdf, name)
}

/// `pdfinfo`'s `Key: value` lines.
fn pdfinfo(pdf: &[u8], args: &[&str], name: &str) -> Option<String> {
    poppler("pdfinfo", args, pdf, name)
}

fn info_field(info: &str, key: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
}

/// Page count from the page tree (`/Type /Page` objects), so it works without poppler too.
fn pages_in(pdf: &[u8]) -> usize {
    if let Some(info) = pdfinfo(pdf, &[], "pages_in") {
        return info_field(&info, "Pages")
            .and_then(|p| p.parse().ok())
            .expect("pdfinfo gives the page count");
    }
    pdf.windows(11).filter(|w| w == b"/Type /Page").count()
}

#[test]
fn pdf_is_pdf_a_with_metadata_and_embedded_fonts() {
    let name = "pdf_is_pdf_a_with_metadata_and_embedded_fonts";
    let pdf = render_pdf(&seed_case()).expect("pdf");
    let Some(info) = pdfinfo(&pdf, &["-enc", "UTF-8"], name) else {
        return;
    };
    // The title reads correctly in a viewer (it once read `tÃ©lÃ©expertise`).
    assert_eq!(
        info_field(&info, "Title").as_deref(),
        Some("Compte-rendu de téléexpertise TE-2024-000042"),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "Author").as_deref(),
        Some("CHR Metz-Thionville"),
        "{info}"
    );
    let meta = pdfinfo(&pdf, &["-meta"], name).expect("pdfinfo -meta");
    for needle in [
        "<pdfaid:part>2</pdfaid:part>",
        "<pdfaid:conformance>U</pdfaid:conformance>",
        "fr-FR",
        "Compte-rendu de téléexpertise TE-2024-000042",
    ] {
        assert!(meta.contains(needle), "XMP lacks {needle:?}:\n{meta}");
    }
    // PDF/A requires an output intent (GTS_PDFA1) with its ICC profile.
    let raw = String::from_utf8_lossy(&pdf);
    assert!(raw.contains("/OutputIntents"), "no OutputIntents");
    assert!(raw.contains("/GTS_PDFA1"), "no PDF/A output intent");
    let fonts = poppler("pdffonts", &[], &pdf, name).expect("pdffonts");
    let rows: Vec<&str> = fonts
        .lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(rows.len() >= 2, "{fonts}");
    for row in rows {
        assert!(row.contains("DejaVuSans"), "{fonts}");
        // Columns: name type encoding emb sub uni object ID; `emb` and `sub` must be yes.
        let cols: Vec<&str> = row.split_whitespace().collect();
        let n = cols.len();
        assert_eq!(&cols[n - 5..n - 2], ["yes", "yes", "yes"], "{fonts}");
    }
}

#[test]
fn pdf_is_a_pdf_with_french_text() {
    let pdf = render_pdf(&seed_case()).expect("pdf");
    assert!(pdf.starts_with(b"%PDF"));
    assert_eq!(pages_in(&pdf), 1);
    let Some(text) = pdftotext(&pdf, "pdf_is_a_pdf_with_french_text") else {
        return;
    };
    for needle in [
        "Compte-rendu de téléexpertise",
        "Téléexpertise TE-2024-000042",
        "femme née le 23/01/1991",
        "consentement exprès",
        "Dr Olivier HANRIOT (requérant), le 15/07/2024 à 16h04",
        "Faut il faire ses recherches chez la patiente ? Intérêt à la traiter ?",
        "— RQD",
        "page 1 / 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // The SHA-256 may be cut across lines, but not lost.
    let squeezed: String = text.split_whitespace().collect();
    assert!(squeezed.contains("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
}

#[test]
fn pdf_typographic_characters_survive() {
    let mut d = seed_case();
    d.exchanges[0].text = "« L’œdème était dû à ça » — voilà où ça s’arrête. ÇÀÉÈÙÊ".into();
    let pdf = render_pdf(&d).expect("pdf");
    let Some(text) = pdftotext(&pdf, "pdf_typographic_characters_survive") else {
        return;
    };
    assert!(
        text.contains("« L’œdème était dû à ça » — voilà où ça s’arrête. ÇÀÉÈÙÊ"),
        "{text}"
    );
}

#[test]
fn long_exchange_paginates_without_loss() {
    let mut d = seed_case();
    let body: Vec<String> = (1..=300)
        .map(|i| format!("Ligne {i:03} de la réponse détaillée de l'expert."))
        .collect();
    d.exchanges[0].text = body.join("\n");
    // One very long unbroken token as well.
    d.exchanges[1].text = format!("{}\nfin de la question", "x".repeat(400));
    let pdf = render_pdf(&d).expect("pdf");
    assert!(pdf.starts_with(b"%PDF"));
    let pages = pages_in(&pdf);
    assert!(pages >= 5, "{pages} pages");
    let Some(text) = pdftotext(&pdf, "long_exchange_paginates_without_loss") else {
        return;
    };
    for i in 1..=300 {
        let line = format!("Ligne {i:03} de la réponse détaillée de l'expert.");
        assert!(text.contains(&line), "lost {line:?}");
    }
    assert!(text.contains(&format!("page {pages} / {pages}")));
    assert!(text.contains("Compte-rendu généré le 12/11/2024 à 11h14."));
    let squeezed: String = text.split_whitespace().collect();
    assert!(squeezed.contains(&"x".repeat(400)));
}

#[test]
fn facturation_lists_the_acts_and_why_not() {
    let mut d = seed_case();
    let day = NaiveDate::from_ymd_opt(2026, 1, 2).expect("date");
    d.acts = vec![
        crate::billing::Act {
            code: "TE2".into(),
            doctor_rpps: Some("10007654321".into()),
            doctor_name: "Dr Yvon RUCH".into(),
            day,
            amount_cents: 2300,
            billable: false,
            reason: Some("plafond annuel atteint".into()),
        },
        crate::billing::Act {
            code: "RQD".into(),
            doctor_rpps: Some("10001234567".into()),
            doctor_name: "Dr Olivier HANRIOT".into(),
            day,
            amount_cents: 1000,
            billable: true,
            reason: None,
        },
    ];
    let t = render_text(&d);
    assert!(
        t.contains("– TE2, Dr Yvon RUCH (RPPS 10007654321), 23,00 € le 02/01/2026 — non facturable : plafond annuel atteint"),
        "{t}"
    );
    assert!(
        t.contains(
            "– RQD, Dr Olivier HANRIOT (RPPS 10001234567), 10,00 € le 02/01/2026 — facturable"
        ),
        "{t}"
    );
}
