//! Parser tests: the fixture folder (`tests/data/forms/NAME.txt|html` with `NAME.json` beside)
//! and targeted cases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use super::*;

fn forms_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/forms")
}

/// The *Maladies infectieuses* fields, shared with the example configuration.
fn infectio_fields() -> Vec<FieldSettings> {
    #[derive(Deserialize)]
    struct Snippet {
        fields: Vec<FieldSettings>,
    }
    let text = std::fs::read_to_string(forms_dir().join("infectio.toml")).unwrap();
    toml::from_str::<Snippet>(&text).unwrap().fields
}

fn infectio() -> FormTemplate {
    FormTemplate::for_category(&infectio_fields()).unwrap()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const TODAY: &str = "2026-11-27";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(default)]
    today: Option<String>,
    /// `infectio` (default) or `common`.
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    category: Option<String>,
    fields: BTreeMap<String, String>,
    /// Keys of the problems, in order.
    problems: Vec<String>,
    /// Unlisted `Label : value` lines: label → value.
    #[serde(default)]
    unlisted: BTreeMap<String, String>,
}

fn parse_fixture(path: &Path, exp: &Expected) -> ParsedForm {
    let raw = std::fs::read_to_string(path).unwrap();
    let text = if path.extension().is_some_and(|e| e == "html") {
        html_to_text(&raw)
    } else {
        raw
    };
    let template = match exp.template.as_deref() {
        Some("common") => FormTemplate::common(),
        _ => infectio(),
    };
    parse_form(
        &template,
        &text,
        date(exp.today.as_deref().unwrap_or(TODAY)),
    )
}

#[test]
fn fixtures() {
    let mut seen = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(forms_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if !path.extension().is_some_and(|e| e == "txt" || e == "html") {
            continue;
        }
        let json = path.with_extension("json");
        let exp: Expected = serde_json::from_str(
            &std::fs::read_to_string(&json)
                .unwrap_or_else(|_| panic!("missing {}", json.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", json.display()));
        let parsed = parse_fixture(&path, &exp);
        seen += 1;
        let fields: BTreeMap<String, String> = parsed
            .fields
            .iter()
            .map(|f| (f.key.clone(), f.value.clone()))
            .collect();
        let problems: Vec<String> = parsed.problems.iter().map(|p| p.key.clone()).collect();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if fields != exp.fields {
            failures.push(format!(
                "{name}: fields\n  got:      {fields:?}\n  expected: {:?}",
                exp.fields
            ));
        }
        if problems != exp.problems {
            let messages: Vec<&str> = parsed.problems.iter().map(|p| p.message.as_str()).collect();
            failures.push(format!(
                "{name}: problems {problems:?}, expected {:?} ({messages:?})",
                exp.problems
            ));
        }
        let unlisted: BTreeMap<String, String> = parsed
            .unlisted
            .iter()
            .map(|f| (f.label.clone(), f.value.clone()))
            .collect();
        if unlisted != exp.unlisted {
            failures.push(format!(
                "{name}: unlisted\n  got:      {unlisted:?}\n  expected: {:?}",
                exp.unlisted
            ));
        }
        if parsed.category != exp.category {
            failures.push(format!(
                "{name}: category {:?}, expected {:?}",
                parsed.category, exp.category
            ));
        }
        // A form without problems always converts; one with problems never does.
        if parsed.to_request().is_ok() != exp.problems.is_empty() {
            failures.push(format!("{name}: to_request disagrees with the problems"));
        }
    }
    assert!(seen >= 15, "only {seen} fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn fixture(name: &str) -> ParsedForm {
    let path = forms_dir().join(name);
    let exp: Expected =
        serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).unwrap())
            .unwrap();
    parse_fixture(&path, &exp)
}

fn messages(p: &ParsedForm) -> Vec<&str> {
    p.problems.iter().map(|p| p.message.as_str()).collect()
}

#[test]
fn seed_case_2_request_for_the_expert() {
    let req = fixture("case2_klebsiella.txt").to_request().unwrap();
    assert_eq!(req.patient_display_name(), "NEM Carl");
    assert_eq!(req.patient.sex, Sex::M);
    assert_eq!(req.patient.birth_date, date("1945-03-12"));
    assert_eq!(req.patient.age_on(date("2024-10-14")), 79);
    assert_eq!(req.patient.age_on(date("2025-03-11")), 79);
    assert_eq!(req.patient.age_on(date("2025-03-12")), 80);
    assert_eq!(
        req.patient.nir.as_ref().map(Nir::as_str),
        Some("145036748204506")
    );
    assert!(req.consent);
    assert_eq!(
        req.question,
        "quel antibiothérapie vous parait envisageable ?"
    );
    let keys: Vec<&str> = req.extra.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "terrain",
            "allergies",
            "hospitalise",
            "fonction_renale",
            "anamnese",
            "elements_cliniques",
            "resultats"
        ]
    );
    let shown = req.display_for_reading();
    assert!(
        shown.starts_with("Patient\n  Nom de naissance : NEM\n  Prénom(s) : Carl\n"),
        "{shown}"
    );
    assert!(shown.contains(
        "  Sexe : homme, né le 12/03/1945 à Strasbourg\n  NIR : 1 45 03 67 482 045 06\n"
    ));
    assert!(shown.contains("\nFonction rénale récente : 30-60\n"));
    assert!(shown.contains("\nÉléments cliniques : poids 66kg\n"));
    assert!(shown.contains("\nAnamnèse :\nchute, AEG le 09/10"));
    assert!(
        shown.ends_with("\nQuestion posée : quel antibiothérapie vous parait envisageable ?\n")
    );
    // Stored as JSON and read back unchanged.
    let json = serde_json::to_string(&req).unwrap();
    assert_eq!(serde_json::from_str::<RequestForm>(&json).unwrap(), req);
}

