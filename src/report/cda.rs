//! The compte-rendu as a CI-SIS TLM-CR CDA R2 document (compte-rendu d'acte de télémédecine):
//! the header the patient's record software files it by, and a non-structured body holding the
//! PDF.
//!
//! Pure: the caller passes the report data, the establishment's identity and the PDF bytes. The
//! XML is written by `quick-xml`, so every value is escaped by the writer, never by hand. The
//! element order follows the CDA R2 schema (the ANS validator checks it).

use std::io;

use base64::Engine;
use chrono::{DateTime, Utc};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::identity::{
    birth_cog, display_name, hl7_local, nir_digits, rpps_id, signer, split_name, uuid_oid,
};
use super::{ReportData, ReportPerson};

/// LOINC code of a TLM-CR (also the `X-MSS-CODECDA` header value).
pub const LOINC_TLM_CR: &str = "85208-7";
pub const LOINC_TLM_CR_NAME: &str = "Compte-rendu d'acte de télémédecine";
const LOINC: &str = "2.16.840.1.113883.6.1";
/// RPPS identifiers of professionals (national identifier `8` + RPPS).
const OID_RPPS: &str = "1.2.250.1.71.4.2.1";
/// Structures (FINESS identifiers, `1` + FINESS).
const OID_STRUCTURE: &str = "1.2.250.1.71.4.2.2";
const OID_NGAP: &str = "1.2.250.1.215.200.3.3";
const OID_PROFESSION: &str = "1.2.250.1.213.1.1.4.5";
/// INS-NIR of production systems; 1.2.250.1.213.1.4.10 is the test one.
pub const OID_INS_NIR: &str = "1.2.250.1.213.1.4.8";

/// The profession every expert and requérant is given: the forms carry the specialty as free
/// text, which no coded value of JDV_J01 can be derived from with certainty.
pub(crate) const PROFESSION_CODE: &str = "G15_10";
pub(crate) const PROFESSION_NAME: &str = "Médecin";
pub(crate) const ACT_CODE: &str = "TE2";
pub(crate) const ACT_NAME: &str =
    "Téléexpertise d'un médecin sollicité par un autre professionnel de santé";
/// Healthcare facility type (TRE_R02, 1.2.250.1.71.4.2.4) and practice setting (JDV_J02).
pub(crate) const FACILITY_TYPE_OID: &str = "1.2.250.1.71.4.2.4";
pub(crate) const PRACTICE_SETTING: (&str, &str) = ("ETABLISSEMENT", "Établissement de santé");
pub(crate) const PRACTICE_SETTING_OID: &str = "1.2.250.1.213.1.1.4.9";

/// The establishment that answers and keeps the document (the custodian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordIdentity {
    /// OID the patient's NIR is given under (`record.ins_oid`).
    pub ins_oid: String,
    /// FINESS number, 9 characters (`record.finess`).
    pub finess: String,
    /// Its name (`record.organization_name`).
    pub organization_name: String,
    /// Healthcare facility type code and label (TRE_R02), e.g. `SA01`.
    pub facility_type: (String, String),
}

/// A CDA document and the header values the XDM metadata repeats.
pub struct CdaDocument {
    pub xml: Vec<u8>,
    /// `ClinicalDocument/id/@root` (no extension): the XDS uniqueId.
    pub unique_id: String,
    /// The patient's INS, when a NIR was given: (NIR, OID).
    pub ins: Option<(String, String)>,
    /// The patient id the archive is filed under, (extension, root): the INS, else the
    /// gateway's own id for this thread's patient.
    pub patient_id: (String, String),
    /// Document creation time (the compte-rendu's generation).
    pub effective_time: DateTime<Utc>,
    /// serviceEvent start: the request.
    pub service_start: DateTime<Utc>,
    pub service_stop: Option<DateTime<Utc>>,
    /// The expert who signs the document (the last one who answered), if any.
    pub legal_authenticator: Option<ReportPerson>,
    pub title: String,
}

