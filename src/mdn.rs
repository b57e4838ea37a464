//! Disposition notifications (RFC 8098): the `processed` MDN a GP's client asked for when their
//! request opens a thread, `processed/error` with the reason when it is refused.
//!
//! Sent only when `Disposition-Notification-To` names the authenticated From (an MDN to any
//! other address would let a forged header make the gateway mail a stranger), queued in the
//! outbox inside the message's own transaction (so a crash can neither lose it nor send it
//! twice: a message handled again after a crash is deduplicated before it gets here), and
//! signed, then encrypted when the certificate is known (outbox kind `mdn`). Its text and fields
//! carry the original Message-ID and the thread id, never the subject or the patient.

use chrono::{DateTime, Utc};

use crate::address::EmailAddress;
use crate::config::Settings;
use crate::mail::compose::Report;
use crate::store::{OutboxKind, Store, Tx};

/// What became of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Its thread is open.
    Processed { thread: String },
    /// It was refused: why, in words without patient data.
    Error { reason: String },
}

/// The address `Disposition-Notification-To` names, when it is the authenticated sender.
pub fn wanted(header: Option<&str>, authenticated: &EmailAddress) -> bool {
    let Some(value) = header else {
        return false;
    };
    // One mailbox, `Name <addr>` or bare; several mailboxes are not a request to the sender.
    if value.contains(',') {
        return false;
    }
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value,
    };
    EmailAddress::parse(addr.trim()).is_ok_and(|a| a.base() == authenticated.base())
}

/// The `message/disposition-notification` fields.
pub fn fields(
    gateway: &EmailAddress,
    original_message_id: Option<&str>,
    disposition: &Disposition,
) -> String {
    let mut f = format!(
        "Reporting-UA: {}; teleavis {}\r\nFinal-Recipient: rfc822;{}\r\n",
        gateway.domain(),
        env!("CARGO_PKG_VERSION"),
        gateway.as_str()
    );
    if let Some(id) = original_message_id {
        f.push_str(&format!("Original-Message-ID: {}\r\n", one_line(id)));
    }
    match disposition {
        Disposition::Processed { .. } => {
            f.push_str("Disposition: automatic-action/MDN-sent-automatically; processed\r\n");
        }
        Disposition::Error { reason } => {
            f.push_str("Disposition: automatic-action/MDN-sent-automatically; processed/error\r\n");
            f.push_str(&format!("Error: {}\r\n", ascii(reason)));
        }
    }
    f
}

/// Header values stay on one line.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The fields part is 7-bit: accents go, the human part keeps them.
fn ascii(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfd()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect()
}

/// Queues the MDN for `to` (the authenticated sender) in the message's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn queue(
    store: &Store,
    tx: &mut Tx,
    settings: &Settings,
    to: &EmailAddress,
    original_message_id: Option<&str>,
    disposition: &Disposition,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let g = &settings.gateway;
    let (subject, text, thread) = match disposition {
        Disposition::Processed { thread } => (
            format!("[{thread}] Accusé de traitement"),
            format!(
                "Votre demande a été traitée : elle est enregistrée sous la référence {thread}.\n"
            ),
            Some(thread.clone()),
        ),
        Disposition::Error { reason } => (
            "Téléexpertise — Accusé de traitement (demande refusée)".to_owned(),
            format!(
                "Votre message a été traité mais la demande n'a pas été enregistrée : {reason}.\n\
                 Le message qui l'explique vous est envoyé séparément.\n"
            ),
            None,
        ),
    };
    let mut m = crate::outbox::gateway_message(
        settings,
        vec![to.clone()],
        subject,
        text,
        thread.as_deref(),
    );
    // A receipt is not answered: no thread Reply-To.
    m.reply_to = None;
    m.in_reply_to = original_message_id.map(str::to_owned);
    m.references = original_message_id.map(str::to_owned).into_iter().collect();
    m.report = Some(Report {
        report_type: "disposition-notification",
        fields: fields(&g.address, original_message_id, disposition),
    });
    crate::outbox::enqueue(store, tx, settings, OutboxKind::Mdn, &m, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("address")
    }

    #[test]
    fn only_the_authenticated_sender_gets_one() {
        let gp = a("dr.martin@cabinet.test");
        assert!(wanted(Some("dr.martin@cabinet.test"), &gp));
        assert!(wanted(Some("\"Dr Martin\" <Dr.Martin@cabinet.test>"), &gp));
        assert!(!wanted(Some("victim@elsewhere.test"), &gp));
        assert!(!wanted(
            Some("dr.martin@cabinet.test, victim@elsewhere.test"),
            &gp
        ));
        assert!(!wanted(None, &gp));
        assert!(!wanted(Some("not an address"), &gp));
    }

    #[test]
    fn fields_name_the_original_and_the_disposition() {
        let g = a("teleexpertise@hopital.test");
        let f = fields(
            &g,
            Some("<abc@cabinet.test>"),
            &Disposition::Processed {
                thread: "TE-2026-000001".into(),
            },
        );
        assert!(f.contains("Original-Message-ID: <abc@cabinet.test>\r\n"));
        assert!(f.contains("Final-Recipient: rfc822;teleexpertise@hopital.test\r\n"));
        assert!(f.ends_with("; processed\r\n"), "{f}");
        let f = fields(
            &g,
            Some("<x@y>\r\nBcc: z"),
            &Disposition::Error {
                reason: "demande incomplète".into(),
            },
        );
        assert!(f.contains("Original-Message-ID: <x@y>Bcc: z\r\n"), "{f}");
        assert!(
            f.contains("processed/error\r\nError: demande incomplete\r\n"),
            "{f}"
        );
    }
}