#[test]
fn seed_case_1_keeps_the_question_paragraphs() {
    let req = fixture("case1_mycoplasme.txt").to_request().unwrap();
    assert_eq!(req.patient_display_name(), "MARTIN Julie");
    assert!(
        req.question
            .starts_with("Patiente ayant eu des relations sexuelles")
    );
    assert!(
        req.question
            .contains("urealyticum .\n\nFaut il faire ses recherches")
    );
    assert!(req.question.ends_with("symptomatique...)\n\nMerci"));
    assert!(req.extra.is_empty());
    assert!(
        req.display_for_reading()
            .contains("  Sexe : femme, née le 23/01/1991\n")
    );
}

#[test]
fn messages_are_precise_and_french() {
    assert_eq!(
        messages(&fixture("invalid_date.txt")),
        ["Date de naissance : « 31/02/1990 » n'est pas une date valide (jj/mm/aaaa)"]
    );
    assert_eq!(
        messages(&fixture("future_birth_date.txt")),
        ["Date de naissance : « 03/04/2031 » est dans le futur"]
    );
    assert_eq!(
        messages(&fixture("consent_non.txt")),
        ["Consentement du patient : le consentement du patient est requis"]
    );
    assert_eq!(
        messages(&fixture("missing_consent.txt")),
        ["Consentement du patient : champ obligatoire non rempli"]
    );
    assert_eq!(
        messages(&fixture("bad_nir_key.txt")),
        [
            "NIR : « 2 91 01 57 463 123 18 » : la clé du NIR ne correspond pas au numéro (vérifiez chaque chiffre)"
        ]
    );
    assert_eq!(
        messages(&fixture("nir_sex_mismatch.txt")),
        ["NIR : le premier chiffre du NIR (2, femme) ne correspond pas au sexe indiqué (M)"]
    );
    assert_eq!(messages(&fixture("pasted_twice_two_patients.txt")).len(), 1);
    assert_eq!(
        fixture("pasted_twice_two_patients.txt").problems[0].key,
        "form"
    );
}

fn common(text: &str) -> ParsedForm {
    parse_form(&FormTemplate::common(), text, date(TODAY))
}

const IDENTITY: &str = "Nom : DUPONT\nPrénom : Jeanne\nSexe : F\nDate de naissance : 23/01/1991\n\
                        Consentement du patient : oui\n";

#[test]
fn nir_must_agree_with_birth_date() {
    // 2 91 01 … but born in 1992, and in February.
    let p = common(
        &format!("{IDENTITY}NIR : 291015746312381\nQuestion posée : traitement ?\n")
            .replace("23/01/1991", "23/02/1992"),
    );
    assert_eq!(
        messages(&p),
        [
            "NIR : l'année de naissance du NIR (91) ne correspond pas à la date de naissance (23/02/1992)",
            "NIR : le mois de naissance du NIR (01) ne correspond pas à la date de naissance (23/02/1992)"
        ]
    );
    // Month 20–42 or 50+ means unknown: no month check.
    let body = "2913057463123";
    let nir = format!("{body}{:02}", Nir::key_for(body).unwrap());
    let p = common(&format!(
        "{IDENTITY}NIR : {nir}\nQuestion posée : traitement ?\n"
    ));
    assert!(p.is_valid(), "{:?}", messages(&p));
}