/// Why no CDA was produced.
#[derive(Debug, thiserror::Error)]
pub enum CdaError {
    /// A TLM-CR documents an act and names who performed it: a thread closed without any
    /// expert answer has neither, so it gets the PDF only.
    #[error("no expert answered: no act to document")]
    NoAct,
    #[error("XML writing failed: {0}")]
    Xml(#[from] io::Error),
}

/// Builds the TLM-CR around `pdf`.
pub fn build_cda(
    d: &ReportData,
    rec: &RecordIdentity,
    pdf: &[u8],
) -> Result<CdaDocument, CdaError> {
    if d.experts.is_empty() {
        return Err(CdaError::NoAct);
    }
    let tz = d.timezone;
    let set_id = uuid_oid(&["teleavis-set", &d.thread_id]);
    let unique_id = uuid_oid(&[
        "teleavis-doc",
        &d.thread_id,
        &d.generated_at.timestamp_micros().to_string(),
    ]);
    let ins = nir_digits(d).map(|n| (n, rec.ins_oid.clone()));
    // Without a NIR the patient still needs an id to be filed by: a local one under an OID
    // of the establishment's own (as an IPP would be), with the identity traits beside it.
    let patient_id = ins.clone().unwrap_or_else(|| {
        (
            format!("P{}", d.thread_id),
            uuid_oid(&["teleavis-patient", rec.finess.trim()]),
        )
    });
    let title = format!("{} {}", super::content::TITLE, d.thread_id);
    let now = hl7_local(d.generated_at, tz);
    let signer = signer(d).cloned();
    // Professionals without an RPPS (a group mailbox) are identified by their address under
    // an OID of the establishment's: CI-SIS wants a root and an extension on every id.
    let local_root = uuid_oid(&["teleavis-professional", rec.finess.trim()]);
    let local_root = local_root.as_str();

    let mut w = Writer::new_with_indent(Vec::with_capacity(pdf.len() * 4 / 3 + 8192), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("ClinicalDocument")
        .with_attribute(("xmlns", "urn:hl7-org:v3"))
        .with_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"))
        .write_inner_content(|w| {
            empty(w, "realmCode", &[("code", "FR")])?;
            empty(
                w,
                "typeId",
                &[
                    ("root", "2.16.840.1.113883.1.3"),
                    ("extension", "POCD_HD000040"),
                ],
            )?;
            for t in [
                "2.16.840.1.113883.2.8.2.1",
                "1.2.250.1.213.1.1.1.1",
                "1.3.6.1.4.1.19376.1.2.20",
            ] {
                empty(w, "templateId", &[("root", t)])?;
            }
            empty(w, "id", &[("root", &unique_id)])?;
            coded(w, "code", LOINC_TLM_CR, LOINC_TLM_CR_NAME, LOINC)?;
            text(w, "title", &[], &title)?;
            empty(w, "effectiveTime", &[("value", &now)])?;
            coded(
                w,
                "confidentialityCode",
                "N",
                "Normal",
                "2.16.840.1.113883.5.25",
            )?;
            empty(w, "languageCode", &[("code", "fr-FR")])?;
            empty(w, "setId", &[("root", &set_id)])?;
            empty(w, "versionNumber", &[("value", "1")])?;
            record_target(w, d, &patient_id)?;
            // Authors: every expert who answered; the document is the record of their answers.
            for a in &d.experts {
                el(w, "author", &[], |w| {
                    empty(w, "time", &[("value", &now)])?;
                    el(w, "assignedAuthor", &[], |w| {
                        professional(w, a, rec, local_root)
                    })
                })?;
            }
            el(w, "custodian", &[], |w| {
                el(w, "assignedCustodian", &[], |w| {
                    el(w, "representedCustodianOrganization", &[], |w| {
                        organization_id(w, rec)?;
                        text(w, "name", &[], &rec.organization_name)
                    })
                })
            })?;
            el(w, "informationRecipient", &[], |w| {
                el(w, "intendedRecipient", &[], |w| {
                    person_id(w, &d.requester, local_root)?;
                    telecom(w, &d.requester)?;
                    el(w, "informationRecipient", &[], |w| {
                        person_name(w, &d.requester)
                    })
                })
            })?;
            let legal = signer.as_ref().unwrap_or(&d.requester);
            el(w, "legalAuthenticator", &[], |w| {
                empty(w, "time", &[("value", &now)])?;
                empty(w, "signatureCode", &[("code", "S")])?;
                el(w, "assignedEntity", &[], |w| {
                    professional(w, legal, rec, local_root)
                })
            })?;
            el(w, "documentationOf", &[], |w| {
                el(w, "serviceEvent", &[("classCode", "ACT")], |w| {
                    coded(w, "code", ACT_CODE, ACT_NAME, OID_NGAP)?;
                    el(w, "effectiveTime", &[], |w| {
                        empty(w, "low", &[("value", &hl7_local(d.requested_at, tz))])?;
                        if let Some(end) = d.answered_at.or(d.closed_at) {
                            empty(w, "high", &[("value", &hl7_local(end, tz))])?;
                        }
                        Ok(())
                    })?;
                    if let Some(s) = signer.as_ref() {
                        el(w, "performer", &[("typeCode", "PRF")], |w| {
                            el(w, "assignedEntity", &[], |w| {
                                professional(w, s, rec, local_root)
                            })
                        })?;
                    }
                    Ok(())
                })
            })?;
            el(w, "componentOf", &[], |w| {
                el(w, "encompassingEncounter", &[], |w| {
                    // Virtual encounter: the patient takes no part in a téléexpertise.
                    coded(w, "code", "VR", "Virtuelle", "2.16.840.1.113883.5.4")?;
                    el(w, "effectiveTime", &[], |w| {
                        empty(w, "low", &[("value", &hl7_local(d.requested_at, tz))])?;
                        if let Some(end) = d.closed_at {
                            empty(w, "high", &[("value", &hl7_local(end, tz))])?;
                        }
                        Ok(())
                    })?;
                    el(w, "location", &[], |w| {
                        el(w, "healthCareFacility", &[], |w| {
                            organization_id(w, rec)?;
                            coded(
                                w,
                                "code",
                                &rec.facility_type.0,
                                &rec.facility_type.1,
                                FACILITY_TYPE_OID,
                            )?;
                            el(w, "location", &[], |w| {
                                text(w, "name", &[], &rec.organization_name)
                            })
                        })
                    })
                })
            })?;
            el(w, "component", &[], |w| {
                el(w, "nonXMLBody", &[], |w| {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(pdf);
                    text(
                        w,
                        "text",
                        &[("mediaType", "application/pdf"), ("representation", "B64")],
                        &b64,
                    )
                })
            })?;
            Ok(())
        })?;
    Ok(CdaDocument {
        xml: w.into_inner(),
        unique_id,
        ins,
        patient_id,
        effective_time: d.generated_at,
        service_start: d.requested_at,
        service_stop: d.answered_at.or(d.closed_at),
        legal_authenticator: signer,
        title,
    })
}

type W = Writer<Vec<u8>>;

fn empty(w: &mut W, name: &str, attrs: &[(&str, &str)]) -> io::Result<()> {
    w.create_element(name)
        .with_attributes(attrs.iter().copied())
        .write_empty()?;
    Ok(())
}

fn text(w: &mut W, name: &str, attrs: &[(&str, &str)], value: &str) -> io::Result<()> {
    w.create_element(name)
        .with_attributes(attrs.iter().copied())
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// A coded element: `code`, `displayName`, `codeSystem`.
fn coded(w: &mut W, tag: &str, code: &str, name: &str, system: &str) -> io::Result<()> {
    empty(
        w,
        tag,
        &[
            ("code", code),
            ("displayName", name),
            ("codeSystem", system),
        ],
    )
}

fn el(
    w: &mut W,
    name: &str,
    attrs: &[(&str, &str)],
    inner: impl FnOnce(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    w.create_element(name)
        .with_attributes(attrs.iter().copied())
        .write_inner_content(inner)?;
    Ok(())
}

fn organization_id(w: &mut W, rec: &RecordIdentity) -> io::Result<()> {
    empty(
        w,
        "id",
        &[
            ("root", OID_STRUCTURE),
            ("extension", &format!("1{}", rec.finess.trim())),
        ],
    )
}

fn telecom(w: &mut W, p: &ReportPerson) -> io::Result<()> {
    empty(
        w,
        "telecom",
        &[
            ("value", &format!("mailto:{}", p.address.trim())),
            ("use", "WP"),
        ],
    )
}

fn person_name(w: &mut W, p: &ReportPerson) -> io::Result<()> {
    let (given, family) = split_name(&display_name(p));
    el(w, "name", &[], |w| {
        if !given.is_empty() {
            text(w, "given", &[], &given)?;
        }
        text(w, "family", &[], &family)
    })
}

fn person_id(w: &mut W, p: &ReportPerson, local_root: &str) -> io::Result<()> {
    match rpps_id(p) {
        Some(id) => empty(w, "id", &[("root", OID_RPPS), ("extension", &id)]),
        None => empty(
            w,
            "id",
            &[("root", local_root), ("extension", p.address.trim())],
        ),
    }
}

/// id, code, telecom, person and organization of an author, signer or performer.
fn professional(
    w: &mut W,
    p: &ReportPerson,
    rec: &RecordIdentity,
    local_root: &str,
) -> io::Result<()> {
    person_id(w, p, local_root)?;
    coded(w, "code", PROFESSION_CODE, PROFESSION_NAME, OID_PROFESSION)?;
    telecom(w, p)?;
    el(w, "assignedPerson", &[], |w| person_name(w, p))?;
    el(w, "representedOrganization", &[], |w| {
        organization_id(w, rec)?;
        text(w, "name", &[], &rec.organization_name)?;
        coded(
            w,
            "standardIndustryClassCode",
            PRACTICE_SETTING.0,
            PRACTICE_SETTING.1,
            PRACTICE_SETTING_OID,
        )
    })
}

fn record_target(w: &mut W, d: &ReportData, id: &(String, String)) -> io::Result<()> {
    let p = &d.patient;
    el(w, "recordTarget", &[], |w| {
        el(w, "patientRole", &[], |w| {
            empty(w, "id", &[("root", &id.1), ("extension", &id.0)])?;
            el(w, "patient", &[("classCode", "PSN")], |w| {
                el(w, "name", &[], |w| {
                    let first = p.first_names.split_whitespace().next().unwrap_or("");
                    text(w, "family", &[("qualifier", "BR")], p.birth_name.trim())?;
                    text(w, "given", &[], p.first_names.trim())?;
                    text(w, "given", &[("qualifier", "BR")], first)?;
                    if let Some(used) = p
                        .used_name
                        .as_deref()
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                    {
                        text(w, "family", &[("qualifier", "CL")], used)?;
                    }
                    Ok(())
                })?;
                let (code, name) = match p.sex.trim() {
                    "F" => ("F", "Féminin"),
                    "M" => ("M", "Masculin"),
                    _ => ("U", "Inconnu"),
                };
                coded(
                    w,
                    "administrativeGenderCode",
                    code,
                    name,
                    "2.16.840.1.113883.5.1",
                )?;
                empty(
                    w,
                    "birthTime",
                    &[("value", &p.birth_date.format("%Y%m%d").to_string())],
                )?;
                // The INS traits include the birth place as a COG code: for a NIR it is the
                // NIR's own characters 6 to 10 (department and commune, or 99 and the country
                // for a birth abroad), so it is never guessed from a place name.
                if let Some(cog) = birth_cog(d) {
                    el(w, "birthplace", &[], |w| {
                        el(w, "place", &[], |w| {
                            el(w, "addr", &[], |w| text(w, "county", &[], &cog))
                        })
                    })?;
                }
                Ok(())
            })
        })
    })
}
