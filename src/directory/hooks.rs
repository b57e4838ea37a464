//! What the intake asks the directory, in one place so that the pipeline calls stay one line
//! each: the signer's RPPS check, the requérant's right to request, and who people are in
//! the acknowledgement, the forward and the compte-rendu. Every function reads inside the
//! message's transaction; a mailbox absent from the directory (or an empty directory) changes
//! nothing, so a gateway without a directory behaves as before.

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::catalogue::Category;
use crate::config::{DirectorySettings, Settings};
use crate::report::ReportData;
use crate::smime::SignerIdentity;
use crate::store::{DirectoryEntry, Store};
use crate::thread::Role;

use super::{describe, display_name, profession_in};

tokio::task_local! {
    /// The entries already read for the message being handled: a request asks about its
    /// requérant up to five times (signer check, right to request, ack, forward, report).
    static MEMO: RefCell<HashMap<String, Option<DirectoryEntry>>>;
}

/// Runs `f` (one message's stages, inside its transaction) with the directory read at most
/// once per address. Outside such a scope every lookup reads the database.
pub async fn remembering<F: Future>(f: F) -> F::Output {
    MEMO.scope(RefCell::new(HashMap::new()), f).await
}

/// The directory's entry for `address`, from the message's memo when it was read already.
async fn entry(
    store: &Store,
    conn: &mut AnyConnection,
    address: &str,
) -> anyhow::Result<Option<DirectoryEntry>> {
    let key = address.trim().to_lowercase();
    if let Ok(Some(known)) = MEMO.try_with(|m| m.borrow().get(&key).cloned()) {
        return Ok(known);
    }
    let found = store.directory_by_address_in(conn, &key).await?;
    // Outside a scope there is nothing to remember into.
    let _ = MEMO.try_with(|m| m.borrow_mut().insert(key, found.clone()));
    Ok(found)
}

/// Checks the certificate's RPPS against the directory's entry for the signer's address.
/// A mismatch is audited (`directory.mismatch`) and, with `require_match`, returned as the
/// quarantine detail; `None` lets the message through.
pub async fn check_signer(
    store: &Store,
    conn: &mut AnyConnection,
    settings: &DirectorySettings,
    signer: &SignerIdentity,
    inbound_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let Some(cert_rpps) = signer.rpps.as_deref() else {
        return Ok(None);
    };
    let Some(entry) = entry(store, conn, signer.email.as_str()).await? else {
        return Ok(None);
    };
    let Some(dir_rpps) = entry.rpps.as_deref() else {
        return Ok(None);
    };
    if dir_rpps == cert_rpps {
        return Ok(None);
    }
    let detail = format!(
        "certificate RPPS {cert_rpps}, directory RPPS {dir_rpps} for {}",
        entry.address
    );
    store
        .append_audit(
            conn,
            signer.email.as_str(),
            "directory.mismatch",
            &format!("inbound:{inbound_id}"),
            &serde_json::json!({
                "certificate_rpps": cert_rpps,
                "directory_rpps": dir_rpps,
                "quarantined": settings.require_match,
            }),
            now,
        )
        .await?;
    if settings.require_match {
        Ok(Some(detail))
    } else {
        tracing::warn!(inbound_id, %detail, "signer's RPPS differs from the directory");
        Ok(None)
    }
}

/// The refusal to send a requérant whose directory profession may not request, or `None`.
pub async fn refuse_requester(
    store: &Store,
    conn: &mut AnyConnection,
    settings: &Settings,
    from: &str,
) -> anyhow::Result<Option<String>> {
    let Some(entry) = entry(store, conn, from).await? else {
        return Ok(None);
    };
    let Some(profession) = entry.profession.as_deref() else {
        return Ok(None);
    };
    let allowed = &settings.directory.requester_professions;
    if profession_in(profession, allowed) {
        return Ok(None);
    }
    Ok(Some(format!(
        "Bonjour,\n\nVotre demande de téléexpertise n'a pas été transmise.\n\n\
         Selon l'annuaire santé, l'adresse {from} est celle d'un professionnel dont la \
         profession ({profession}) ne peut pas demander une téléexpertise sur ce réseau.\n\
         Peuvent la demander : {}.\n\n\
         Si l'annuaire se trompe à votre sujet, faites corriger votre fiche auprès de votre \
         ordre ou de l'Agence du numérique en santé ; pour un avis urgent, contactez \
         directement le service.\n\n-- \n{}\n{}\n",
        allowed.join(", "),
        settings.gateway.display_name,
        settings.gateway.network
    )))
}

/// `role`, or `Other` for an expert whose directory profession may not answer
/// (`directory.expert_professions`): their message is then refused like a stranger's. The group
/// mailbox (an organisation, no profession) and people absent from the directory keep `role`.
pub async fn may_answer(
    store: &Store,
    conn: &mut AnyConnection,
    settings: &DirectorySettings,
    role: Role,
    sender: &str,
) -> anyhow::Result<Role> {
    if role != Role::Expert {
        return Ok(role);
    }
    let Some(entry) = entry(store, conn, sender).await? else {
        return Ok(role);
    };
    Ok(match entry.profession.as_deref() {
        Some(p) if !profession_in(p, &settings.expert_professions) => Role::Other,
        _ => role,
    })
}