#[test]
fn typed_values_are_canonical() {
    let t = FormTemplate::for_category(&[FieldSettings {
        key: "fr".into(),
        label: "Fonction rénale".into(),
        aliases: vec![],
        required: true,
        kind: "choice".into(),
        choices: vec![
            "> 60".into(),
            "30-60".into(),
            "< 30".into(),
            "Inconnue".into(),
        ],
    }])
    .unwrap();
    let text = "Nom : Dupont\nPrénom : Jeanne\nSexe : féminin\nNée le 1.2.1990\nConsentement du patient : OUI.\n\
                Fonction rénale : 30 - 60\nQuestion posée : traitement ?";
    let p = parse_form(&t, text, date(TODAY));
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("sex"), Some("F"));
    assert_eq!(p.get("birth_date"), Some("01/02/1990"));
    assert_eq!(p.get("consent"), Some("oui"));
    assert_eq!(p.get("fr"), Some("30-60"));
    let p = parse_form(&t, &text.replace("30 - 60", "inconnue"), date(TODAY));
    assert_eq!(p.get("fr"), Some("Inconnue"));
    let p = parse_form(&t, &text.replace("30 - 60", "45"), date(TODAY));
    assert_eq!(
        messages(&p),
        [
            "Fonction rénale : « 45 » ne fait pas partie des choix possibles (> 60, 30-60, < 30, Inconnue)"
        ]
    );
    let p = parse_form(&t, &text.replace("féminin", "X"), date(TODAY));
    assert_eq!(messages(&p), ["Sexe : « X » n'est pas reconnu (F ou M)"]);
    let p = parse_form(&t, &text.replace("OUI.", "peut-être"), date(TODAY));
    assert_eq!(
        messages(&p),
        ["Consentement du patient : « peut-être » : répondez oui ou non"]
    );
}

#[test]
fn date_formats() {
    for (s, ok) in [
        ("23/01/1991", true),
        ("3/1/1991", true),
        ("23.01.1991", true),
        ("23-01-1991", true),
        ("1991-01-23", false),
        ("23/01/91", false),
        ("31/02/1990", false),
        ("23/01/1991 à Metz", false),
        ("", false),
    ] {
        assert_eq!(parse::parse_date(s).is_some(), ok, "{s}");
    }
}

#[test]
fn label_matching_rules() {
    // Spacing before the colon, trailing (s), accents, bullets, a hint in parentheses.
    let p = common(
        "- Nom de naissance   : DUPONT\n• Prénoms: Jeanne\nSEXE(F/M):F\nNée le : 23/01/1991\n\
         Nom d’usage (si différent) : MARTIN\nConsentement du patient : oui\nQuestion posée : traitement ?",
    );
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("birth_name"), Some("DUPONT"));
    assert_eq!(p.get("used_name"), Some("MARTIN"));
    assert_eq!(p.get("first_names"), Some("Jeanne"));
    // A line starting like a label but holding another `Label :` is not that field: it is an
    // unlisted field of its own, which ends the current value (issue 10).
    let p = common(&format!(
        "{IDENTITY}Question posée : quel traitement ?\nNom du germe : E. coli\nNomination : x"
    ));
    assert_eq!(p.get("birth_name"), Some("DUPONT"));
    assert_eq!(p.get("question"), Some("quel traitement ?"));
    let unlisted: Vec<(&str, &str)> = p
        .unlisted
        .iter()
        .map(|f| (f.label.as_str(), f.value.as_str()))
        .collect();
    assert_eq!(unlisted, [("Nom du germe", "E. coli"), ("Nomination", "x")]);
}

#[test]
fn loose_labels_do_not_split_free_text() {
    let t = infectio();
    let text = format!(
        "{IDENTITY}Anamnèse :\nfièvre depuis 3 jours\nTerrain favorable aux infections\n\
         Sexe masculin du partenaire\nQuestion posée : traitement ?"
    );
    let p = parse_form(&t, &text, date(TODAY));
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("terrain"), None);
    assert_eq!(p.get("sex"), Some("F"));
    assert_eq!(
        p.get("anamnese"),
        Some(
            "fièvre depuis 3 jours\nTerrain favorable aux infections\nSexe masculin du partenaire"
        )
    );
    // With a colon, a one-word alias is a label.
    let p = parse_form(
        &t,
        &text.replace("Terrain favorable", "Terrain : favorable"),
        date(TODAY),
    );
    assert_eq!(
        p.get("terrain"),
        Some("favorable aux infections\nSexe masculin du partenaire")
    );
}

#[test]
fn loose_separators_and_comparison_values() {
    let t = infectio();
    let text = format!(
        "{IDENTITY}Fonction rénale récente :\n> 60\nPatient actuellement en structure hospitalière - non\nQuestion posée : traitement ?"
    );
    let p = parse_form(&t, &text, date(TODAY));
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("fonction_renale"), Some("> 60"));
    assert_eq!(p.get("hospitalise"), Some("non"));
}

#[test]
fn same_patient_written_differently_is_not_a_conflict() {
    let first = IDENTITY
        .replace("Sexe : F", "Sexe : Femme")
        .replace("DUPONT", "Dupont");
    let p = common(&format!(
        "{first}Question posée :\n\n{IDENTITY}Question posée : traitement ?"
    ));
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("birth_name"), Some("DUPONT"));
}

