//! Alerting the admin without the outbox, for the one failure the outbox cannot report: the
//! database refusing writes (disk full, server down). The alert is built, signed and encrypted
//! like any other and sent over SMTP at once; it is not stored, so it is sent at most once per
//! call, and the caller sends one per outage.

use anyhow::{Context, bail};
use chrono::Utc;
use openssl::x509::X509;

use crate::config::{EncryptOutgoing, Settings};
use crate::mail::compose;
use crate::mail::smtp::SmtpSender;
use crate::smime::SmimeEngine;
use crate::store::Store;

/// Sends `text` to `gateway.admin_address` now, straight over SMTP.
pub async fn alert_admin_directly(
    settings: &Settings,
    store: &Store,
    smime: &SmimeEngine,
    subject: &str,
    text: String,
) -> anyhow::Result<()> {
    let g = &settings.gateway;
    let alert = super::gateway_message(
        settings,
        vec![g.admin_address.clone()],
        subject.to_string(),
        text,
        None,
    );
    let now = Utc::now();
    // Not an outbox row: an id of its own kind, unique enough for one alert per outage.
    let message_id = format!(
        "<teleavis.direct.{}.{:08x}@{}>",
        now.timestamp(),
        rand::random::<u32>(),
        g.address.domain()
    );
    let raw = compose::build(&alert, &message_id, now).context("building the alert")?;
    // The database may still answer reads; the certificate folder always does.
    let cert = match store.recipient_certificate(&g.admin_address).await {
        Ok(Some((der, _))) => X509::from_der(&der)
            .ok()
            .filter(|c| smime.certificate_is_usable(c, now)),
        _ => None,
    }
    .or_else(|| smime.recipient_from_dir(&g.admin_address));
    let encrypt = match (settings.smime.encrypt_outgoing, &cert) {
        (EncryptOutgoing::Never, _) => false,
        (_, Some(_)) => true,
        (EncryptOutgoing::WhenPossible, None) => false,
        (EncryptOutgoing::Always, None) => {
            bail!("no certificate for the admin (encrypt_outgoing = always)")
        }
    };
    let certs: Vec<X509> = cert.into_iter().collect();
    let protected = smime.protect(raw, &certs, encrypt)?;
    SmtpSender::new(&settings.smtp)?
        .send_raw(
            &g.address.to_string(),
            &[g.admin_address.to_string()],
            &protected,
        )
        .await?;
    Ok(())
}
