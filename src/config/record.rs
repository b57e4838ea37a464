//! `[record]` (the compte-rendu as a CDA in the patient's record) and `[billing]` (acts, the
//! dated tariff, the yearly cap): their settings, defaults and checks.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::billing::{Price, Tariff};
use crate::report::{OID_INS_NIR, RecordIdentity};

/// INS-NIR OID of test systems (`record.ins_oid` for a test platform).
const OID_INS_NIR_TEST: &str = "1.2.250.1.213.1.4.10";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSettings {
    /// OID the patient's NIR is given under: production 1.2.250.1.213.1.4.8, test
    /// 1.2.250.1.213.1.4.10.
    #[serde(default = "default_ins_oid")]
    pub ins_oid: String,
    /// FINESS of the establishment (9 characters). Without it no CDA archive is attached:
    /// a document whose custodian cannot be named would be refused by the record.
    #[serde(default)]
    pub finess: Option<String>,
    /// The custodian's name; defaults to `gateway.network`.
    #[serde(default)]
    pub organization_name: Option<String>,
    /// Healthcare facility type (TRE_R02), e.g. `SA01` for a public hospital.
    #[serde(default = "default_facility_type")]
    pub facility_type_code: String,
    #[serde(default = "default_facility_type_name")]
    pub facility_type_name: String,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            ins_oid: default_ins_oid(),
            finess: None,
            organization_name: None,
            facility_type_code: default_facility_type(),
            facility_type_name: default_facility_type_name(),
        }
    }
}

fn default_ins_oid() -> String {
    OID_INS_NIR.into()
}
fn default_facility_type() -> String {
    "SA01".into()
}
fn default_facility_type_name() -> String {
    "Etablissement public de santé".into()
}

impl RecordSettings {
    /// The report module's view of these settings; `None` when no FINESS is configured.
    pub fn identity(&self, network: &str) -> Option<RecordIdentity> {
        let finess = self
            .finess
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())?;
        Some(RecordIdentity {
            ins_oid: self.ins_oid.trim().to_owned(),
            finess: finess.to_owned(),
            organization_name: self
                .organization_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or(network.trim())
                .to_owned(),
            facility_type: (
                self.facility_type_code.trim().to_owned(),
                self.facility_type_name.trim().to_owned(),
            ),
        })
    }

    pub(super) fn problems(&self, network: &str, p: &mut impl FnMut(&str, String)) {
        if self.ins_oid != OID_INS_NIR && self.ins_oid != OID_INS_NIR_TEST {
            p(
                "record.ins_oid",
                format!(
                    "{:?}: expected {OID_INS_NIR} (production) or {OID_INS_NIR_TEST} (test)",
                    self.ins_oid
                ),
            );
        }
        if let Some(f) = &self.finess {
            let ok = f.len() == 9
                && f.chars()
                    .all(|c| c.is_ascii_digit() || c == 'A' || c == 'B');
            if !ok {
                p(
                    "record.finess",
                    "expected the 9 characters of a FINESS number".into(),
                );
            }
            if self
                .identity(network)
                .is_some_and(|r| r.organization_name.is_empty())
            {
                p(
                    "record.organization_name",
                    "required with record.finess when gateway.network is empty".into(),
                );
            }
        }
    }
}

/// One dated price of an act (`[[billing.tariff]]`): valid from `from` (inclusive) until
/// `until` (inclusive) when given.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TariffSettings {
    pub code: String,
    pub amount_eur: f64,
    #[serde(default)]
    pub from: Option<NaiveDate>,
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// Billable téléexpertises per doctor, patient and calendar year.
    #[serde(default = "default_max_per_year")]
    pub max_per_year: u32,
    /// Replaces the default tariff when not empty.
    #[serde(default)]
    pub tariff: Vec<TariffSettings>,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            max_per_year: default_max_per_year(),
            tariff: vec![],
        }
    }
}

fn default_max_per_year() -> u32 {
    4
}

impl BillingSettings {
    /// The configured tariff, or the default one when `[[billing.tariff]]` is empty.
    pub fn tariff(&self) -> Tariff {
        if self.tariff.is_empty() {
            return Tariff::default();
        }
        Tariff(
            self.tariff
                .iter()
                .map(|t| Price {
                    code: t.code.clone(),
                    cents: (t.amount_eur * 100.0).round() as i64,
                    from: t.from,
                    until: t.until,
                })
                .collect(),
        )
    }

    pub(super) fn problems(&self, p: &mut impl FnMut(&str, String)) {
        for (i, t) in self.tariff.iter().enumerate() {
            let key = format!("billing.tariff[{i}]");
            if !matches!(t.code.as_str(), "TE2" | "RQD" | "TE1") {
                p(&key, format!("code {:?}: expected TE1, TE2 or RQD", t.code));
            }
            if !(t.amount_eur.is_finite() && t.amount_eur >= 0.0) {
                p(&key, "amount_eur must be a positive amount".into());
            }
            if let (Some(a), Some(b)) = (t.from, t.until)
                && b < a
            {
                p(&key, "until is before from".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        billing: BillingSettings,
        record: RecordSettings,
    }

    /// Read the way `Settings::load` reads the file (the `config` crate), TOML dates included.
    fn load(toml: &str) -> Wrapper {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("settings")
    }

    #[test]
    fn tariff_overrides_with_toml_dates() {
        let w = load(
            "[record]\nfiness = \"570000745\"\n[billing]\nmax_per_year = 3\n\
             [[billing.tariff]]\ncode = \"TE2\"\namount_eur = 25.5\nfrom = 2027-01-01\n\
             [[billing.tariff]]\ncode = \"RQD\"\namount_eur = 10\n",
        );
        assert_eq!(w.billing.max_per_year, 3);
        let t = w.billing.tariff();
        let day = |y| NaiveDate::from_ymd_opt(y, 6, 1).expect("date");
        assert_eq!(t.price("TE2", day(2027)), Some(2550));
        assert_eq!(
            t.price("TE2", day(2026)),
            None,
            "an override replaces the defaults"
        );
        assert_eq!(t.price("RQD", day(2026)), Some(1000));
        let mut problems = vec![];
        w.billing
            .problems(&mut |k: &str, m: String| problems.push(format!("{k}: {m}")));
        w.record.problems("", &mut |k: &str, m: String| {
            problems.push(format!("{k}: {m}"))
        });
        assert_eq!(
            problems,
            ["record.organization_name: required with record.finess when gateway.network is empty"]
        );
    }

    #[test]
    fn defaults_and_bad_values() {
        let w = load("[record]\n[billing]\n");
        assert_eq!(w.billing.tariff(), Tariff::default());
        assert_eq!(w.record.identity("CHR"), None, "no FINESS, no archive");
        let w = load(
            "[record]\nins_oid = \"1.2.3\"\nfiness = \"12345\"\n[billing]\n\
             [[billing.tariff]]\ncode = \"XX\"\namount_eur = -1\n",
        );
        let mut keys = vec![];
        w.record
            .problems("CHR", &mut |k: &str, _| keys.push(k.to_owned()));
        w.billing
            .problems(&mut |k: &str, _| keys.push(k.to_owned()));
        assert_eq!(
            keys,
            [
                "record.ins_oid",
                "record.finess",
                "billing.tariff[0]",
                "billing.tariff[0]"
            ]
        );
    }
}
