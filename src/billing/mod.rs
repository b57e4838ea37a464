//! Billing: which acts a closed téléexpertise gives rise to (TE2 for the expert who answered,
//! RQD for the requérant), at what dated price, and whether each is billable (consent, an
//! expert with an RPPS, the compte-rendu sent, the yearly cap per doctor and patient).
//!
//! Pure: the caller passes the thread's facts, the tariff and how many billable acts each
//! doctor already had that year for this patient; nothing here reads a clock or a database.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::report::{ReportData, ReportPerson};

/// Téléexpertise performed by the expert (NGAP).
pub const TE2: &str = "TE2";
/// Request of a téléexpertise by the requérant (NGAP).
pub const RQD: &str = "RQD";

/// One dated price: valid from `from` until `until`, both inclusive, open when `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub code: String,
    pub cents: i64,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

/// The prices of the acts over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff(pub Vec<Price>);

impl Default for Tariff {
    /// The Assurance maladie's prices: TE2 20 € until 2025-12-31 and 23 € from 2026-01-01
    /// (avenant 9), RQD 10 €.
    fn default() -> Self {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        Tariff(vec![
            Price {
                code: TE2.into(),
                cents: 2000,
                from: None,
                until: day(2025, 12, 31),
            },
            Price {
                code: TE2.into(),
                cents: 2300,
                from: day(2026, 1, 1),
                until: None,
            },
            Price {
                code: RQD.into(),
                cents: 1000,
                from: None,
                until: None,
            },
        ])
    }
}

impl Tariff {
    /// The price of `code` on `day`; the last matching entry wins, so an override listed after
    /// a broader one takes precedence.
    pub fn price(&self, code: &str, day: NaiveDate) -> Option<i64> {
        self.0
            .iter()
            .rev()
            .find(|p| {
                p.code == code
                    && p.from.is_none_or(|f| f <= day)
                    && p.until.is_none_or(|u| day <= u)
            })
            .map(|p| p.cents)
    }
}

/// A doctor an act is billed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doctor {
    pub rpps: Option<String>,
    pub name: String,
}

/// What the rules need to know about a thread at close.
#[derive(Debug, Clone)]
pub struct ThreadFacts {
    pub consent: bool,
    /// The first expert who answered, if any.
    pub expert: Option<Doctor>,
    pub requester: Doctor,
    pub report_sent: bool,
    /// Day of the act (the first expert answer, else the close) in the gateway's zone.
    pub day: NaiveDate,
}

/// One act of a thread, as recorded and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Act {
    pub code: String,
    pub doctor_rpps: Option<String>,
    pub doctor_name: String,
    pub day: NaiveDate,
    pub amount_cents: i64,
    pub billable: bool,
    /// Why not billable (`None` when billable).
    pub reason: Option<String>,
}

impl Act {
    /// `23.00`: euros with two decimals, for JSON and CSV.
    pub fn amount_eur(&self) -> f64 {
        self.amount_cents as f64 / 100.0
    }
}

/// The patient key the yearly cap counts by: the INS (NIR) when given, else the birth name,
/// first names and birth date, upper-cased with spaces collapsed.
pub fn patient_key(
    nir: Option<&str>,
    birth_name: &str,
    first_names: &str,
    birth: NaiveDate,
) -> String {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase()
    };
    match nir
        .map(|n| n.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|n| !n.is_empty())
    {
        Some(n) => format!("INS:{}", n.to_uppercase()),
        None => format!(
            "TRAITS:{}|{}|{}",
            norm(birth_name),
            norm(first_names),
            birth.format("%Y-%m-%d")
        ),
    }
}

/// The acts of a thread. `prior(rpps, year)` is how many billable acts that doctor already had
/// in `year` for this patient, other threads only. A thread no expert answered has no TE2 (no
/// act was performed) and a non-billable RQD.
pub fn acts(
    facts: &ThreadFacts,
    tariff: &Tariff,
    max_per_year: u32,
    prior: impl Fn(&str, i32) -> u32,
) -> Vec<Act> {
    let mut out = Vec::with_capacity(2);
    let common = if !facts.consent {
        Some("consentement du patient non confirmé".to_owned())
    } else if facts.expert.is_none() {
        Some("aucune réponse d'expert".to_owned())
    } else if facts.expert.as_ref().is_some_and(|e| e.rpps.is_none()) {
        Some("l'expert qui a répondu n'a pas de RPPS".to_owned())
    } else if !facts.report_sent {
        Some("compte-rendu non envoyé".to_owned())
    } else {
        None
    };
    let mut one = |code: &str, doctor: &Doctor| {
        let amount_cents = tariff.price(code, facts.day).unwrap_or(0);
        let reason = common
            .clone()
            .or_else(|| {
                doctor
                    .rpps
                    .is_none()
                    .then(|| "médecin sans RPPS".to_owned())
            })
            .or_else(|| {
                (tariff.price(code, facts.day).is_none())
                    .then(|| format!("pas de tarif pour {code} à cette date"))
            })
            .or_else(|| {
                let year = facts.day.year();
                let rpps = doctor.rpps.as_deref().unwrap_or_default();
                let n = prior(rpps, year);
                (n >= max_per_year).then(|| {
                    format!(
                        "plafond annuel atteint : {n} actes facturables en {year} pour ce patient (maximum {max_per_year})"
                    )
                })
            });
        out.push(Act {
            code: code.to_owned(),
            doctor_rpps: doctor.rpps.clone(),
            doctor_name: doctor.name.clone(),
            day: facts.day,
            amount_cents,
            billable: reason.is_none(),
            reason,
        });
    };
    if let Some(expert) = &facts.expert {
        one(TE2, expert);
    }
    one(RQD, &facts.requester);
    out
}

/// The facts, the patient key and the patient's identity (for the export) of a compte-rendu
/// about to be sent. The expert billed is the first one with an RPPS who answered (a group
/// mailbox answering first does not hide the doctor behind it).
pub fn from_report(d: &ReportData) -> (ThreadFacts, String, serde_json::Value) {
    let tz = d.timezone;
    let doctor = |p: &ReportPerson| Doctor {
        rpps: p
            .rpps
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        name: p
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(p.address.trim())
            .to_owned(),
    };
    let expert = d
        .experts
        .iter()
        .find(|e| e.rpps.is_some())
        .or(d.experts.first())
        .map(doctor);
    let at = d.answered_at.or(d.closed_at).unwrap_or(d.generated_at);
    let p = &d.patient;
    let key = patient_key(
        p.nir.as_deref(),
        &p.birth_name,
        &p.first_names,
        p.birth_date,
    );
    let identity = serde_json::json!({
        "birth_name": p.birth_name.trim(),
        "used_name": p.used_name.as_deref().map(str::trim),
        "first_names": p.first_names.trim(),
        "sex": p.sex.trim(),
        "birth_date": p.birth_date.format("%Y-%m-%d").to_string(),
        "ins": p.nir.as_deref().map(|n| n.chars().filter(|c| !c.is_whitespace()).collect::<String>()),
    });
    let facts = ThreadFacts {
        consent: d.consent_confirmed,
        expert,
        requester: doctor(&d.requester),
        report_sent: true,
        day: at.with_timezone(&tz).date_naive(),
    };
    (facts, key, identity)
}

#[cfg(test)]
mod tests;
