//! `IHE_XDM.ZIP`: the IHE XDM interchange (ITI-32) that carries the CDA compte-rendu, so the
//! GP's MSSanté software files it into the patient's record without a person.
//!
//! Layout (8.3 upper-case names, as media exchange requires): `README.TXT`, `INDEX.HTM`,
//! `IHE_XDM/SUBSET01/METADATA.XML` (one XDS submission set, one document entry with its size and
//! SHA-1) and `IHE_XDM/SUBSET01/DOC0001.XML` (the CDA). Pure: bytes in, bytes out.

use std::io::{self, Cursor, Write};

use chrono::{DateTime, Datelike, Timelike, Utc};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::cda::{
    self, ACT_CODE, ACT_NAME, CdaDocument, FACILITY_TYPE_OID, LOINC_TLM_CR, LOINC_TLM_CR_NAME,
    PRACTICE_SETTING, PRACTICE_SETTING_OID, PROFESSION_CODE, PROFESSION_NAME, RecordIdentity,
};
use super::{ReportData, ReportPerson, identity};

/// The attachment's name, fixed by the MSSanté convention.
pub const XDM_FILE_NAME: &str = "IHE_XDM.ZIP";
const DOC_NAME: &str = "DOC0001.XML";
const SUBSET: &str = "IHE_XDM/SUBSET01";

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum XdmError {
    #[error(transparent)]
    Cda(#[from] cda::CdaError),
    #[error("XML writing failed: {0}")]
    Xml(#[from] io::Error),
    #[error("zip writing failed: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// The archive around the CDA built from `d`, `rec` and the PDF; also returns the CDA.
pub fn build_xdm(
    d: &ReportData,
    rec: &RecordIdentity,
    pdf: &[u8],
) -> Result<(Vec<u8>, CdaDocument), XdmError> {
    let doc = cda::build_cda(d, rec, pdf)?;
    let zip = package(d, rec, &doc)?;
    Ok((zip, doc))
}

fn package(d: &ReportData, rec: &RecordIdentity, doc: &CdaDocument) -> Result<Vec<u8>, XdmError> {
    let metadata = metadata(d, rec, doc)?;
    // A fixed time in the entries, from the document, so the same report gives the same bytes.
    let t = doc.effective_time;
    let stamp = zip::DateTime::from_date_and_time(
        u16::try_from(t.year()).unwrap_or(1980),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default();
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(stamp);
    let readme = readme(rec);
    let index = index_htm(d, rec)?;
    let files: [(String, &[u8]); 4] = [
        ("README.TXT".into(), readme.as_bytes()),
        ("INDEX.HTM".into(), &index),
        (format!("{SUBSET}/METADATA.XML"), &metadata),
        (format!("{SUBSET}/{DOC_NAME}"), &doc.xml),
    ];
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        z.start_file(name, opts)?;
        z.write_all(bytes)?;
    }
    Ok(z.finish()?.into_inner())
}

/// Plain ASCII-safe text, CRLF line ends, as the XDM profile asks of README.TXT.
fn readme(rec: &RecordIdentity) -> String {
    format!(
        "Archive IHE XDM (ITI-32)\r\n\
         \r\n\
         Emetteur : {} (FINESS {})\r\n\
         Application : teleavis {}\r\n\
         \r\n\
         Contenu : un compte-rendu de teleexpertise au format CDA R2 (CI-SIS TLM-CR),\r\n\
         {SUBSET}/{DOC_NAME}, decrit par {SUBSET}/METADATA.XML.\r\n\
         Voir INDEX.HTM.\r\n",
        rec.organization_name.trim(),
        rec.finess.trim(),
        env!("CARGO_PKG_VERSION"),
    )
}

/// A small XHTML page listing the content; no patient data (the archive may be opened by
/// anyone who handles the mail, the CDA is what carries the identity).
fn index_htm(d: &ReportData, rec: &RecordIdentity) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("html")
        .with_attribute(("xmlns", "http://www.w3.org/1999/xhtml"))
        .with_attribute(("lang", "fr"))
        .write_inner_content(|w| {
            w.create_element("head").write_inner_content(|w| {
                w.create_element("meta")
                    .with_attribute(("charset", "UTF-8"))
                    .write_empty()?;
                w.create_element("title")
                    .write_text_content(BytesText::new("Archive IHE XDM"))?;
                Ok(())
            })?;
            w.create_element("body").write_inner_content(|w| {
                w.create_element("h1")
                    .write_text_content(BytesText::new(&format!(
                        "Compte-rendu de téléexpertise {}",
                        d.thread_id
                    )))?;
                w.create_element("p")
                    .write_text_content(BytesText::new(&format!(
                        "Émis par {}.",
                        rec.organization_name.trim()
                    )))?;
                w.create_element("ul").write_inner_content(|w| {
                    w.create_element("li").write_inner_content(|w| {
                        w.create_element("a")
                            .with_attribute(("href", format!("{SUBSET}/{DOC_NAME}").as_str()))
                            .write_text_content(BytesText::new(
                                "Compte-rendu d'acte de télémédecine (CDA R2)",
                            ))?;
                        Ok(())
                    })?;
                    w.create_element("li").write_inner_content(|w| {
                        w.create_element("a")
                            .with_attribute(("href", format!("{SUBSET}/METADATA.XML").as_str()))
                            .write_text_content(BytesText::new("Métadonnées XDS"))?;
                        Ok(())
                    })?;
                    Ok(())
                })?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(w.into_inner())
}

/// `20240715140400`: XDS DTM, always UTC without offset.
fn dtm(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H%M%S").to_string()
}

/// HL7 v2 component separators cannot appear in a value; names lose them.
fn hl7v2(s: &str) -> String {
    s.chars()
        .map(|c| if "^&~\\|".contains(c) { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// XCN of a professional: `8RPPS^FAMILY^Given^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS`.
fn xcn(p: &ReportPerson) -> String {
    let (given, family) = identity::split_name(&identity::display_name(p));
    match identity::rpps_id(p) {
        Some(id) => format!(
            "{}^{}^{}^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
            hl7v2(&id),
            hl7v2(&family),
            hl7v2(&given)
        ),
        None => format!("^{}^{}", hl7v2(&family), hl7v2(&given)),
    }
}

/// XON of the establishment: `NAME^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1FINESS`.
fn xon(rec: &RecordIdentity) -> String {
    format!(
        "{}^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1{}",
        hl7v2(&rec.organization_name),
        hl7v2(&rec.finess)
    )
}

/// `urn:uuid:…` ids of the registry objects, derived from the document id (stable, unique).
fn urn_uuid(doc: &CdaDocument, n: u32) -> String {
    let h = Sha256::digest(format!("{}#{n}", doc.unique_id).as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "urn:uuid:{}-{}-8{}-a{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

type W = Writer<Vec<u8>>;

fn slot(w: &mut W, name: &str, values: &[&str]) -> io::Result<()> {
    w.create_element("rim:Slot")
        .with_attribute(("name", name))
        .write_inner_content(|w| {
            w.create_element("rim:ValueList").write_inner_content(|w| {
                for v in values {
                    w.create_element("rim:Value")
                        .write_text_content(BytesText::new(v))?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn name(w: &mut W, value: &str) -> io::Result<()> {
    w.create_element("rim:Name").write_inner_content(|w| {
        w.create_element("rim:LocalizedString")
            .with_attribute(("xml:lang", "fr-FR"))
            .with_attribute(("charset", "UTF-8"))
            .with_attribute(("value", value))
            .write_empty()?;
        Ok(())
    })?;
    Ok(())
}

/// A coded classification (`nodeRepresentation` + codingScheme + display name).
#[allow(clippy::too_many_arguments)]
fn coded(
    w: &mut W,
    id: &str,
    scheme: &str,
    object: &str,
    code: &str,
    coding_scheme: &str,
    display: &str,
) -> io::Result<()> {
    w.create_element("rim:Classification")
        .with_attribute(("id", id))
        .with_attribute(("classificationScheme", scheme))
        .with_attribute(("classifiedObject", object))
        .with_attribute(("nodeRepresentation", code))
        .write_inner_content(|w| {
            slot(w, "codingScheme", &[coding_scheme])?;
            name(w, display)
        })?;
    Ok(())
}

fn author(
    w: &mut W,
    id: &str,
    scheme: &str,
    object: &str,
    p: &ReportPerson,
    rec: &RecordIdentity,
) -> io::Result<()> {
    w.create_element("rim:Classification")
        .with_attribute(("id", id))
        .with_attribute(("classificationScheme", scheme))
        .with_attribute(("classifiedObject", object))
        .with_attribute(("nodeRepresentation", ""))
        .write_inner_content(|w| {
            slot(w, "authorPerson", &[&xcn(p)])?;
            slot(w, "authorInstitution", &[&xon(rec)])?;
            slot(
                w,
                "authorSpecialty",
                &[&format!(
                    "{PROFESSION_CODE}^{PROFESSION_NAME}^1.2.250.1.213.1.1.4.5"
                )],
            )
        })?;
    Ok(())
}

fn external_id(
    w: &mut W,
    id: &str,
    object: &str,
    scheme: &str,
    value: &str,
    label: &str,
) -> io::Result<()> {
    w.create_element("rim:ExternalIdentifier")
        .with_attribute(("id", id))
        .with_attribute(("registryObject", object))
        .with_attribute(("identificationScheme", scheme))
        .with_attribute(("value", value))
        .write_inner_content(|w| name(w, label))?;
    Ok(())
}

/// METADATA.XML: ebRS 3.0 SubmitObjectsRequest with the submission set, the document entry and
/// their HasMember association. Values are the CDA header's (IHE ITI TF-3 4.1, ANS mapping).
fn metadata(d: &ReportData, rec: &RecordIdentity, doc: &CdaDocument) -> io::Result<Vec<u8>> {
    let set = urn_uuid(doc, 1);
    let entry = urn_uuid(doc, 100);
    let patient_id = format!("{}^^^&{}&ISO", doc.patient_id.0, doc.patient_id.1);
    let sha1 = hex::encode(Sha1::digest(&doc.xml));
    let size = doc.xml.len().to_string();
    let p = &d.patient;
    let author_person = doc.legal_authenticator.as_ref().unwrap_or(&d.requester);
    let source_id = identity::uuid_oid(&["teleavis-source", rec.finess.trim()]);
    let set_unique = identity::uuid_oid(&["teleavis-submission", &doc.unique_id]);

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("lcm:SubmitObjectsRequest")
        .with_attribute(("xmlns:lcm", "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"))
        .with_attribute(("xmlns:rim", "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"))
        .write_inner_content(|w| {
            w.create_element("rim:RegistryObjectList").write_inner_content(|w| {
                // The submission set.
                w.create_element("rim:RegistryPackage")
                    .with_attribute(("id", set.as_str()))
                    .with_attribute((
                        "objectType",
                        "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage",
                    ))
                    .write_inner_content(|w| {
                        slot(w, "submissionTime", &[&dtm(doc.effective_time)])?;
                        name(w, &doc.title)?;
                        author(w, &urn_uuid(doc, 2), "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d", &set, author_person, rec)?;
                        coded(w, &urn_uuid(doc, 3), "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500", &set, LOINC_TLM_CR, "2.16.840.1.113883.6.1", LOINC_TLM_CR_NAME)?;
                        external_id(w, &urn_uuid(doc, 4), &set, "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", &set_unique, "XDSSubmissionSet.uniqueId")?;
                        external_id(w, &urn_uuid(doc, 5), &set, "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", &source_id, "XDSSubmissionSet.sourceId")?;
                        external_id(w, &urn_uuid(doc, 6), &set, "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", &patient_id, "XDSSubmissionSet.patientId")
                    })?;
                w.create_element("rim:Classification")
                    .with_attribute(("id", urn_uuid(doc, 7).as_str()))
                    .with_attribute(("classifiedObject", set.as_str()))
                    .with_attribute(("classificationNode", "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"))
                    .write_empty()?;

                // The document entry.
                w.create_element("rim:ExtrinsicObject")
                    .with_attribute(("id", entry.as_str()))
                    .with_attribute(("mimeType", "text/xml"))
                    .with_attribute(("objectType", "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"))
                    .write_inner_content(|w| {
                        slot(w, "creationTime", &[&dtm(doc.effective_time)])?;
                        slot(w, "hash", &[&sha1])?;
                        slot(w, "languageCode", &["fr-FR"])?;
                        if let Some(l) = &doc.legal_authenticator {
                            slot(w, "legalAuthenticator", &[&xcn(l)])?;
                        }
                        slot(w, "serviceStartTime", &[&dtm(doc.service_start)])?;
                        if let Some(stop) = doc.service_stop {
                            slot(w, "serviceStopTime", &[&dtm(stop)])?;
                        }
                        slot(w, "size", &[&size])?;
                        slot(w, "sourcePatientId", &[&patient_id])?;
                        let first = p.first_names.split_whitespace().next().unwrap_or("");
                        let sex = match p.sex.trim() {
                            "F" => "F",
                            "M" => "M",
                            _ => "U",
                        };
                        slot(
                            w,
                            "sourcePatientInfo",
                            &[
                                &format!("PID-3|{patient_id}^{}", if doc.ins.is_some() { "NH" } else { "PI" }),
                                &format!(
                                    "PID-5|{}^{}^{}^^^^L",
                                    hl7v2(&p.birth_name),
                                    hl7v2(first),
                                    hl7v2(&p.first_names)
                                ),
                                &format!("PID-7|{}", p.birth_date.format("%Y%m%d")),
                                &format!("PID-8|{sex}"),
                            ],
                        )?;
                        slot(w, "URI", &[DOC_NAME])?;
                        name(w, &doc.title)?;
                        author(w, &urn_uuid(doc, 101), "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d", &entry, author_person, rec)?;
                        coded(w, &urn_uuid(doc, 102), "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", &entry, "10", "1.2.250.1.213.1.1.4.1", "Compte rendu")?;
                        coded(w, &urn_uuid(doc, 103), "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", &entry, "N", "2.16.840.1.113883.5.25", "Normal")?;
                        coded(w, &urn_uuid(doc, 104), "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4", &entry, ACT_CODE, "1.2.250.1.215.200.3.3", ACT_NAME)?;
                        coded(w, &urn_uuid(doc, 105), "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d", &entry, "urn:ihe:iti:xds-sd:pdf:2008", "1.3.6.1.4.1.19376.1.2.3", "Document à corps non structuré en Pdf/A-1")?;
                        coded(w, &urn_uuid(doc, 106), "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", &entry, &rec.facility_type.0, FACILITY_TYPE_OID, &rec.facility_type.1)?;
                        coded(w, &urn_uuid(doc, 107), "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead", &entry, PRACTICE_SETTING.0, PRACTICE_SETTING_OID, PRACTICE_SETTING.1)?;
                        coded(w, &urn_uuid(doc, 108), "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", &entry, LOINC_TLM_CR, "2.16.840.1.113883.6.1", LOINC_TLM_CR_NAME)?;
                        external_id(w, &urn_uuid(doc, 109), &entry, "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", &patient_id, "XDSDocumentEntry.patientId")?;
                        external_id(w, &urn_uuid(doc, 110), &entry, "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab", &doc.unique_id, "XDSDocumentEntry.uniqueId")
                    })?;
                w.create_element("rim:Association")
                    .with_attribute(("id", urn_uuid(doc, 200).as_str()))
                    .with_attribute(("associationType", "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"))
                    .with_attribute(("sourceObject", set.as_str()))
                    .with_attribute(("targetObject", entry.as_str()))
                    .write_inner_content(|w| slot(w, "SubmissionSetStatus", &["Original"]))?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(w.into_inner())
}

/// What the compte-rendu mail carries for the patient's record, besides the PDF.
#[derive(Debug, Clone, Default)]
pub struct RecordMail {
    /// `IHE_XDM.ZIP`, when the establishment is configured and an act was documented.
    pub archive: Option<Vec<u8>>,
    /// `X-MSS-CODECDA` and `X-MSS-INS` (`O`/`N`): they say what the archive holds, never who.
    pub headers: Vec<(&'static str, String)>,
}

/// The archive and headers of the compte-rendu mail. `rec` is `None` when no FINESS is
/// configured; an unanswered thread has no act to document: both give the PDF alone.
pub fn record_mail(
    d: &ReportData,
    rec: Option<&RecordIdentity>,
    pdf: &[u8],
) -> Result<RecordMail, XdmError> {
    let Some(rec) = rec else {
        return Ok(RecordMail::default());
    };
    match build_xdm(d, rec, pdf) {
        Ok((zip, doc)) => Ok(RecordMail {
            archive: Some(zip),
            headers: vec![
                ("X-MSS-CODECDA", LOINC_TLM_CR.to_owned()),
                (
                    "X-MSS-INS",
                    if doc.ins.is_some() { "O" } else { "N" }.to_owned(),
                ),
            ],
        }),
        Err(XdmError::Cda(cda::CdaError::NoAct)) => Ok(RecordMail::default()),
        Err(e) => Err(e),
    }
}
