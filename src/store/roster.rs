//! The on-duty roster's table: replacement per category in one transaction, and who is on duty.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::error::Ctx;
use super::{Result, Store, col, col_ts, ts};

/// One duty slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterSlot {
    pub category: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Lowercase address.
    pub expert: String,
}

impl Store {
    /// Replaces the slots of `categories` by `slots`, inside `tx`.
    pub async fn roster_replace(
        &self,
        tx: &mut AnyConnection,
        categories: &[String],
        slots: &[RosterSlot],
    ) -> Result<()> {
        for c in categories {
            sqlx::query("DELETE FROM roster_slots WHERE category = $1")
                .bind(c.clone())
                .execute(&mut *tx)
                .await
                .ctx("emptying a category's roster")?;
        }
        for s in slots {
            sqlx::query(
                "INSERT INTO roster_slots (category, starts_at, ends_at, expert) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(s.category.clone())
            .bind(ts(s.starts_at))
            .bind(ts(s.ends_at))
            .bind(s.expert.clone())
            .execute(&mut *tx)
            .await
            .ctx("inserting a roster slot")?;
        }
        Ok(())
    }

    /// Slots of `category` (all when `None`) that hold `at` (all when `None`), by start.
    pub async fn roster_slots(
        &self,
        conn: &mut AnyConnection,
        category: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<RosterSlot>> {
        let rows = sqlx::query(
            "SELECT category, starts_at, ends_at, expert FROM roster_slots \
             WHERE ($1 = '' OR category = $1) AND ($2 = '' OR (starts_at <= $2 AND ends_at > $2)) \
             ORDER BY category, starts_at, expert",
        )
        .bind(category.unwrap_or_default().to_owned())
        .bind(at.map(ts).unwrap_or_default())
        .fetch_all(&mut *conn)
        .await
        .ctx("reading the roster")?;
        rows.iter()
            .map(|r| {
                Ok(RosterSlot {
                    category: col(r, "category")?,
                    starts_at: col_ts(r, "starts_at")?,
                    ends_at: col_ts(r, "ends_at")?,
                    expert: col(r, "expert")?,
                })
            })
            .collect()
    }

    /// Whether `expert` has any slot in `category`'s roster.
    pub async fn roster_has(
        &self,
        conn: &mut AnyConnection,
        category: &str,
        expert: &str,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM roster_slots WHERE category = $1 AND expert = $2",
        )
        .bind(category.to_owned())
        .bind(expert.trim().to_lowercase())
        .fetch_one(&mut *conn)
        .await
        .ctx("reading the roster")?;
        Ok(n > 0)
    }
}
