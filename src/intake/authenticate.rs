//! The authentication stage: S/MIME unwrap, signature and certificate checks, the signer's
//! certificate learned (so answers can be encrypted to it), and the content read.

use super::autoreply::{auto_reply, receipt};
use super::content::read_content;
use super::stage::{Message, MessageCtx, Stage, quarantine};
use super::{Intake, Reason, notices};
use crate::address::EmailAddress;
use crate::mdn::Disposition;
use crate::smime::SignerIdentity;

pub async fn sender(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    raw: &[u8],
    from: &EmailAddress,
) -> Stage<Message> {
    let mut authenticated = match intake.smime.authenticate(raw, cx.now) {
        Ok(a) => a,
        Err(rejection) => {
            let reason = Reason::Smime(rejection.reason);
            if rejection.sender_authenticated {
                // Safe to answer: the From address proved itself with a valid signature.
                // Its certificate is learned, so that the answer can be encrypted to it.
                if let Some(signer) = &rejection.signer {
                    learn(intake, cx, signer).await?;
                }
                let text = notices::rejected(&intake.settings, reason, cx.envelope);
                auto_reply(intake, cx, from, "Message refusé", text, None).await?;
                // Hook (issue 11): the MDN the authenticated sender asked for.
                let reason = format!("message refusé ({})", reason.code());
                receipt(intake, cx, from, Disposition::Error { reason }).await?;
            }
            return quarantine(reason, rejection.detail);
        }
    };
    learn(intake, cx, &authenticated.signer).await?;
    // Read once: the text and the files live on in `content`, and the entity's bytes (the
    // size of the request again) are freed now rather than at the end of the transaction.
    let entity = std::mem::take(&mut authenticated.content);
    let content = read_content(&entity);
    drop(entity);
    Ok(Message {
        authenticated,
        content,
    })
}

async fn learn(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    signer: &SignerIdentity,
) -> anyhow::Result<()> {
    intake
        .store
        .learn_certificate(
            cx.tx,
            &signer.email,
            &signer.cert_der,
            signer.not_after,
            Some(cx.inbound_id),
            cx.now,
        )
        .await?;
    Ok(())
}

/// Directory (issue 10): the stage after the replay check. The certificate's RPPS against the
/// national directory's for the signer's address; a mismatch (with `directory.require_match`)
/// is quarantined as `directory_mismatch` and the (authenticated) sender is told.
pub async fn directory_match(intake: &Intake, cx: &mut MessageCtx<'_>, msg: &Message) -> Stage<()> {
    let signer = msg.signer();
    let mismatch = crate::directory::hooks::check_signer(
        &intake.store,
        cx.tx,
        &intake.settings.directory,
        signer,
        cx.inbound_id,
        cx.now,
    )
    .await?;
    let Some(detail) = mismatch else {
        return Ok(());
    };
    let reason = Reason::DirectoryMismatch;
    let text = notices::rejected(&intake.settings, reason, cx.envelope);
    auto_reply(intake, cx, &signer.email, "Message refusé", text, None).await?;
    quarantine(reason, detail)
}
