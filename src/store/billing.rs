//! The `acts` table: a thread's billing acts, the yearly count the cap needs, and the rows
//! `billing export` and `threads show` read.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::error::Ctx;
use super::{Result, Store, StoreError, col, col_ts, ts};
use crate::billing::{Act, Tariff};
use crate::report::ReportData;

/// One stored act, with what the export needs beside it.
#[derive(Debug, Clone)]
pub struct ActRow {
    pub thread_id: String,
    pub act: Act,
    /// The patient's identity as the billing office needs it (JSON object; patient data).
    pub patient_json: String,
    pub created_at: DateTime<Utc>,
}

// sqlx wants 'static SQL: the column list is repeated through a macro, not formatted.
macro_rules! act_columns {
    () => {
        "thread_id, code, doctor_rpps, doctor_name, patient_json, act_day, amount_cents, \
         billable, reason, created_at"
    };
}

fn act_row(row: &AnyRow) -> Result<ActRow> {
    let day: String = col(row, "act_day")?;
    let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| StoreError::Corrupt {
        column: "act_day",
        detail: format!("`{day}`: {e}"),
    })?;
    let billable: i64 = col(row, "billable")?;
    Ok(ActRow {
        thread_id: col(row, "thread_id")?,
        act: Act {
            code: col(row, "code")?,
            doctor_rpps: col(row, "doctor_rpps")?,
            doctor_name: col(row, "doctor_name")?,
            day,
            amount_cents: col(row, "amount_cents")?,
            billable: billable != 0,
            reason: col(row, "reason")?,
        },
        patient_json: col(row, "patient_json")?,
        created_at: col_ts(row, "created_at")?,
    })
}