#[test]
fn birth_place_after_the_date() {
    let p = common(&format!("{IDENTITY}Question posée : traitement ?").replace(
        "Date de naissance : 23/01/1991",
        "Née le 23/01/1991 à Metz (57)",
    ));
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("birth_date"), Some("23/01/1991"));
    assert_eq!(p.get("birth_place"), Some("Metz (57)"));
    let p = common(
        &format!("{IDENTITY}Lieu de naissance : Thionville\nQuestion posée : traitement ?")
            .replace("23/01/1991", "23/01/1991 à Metz"),
    );
    assert_eq!(p.get("birth_place"), Some("Thionville"));
    assert_eq!(p.get("birth_date"), Some("23/01/1991"));
}

#[test]
fn blank_for_a_category_routes_back() {
    let t = infectio();
    let form = t
        .blank_for("Maladies infectieuses")
        .replace("Question posée * : ", "Question posée * : traitement ?");
    let p = parse_form(&t, &form, date(TODAY));
    assert_eq!(p.category.as_deref(), Some("Maladies infectieuses"));
    assert_eq!(p.fields.len(), 1);
}

#[test]
fn quoted_lines_end_a_value() {
    let p = common(&format!(
        "{IDENTITY}Question posée : quel traitement ?\n> Nom : AUTRE\n> ancienne question\n"
    ));
    assert_eq!(p.get("question"), Some("quel traitement ?"));
    assert_eq!(p.get("birth_name"), Some("DUPONT"));
}

#[test]
fn empty_text_lists_every_required_field() {
    let p = parse_form(&infectio(), "Bonjour, voici ma demande.", date(TODAY));
    let keys: Vec<&str> = p.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "birth_name",
            "first_names",
            "sex",
            "birth_date",
            "consent",
            "question"
        ]
    );
    assert!(p.fields.is_empty());
}

#[test]
fn filled_in_round_trips() {
    let t = infectio();
    let p = fixture("missing_consent.txt");
    let form = p.filled_in(&t);
    assert!(form.contains("\nNom de naissance * : GARNIER\n"), "{form}");
    assert!(
        form.contains("\nConsentement du patient * (oui/non) : \n"),
        "{form}"
    );
    assert!(form.contains("\nTerrain sous-jacent : \n"), "{form}");
    // The GP fills the blank and sends it back: it parses to the same values plus the consent.
    let again = parse_form(
        &t,
        &form.replace("(oui/non) : \n", "(oui/non) : oui\n"),
        date(TODAY),
    );
    assert!(again.is_valid(), "{:?}", messages(&again));
    for f in &p.fields {
        assert_eq!(again.get(&f.key), Some(f.value.as_str()));
    }
    // Multi-line values survive too.
    let p = fixture("case2_klebsiella.txt");
    let again = parse_form(&t, &p.filled_in(&t), date("2024-10-14"));
    assert_eq!(again.fields, p.fields);
    // So does the blank form, filled in place.
    let blank = t.blank();
    assert!(parse_form(&t, &blank, date(TODAY)).fields.is_empty());
}

#[test]
fn debug_never_shows_patient_data() {
    let parsed = fixture("case2_klebsiella.txt");
    let req = parsed.to_request().unwrap();
    for shown in [
        format!("{parsed:?}"),
        format!("{req:?}"),
        format!("{:?}", req.patient),
    ] {
        for secret in [
            "NEM",
            "Carl",
            "1945",
            "145036748204506",
            "45 03",
            "Strasbourg",
            "antibioth",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    let bad = fixture("invalid_date.txt");
    assert!(!format!("{bad:?}").contains("31/02/1990"));
}

#[test]
fn html_table_form() {
    let html = "<table><tr><td>Nom</td><td>DUPONT</td></tr><tr><td>Prénom :</td><td>Jeanne</td></tr>\
                <tr><td>Sexe</td><td>F</td></tr><tr><td>Née le</td><td>23/01/1991</td></tr>\
                <tr><td>Consentement</td><td>oui</td></tr><tr><td>Question posée</td><td>Traiter ?</td></tr></table>";
    let p = common(&html_to_text(html));
    assert!(p.is_valid(), "{:?} in {}", messages(&p), html_to_text(html));
    assert_eq!(p.get("question"), Some("Traiter ?"));
}

#[test]
fn html_body_then_parse() {
    let p = fixture("html_only.html");
    assert!(p.is_valid(), "{:?}", messages(&p));
    assert_eq!(p.get("resultats"), Some("ECBU du 12/10"));
    assert_eq!(
        p.get("question"),
        Some("quel antibiothérapie vous parait envisageable ?")
    );
}
