//! Per-correspondent state: certificates learned from verified signatures, automatic-reply log.
//!
//! Addresses are keys here: they come in as [`EmailAddress`] (parsed, lower-cased) and are
//! stored in that form.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use tracing::info;

use super::error::Ctx;
use super::{Result, Store, col, col_ts, ts};
use crate::address::EmailAddress;

impl Store {
    /// Remembers the certificate a correspondent signed with, replacing the known one only when
    /// the new one expires later. Returns whether it was stored.
    pub async fn learn_certificate(
        &self,
        conn: &mut AnyConnection,
        address: &EmailAddress,
        cert_der: &[u8],
        not_after: DateTime<Utc>,
        inbound_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO recipient_certs (address, cert_der, not_after, learned_at, inbound_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address) DO UPDATE SET \
             cert_der = excluded.cert_der, not_after = excluded.not_after, \
             learned_at = excluded.learned_at, inbound_id = excluded.inbound_id \
             WHERE excluded.not_after > recipient_certs.not_after",
        )
        .bind(address.as_str())
        .bind(cert_der)
        .bind(ts(not_after))
        .bind(ts(now))
        .bind(inbound_id)
        .execute(&mut *conn)
        .await
        .with_ctx(|| format!("storing the certificate of {address}"))?;
        let learned = done.rows_affected() > 0;
        if learned {
            info!(%address, not_after = %ts(not_after), "recipient certificate learned");
        }
        Ok(learned)
    }

    /// The certificate (DER) known for an address and its expiry.
    pub async fn recipient_certificate(
        &self,
        address: &EmailAddress,
    ) -> Result<Option<(Vec<u8>, DateTime<Utc>)>> {
        let row = sqlx::query("SELECT cert_der, not_after FROM recipient_certs WHERE address = $1")
            .bind(address.as_str())
            .fetch_optional(&self.pool)
            .await
            .with_ctx(|| format!("reading the certificate of {address}"))?;
        row.map(|row| Ok((col(&row, "cert_der")?, col_ts(&row, "not_after")?)))
            .transpose()
    }

    /// Records an automatic reply sent to `address` (for the per-sender rate limit).
    pub async fn record_auto_reply(
        &self,
        conn: &mut AnyConnection,
        address: &EmailAddress,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO auto_replies (address, at) VALUES ($1, $2)")
            .bind(address.as_str())
            .bind(ts(at))
            .execute(&mut *conn)
            .await
            .ctx("recording an automatic reply")?;
        Ok(())
    }

    /// Automatic replies sent to `address` at or after `since`.
    pub async fn count_auto_replies_since(
        &self,
        address: &EmailAddress,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM auto_replies WHERE address = $1 AND at >= $2")
            .bind(address.as_str())
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await
            .ctx("counting automatic replies")
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_ts;
    use super::super::testutil::both;
    use crate::address::EmailAddress;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        parse_ts(s).unwrap()
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[tokio::test]
    async fn learn_certificate_keeps_the_newest() {
        both("certs", |store| async move {
            let now = t("2026-11-27T10:00:00Z");
            let mut tx = store.begin().await.unwrap();
            let a = &addr("Dr.A@B.mssante.fr");
            assert!(
                store
                    .learn_certificate(&mut tx, a, b"v1", t("2027-01-01T00:00:00Z"), None, now)
                    .await
                    .unwrap()
            );
            // Newer expiry: replaces.
            assert!(
                store
                    .learn_certificate(&mut tx, a, b"v2", t("2028-01-01T00:00:00Z"), Some(3), now)
                    .await
                    .unwrap()
            );
            // Older or equal expiry: ignored.
            assert!(
                !store
                    .learn_certificate(&mut tx, a, b"v0", t("2026-12-01T00:00:00Z"), None, now)
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .learn_certificate(&mut tx, a, b"v3", t("2028-01-01T00:00:00Z"), None, now)
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            let (der, not_after) = store
                .recipient_certificate(&addr("<dr.a@b.mssante.fr>"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (der.as_slice(), not_after),
                (&b"v2"[..], t("2028-01-01T00:00:00Z"))
            );
            assert!(
                store
                    .recipient_certificate(&addr("x@y.fr"))
                    .await
                    .unwrap()
                    .is_none()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn auto_replies_are_counted_per_address() {
        both("auto_replies", |store| async move {
            let mut tx = store.begin().await.unwrap();
            for at in [
                "2026-11-27T10:00:00Z",
                "2026-11-27T11:00:00Z",
                "2026-11-27T12:00:00Z",
            ] {
                store
                    .record_auto_reply(&mut tx, &addr("A@b.fr"), t(at))
                    .await
                    .unwrap();
            }
            store
                .record_auto_reply(&mut tx, &addr("c@d.fr"), t("2026-11-27T12:00:00Z"))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                store
                    .count_auto_replies_since(&addr("a@b.fr"), t("2026-11-27T11:00:00Z"))
                    .await
                    .unwrap(),
                2
            );
            assert_eq!(
                store
                    .count_auto_replies_since(&addr("a@b.fr"), t("2026-11-27T00:00:00Z"))
                    .await
                    .unwrap(),
                3
            );
            assert_eq!(
                store
                    .count_auto_replies_since(&addr("x@y.fr"), t("2026-11-27T00:00:00Z"))
                    .await
                    .unwrap(),
                0
            );
        })
        .await;
    }
}