impl Store {
    /// Decides the acts of the thread whose compte-rendu `d` is being sent, with the yearly
    /// cap counted in this transaction, and records them. Returns them for the Facturation
    /// section.
    pub async fn settle_acts(
        &self,
        conn: &mut AnyConnection,
        d: &ReportData,
        tariff: &Tariff,
        max_per_year: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Act>> {
        let (facts, key, identity) = crate::billing::from_report(d);
        // The counts first (async), then the pure rules over them.
        let mut prior = HashMap::new();
        for doctor in facts.expert.iter().chain([&facts.requester]) {
            if let Some(rpps) = &doctor.rpps {
                let n = self
                    .billable_acts_in_year(conn, rpps, &key, facts.day.year(), &d.thread_id)
                    .await?;
                prior.insert(rpps.clone(), n);
            }
        }
        let acts = crate::billing::acts(&facts, tariff, max_per_year, |rpps, _| {
            prior.get(rpps).copied().unwrap_or(0)
        });
        self.record_acts(conn, &d.thread_id, &key, &identity.to_string(), &acts, now)
            .await?;
        Ok(acts)
    }

    /// Billable acts `rpps` had in `year` for the patient, other threads than `thread_id`.
    pub async fn billable_acts_in_year(
        &self,
        conn: &mut AnyConnection,
        rpps: &str,
        patient_key: &str,
        year: i32,
        thread_id: &str,
    ) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM acts WHERE doctor_rpps = $1 AND patient_key = $2 \
             AND act_year = $3 AND billable = 1 AND thread_id <> $4",
        )
        .bind(rpps)
        .bind(patient_key)
        .bind(i64::from(year))
        .bind(thread_id)
        .fetch_one(&mut *conn)
        .await
        .ctx("counting the billable acts of a doctor for a patient")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Replaces the acts of a thread (a thread's acts are decided once, when its compte-rendu
    /// is sent; replacing keeps a re-sent compte-rendu from counting twice).
    pub async fn record_acts(
        &self,
        conn: &mut AnyConnection,
        thread_id: &str,
        patient_key: &str,
        patient_json: &str,
        acts: &[Act],
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("DELETE FROM acts WHERE thread_id = $1")
            .bind(thread_id)
            .execute(&mut *conn)
            .await
            .with_ctx(|| format!("replacing the acts of {thread_id}"))?;
        for a in acts {
            sqlx::query(
                "INSERT INTO acts (thread_id, code, doctor_rpps, doctor_name, patient_key, \
                 patient_json, act_day, act_year, amount_cents, billable, reason, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(thread_id)
            .bind(&a.code)
            .bind(a.doctor_rpps.as_deref())
            .bind(&a.doctor_name)
            .bind(patient_key)
            .bind(patient_json)
            .bind(a.day.format("%Y-%m-%d").to_string())
            .bind(i64::from(a.day.year()))
            .bind(a.amount_cents)
            .bind(i64::from(a.billable))
            .bind(a.reason.as_deref())
            .bind(ts(now))
            .execute(&mut *conn)
            .await
            .with_ctx(|| format!("recording act {} of {thread_id}", a.code))?;
        }
        Ok(())
    }

    /// The acts of one thread, TE2 before RQD.
    pub async fn thread_acts(&self, thread_id: &str) -> Result<Vec<ActRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            act_columns!(),
            " FROM acts WHERE thread_id = $1 ORDER BY id"
        ))
        .bind(thread_id)
        .fetch_all(&self.pool)
        .await
        .with_ctx(|| format!("reading the acts of {thread_id}"))?;
        rows.iter().map(act_row).collect()
    }

    /// Acts whose day is within `[from, to]` (both inclusive, either open), by day then thread.
    pub async fn acts_between(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<ActRow>> {
        let from = from.map_or_else(
            || "0000-01-01".to_owned(),
            |d| d.format("%Y-%m-%d").to_string(),
        );
        let to = to.map_or_else(
            || "9999-12-31".to_owned(),
            |d| d.format("%Y-%m-%d").to_string(),
        );
        let rows = sqlx::query(concat!(
            "SELECT ",
            act_columns!(),
            " FROM acts WHERE act_day >= $1 AND act_day <= $2 ORDER BY act_day, thread_id, id"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .ctx("reading the acts of a period")?;
        rows.iter().map(act_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::testutil::both;
    use super::*;
    use crate::report::{ReportData, ReportPatient, ReportPerson};

    fn person(name: &str, rpps: &str) -> ReportPerson {
        ReportPerson {
            name: Some(name.into()),
            address: format!("{}@test", rpps),
            specialty: None,
            rpps: Some(rpps.into()),
        }
    }

    /// A closed, answered thread of the seed's first patient on `y-m-d` (noon, Paris).
    fn closed(n: u32, y: i32, m: u32, d: u32) -> ReportData {
        let at = chrono_tz::Europe::Paris
            .with_ymd_and_hms(y, m, d, 12, 0, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc);
        ReportData {
            thread_id: format!("TE-{y}-{n:06}"),
            network: "Hôpital de test".into(),
            category_name: "Maladies infectieuses".into(),
            requested_at: at,
            answered_at: Some(at),
            closed_at: Some(at),
            status: "terminee".into(),
            patient: ReportPatient {
                birth_name: "Zébulon".into(),
                used_name: None,
                first_names: "Joséphine".into(),
                sex: "F".into(),
                birth_date: NaiveDate::from_ymd_opt(1991, 1, 23).expect("date"),
                nir: None,
            },
            requester: person("Dr Olivier HANRIOT", "10001234567"),
            experts: vec![person("Dr Yvon RUCH", "10007654321")],
            consent_confirmed: true,
            form_lines: vec![],
            exchanges: vec![],
            attachments: vec![],
            generated_at: at,
            timezone: chrono_tz::Europe::Paris,
            acts: vec![],
        }
    }

    async fn settle(store: &Store, d: &ReportData) -> Vec<Act> {
        let mut tx = store.begin().await.expect("begin");
        let acts = store
            .settle_acts(&mut tx, d, &Tariff::default(), 4, d.generated_at)
            .await
            .expect("settle");
        tx.commit().await.expect("commit");
        acts
    }

    #[tokio::test]
    async fn the_yearly_cap_counts_stored_acts_and_resets_each_year() {
        both("billing_cap", |store| async move {
            store.migrate().await.expect("migrate");
            for (n, m) in [(1, 1), (2, 3), (3, 5), (4, 7)] {
                let acts = settle(&store, &closed(n, 2026, m, 10)).await;
                assert!(acts.iter().all(|a| a.billable), "thread {n}: {acts:?}");
            }
            // Settling a thread again replaces its acts: it does not count against itself.
            let again = settle(&store, &closed(4, 2026, 7, 10)).await;
            assert!(again.iter().all(|a| a.billable), "{again:?}");
            let fifth = settle(&store, &closed(5, 2026, 11, 10)).await;
            assert_eq!(fifth.len(), 2);
            assert!(fifth.iter().all(|a| !a.billable), "{fifth:?}");
            assert!(
                fifth[0]
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("plafond annuel"))
            );
            let next_year = settle(&store, &closed(1, 2027, 1, 4)).await;
            assert!(next_year.iter().all(|a| a.billable), "{next_year:?}");

            let shown = store.thread_acts("TE-2026-000005").await.expect("acts");
            assert_eq!(shown.len(), 2);
            assert_eq!(shown[0].act.code, "TE2");
            assert_eq!(shown[0].act.amount_cents, 2300);
            assert!(!shown[0].act.billable);
            let year = store
                .acts_between(
                    NaiveDate::from_ymd_opt(2026, 1, 1),
                    NaiveDate::from_ymd_opt(2026, 12, 31),
                )
                .await
                .expect("period");
            assert_eq!(year.len(), 10);
            assert_eq!(year.iter().filter(|r| r.act.billable).count(), 8);
            assert!(year[0].patient_json.contains("Zébulon"));
        })
        .await;
    }

    #[tokio::test]
    async fn the_price_is_the_one_of_the_day_of_the_act() {
        both("billing_tariff", |store| async move {
            store.migrate().await.expect("migrate");
            let before = settle(&store, &closed(1, 2025, 12, 31)).await;
            let after = settle(&store, &closed(2, 2026, 1, 1)).await;
            assert_eq!(
                (before[0].code.as_str(), before[0].amount_cents),
                ("TE2", 2000)
            );
            assert_eq!(
                (after[0].code.as_str(), after[0].amount_cents),
                ("TE2", 2300)
            );
            assert_eq!(before[1].amount_cents, 1000);
            assert_eq!(after[1].amount_cents, 1000);
        })
        .await;
    }
}