/// `Dr Olivier MARTIN — Spécialiste en Médecine générale — RPPS 10001234567`, from the
/// directory, or `None` when the address is not in it.
async fn person(
    store: &Store,
    conn: &mut AnyConnection,
    address: &str,
) -> anyhow::Result<Option<String>> {
    let Some(e) = entry(store, conn, address).await? else {
        return Ok(None);
    };
    let parts: Vec<String> = [
        display_name(&e),
        describe(&e),
        e.rpps.as_ref().map(|r| format!("RPPS {r}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok((!parts.is_empty()).then(|| parts.join(" — ")))
}

/// The acknowledgement with who the requérant is and the category's experts, from the
/// directory, inserted after its `Catégorie :` line.
pub async fn amend_ack(
    store: &Store,
    conn: &mut AnyConnection,
    category: &Category,
    requester: &str,
    ack: String,
) -> anyhow::Result<String> {
    let mut block = String::new();
    if let Some(p) = person(store, conn, requester).await? {
        block.push_str(&format!("Requérant : {p}\n"));
    }
    let mut experts = Vec::new();
    for e in &category.experts {
        if let Some(p) = person(store, conn, e.as_str()).await? {
            experts.push(p);
        }
    }
    if !experts.is_empty() {
        block.push_str("Experts de la catégorie :\n");
        for p in experts {
            block.push_str(&format!("  - {p}\n"));
        }
    }
    Ok(insert_after_line(ack, "Catégorie : ", &block))
}

/// The forward with the requérant's profession and specialty, where they practise, appended
/// to its `Requérant :` line.
pub async fn amend_forward(
    store: &Store,
    conn: &mut AnyConnection,
    requester: &str,
    forward: String,
) -> anyhow::Result<String> {
    let Some(e) = entry(store, conn, requester).await? else {
        return Ok(forward);
    };
    let mut extra: Vec<String> = describe(&e).into_iter().collect();
    if let Some(d) = &e.department {
        extra.push(format!("département {d}"));
    }
    if extra.is_empty() {
        return Ok(forward);
    }
    Ok(append_to_line(forward, "Requérant : ", &extra.join(" — ")))
}

/// The compte-rendu's people with the directory's names and specialties (the directory wins
/// over the category name guessed for an expert).
pub async fn enrich_report(
    store: &Store,
    conn: &mut AnyConnection,
    data: &mut ReportData,
) -> anyhow::Result<()> {
    let people = std::iter::once(&mut data.requester).chain(data.experts.iter_mut());
    for p in people {
        if let Some(e) = entry(store, conn, &p.address).await? {
            if let Some(d) = describe(&e) {
                p.specialty = Some(d);
            }
            if p.name.is_none() {
                p.name = display_name(&e);
            }
            if p.rpps.is_none() {
                p.rpps = e.rpps.clone();
            }
        }
    }
    Ok(())
}

pub(crate) fn insert_after_line(text: String, prefix: &str, block: &str) -> String {
    if block.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + block.len());
    let mut done = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !done && line.starts_with(prefix) {
            out.push_str(block);
            done = true;
        }
    }
    if !done {
        out.push_str(block);
    }
    out
}

fn append_to_line(text: String, prefix: &str, addition: &str) -> String {
    let mut out = String::with_capacity(text.len() + addition.len() + 3);
    let mut done = false;
    for line in text.split_inclusive('\n') {
        if !done && line.starts_with(prefix) {
            let body = line.trim_end_matches('\n');
            out.push_str(body);
            out.push_str(" — ");
            out.push_str(addition);
            out.push_str(&line[body.len()..]);
            done = true;
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::both;

    #[tokio::test]
    async fn only_the_configured_professions_answer() {
        both("directory_may_answer", |store| async move {
            let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/directory/Extraction_Correspondance_MSSante_sample.txt");
            crate::directory::import(&store, &sample, chrono::Utc::now())
                .await
                .unwrap();
            let settings = DirectorySettings::default();
            let mut conn = store.pool().acquire().await.unwrap();
            for (who, role, want) in [
                ("dr.ruch@hopital.test", Role::Expert, Role::Expert),
                ("sf.petit@cabinet.test", Role::Expert, Role::Expert),
                ("ide.durand@cabinet.test", Role::Expert, Role::Other),
                ("ph.blanc@cabinet.test", Role::Expert, Role::Other),
                ("inconnu@hopital.test", Role::Expert, Role::Expert),
                ("infectio@hopital.test", Role::Group, Role::Group),
                ("ph.blanc@cabinet.test", Role::Requester, Role::Requester),
            ] {
                let got = may_answer(&store, &mut conn, &settings, role, who)
                    .await
                    .unwrap();
                assert_eq!(got, want, "{who}");
            }
        })
        .await;
    }

    #[test]
    fn lines_are_amended_in_place() {
        let t = "A\nCatégorie : X\nB\n".to_string();
        assert_eq!(
            insert_after_line(t, "Catégorie : ", "R : y\n"),
            "A\nCatégorie : X\nR : y\nB\n"
        );
        let t = "Requérant : Dr A — a@b\n\nrest\n".to_string();
        assert_eq!(
            append_to_line(t, "Requérant : ", "Sage-Femme"),
            "Requérant : Dr A — a@b — Sage-Femme\n\nrest\n"
        );
    }
}
