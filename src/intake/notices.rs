//! The texts of the automatic messages the intake sends (French, for GPs, experts and the
//! admin). Pure functions: no patient data beyond what the recipient already wrote.

use crate::config::Settings;
use crate::intake::{Envelope, Reason};

/// To a sender whose message was refused although their signature was valid.
pub fn rejected(settings: &Settings, reason: Reason, envelope: &Envelope) -> String {
    format!(
        "Bonjour,\n\n\
         Votre message{} n'a pas été traité par la passerelle de téléexpertise {}.\n\n\
         Motif : {}\n(code : {})\n\n\
         Il est conservé et pourra être traité à nouveau une fois le problème corrigé.\n\
         Pour toute question : {}.\n\n\
         -- \n{}\n",
        envelope
            .message_id
            .as_deref()
            .map(|m| format!(" {m}"))
            .unwrap_or_default(),
        settings.gateway.network,
        reason.explanation_fr(),
        reason.code(),
        settings.gateway.admin_address,
        settings.gateway.display_name,
    )
}

/// To the admin: which message, why, what to do. Never the body.
pub fn admin_quarantine(
    inbound_id: i64,
    reason: Reason,
    detail: &str,
    envelope: Option<&Envelope>,
) -> String {
    let from = envelope
        .and_then(|e| e.from.as_ref())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    let mid = envelope
        .and_then(|e| e.message_id.clone())
        .unwrap_or_else(|| "-".into());
    format!(
        "Un message a été mis en quarantaine.\n\n\
         Identifiant : {inbound_id}\nExpéditeur : {from}\nMessage-ID : {mid}\n\
         Motif : {} ({})\nDétail : {detail}\n\n\
         Voir : teleavis quarantine show {inbound_id}\n\
         Après correction (ancre de confiance, CRL…) : teleavis quarantine reprocess {inbound_id}\n",
        reason.code(),
        reason.explanation_fr(),
    )
}

use crate::catalogue::{Catalogue, Category};
use crate::form::{FormProblem, RequestForm};
use crate::smime::SignerIdentity;
use crate::thread::{Notice, Status, Thread, ThreadId};

fn signature(s: &Settings) -> String {
    format!("-- \n{}\n{}\n", s.gateway.display_name, s.gateway.network)
}

fn category_address(s: &Settings, c: &Category) -> String {
    s.gateway.address.with_tag(&c.id).to_string()
}

/// The list of categories, their addresses, response times and blank forms.
pub fn help(s: &Settings, catalogue: &Catalogue, why: Option<&str>) -> String {
    let mut out = String::from("Bonjour,\n\n");
    if let Some(w) = why {
        out.push_str(w);
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "La passerelle de téléexpertise {} reçoit vos demandes d'avis par messagerie sécurisée.\n\
         Écrivez à l'adresse de la spécialité, signez et chiffrez le message comme d'habitude, et\n\
         recopiez le formulaire ci-dessous dans le corps du message (les champs marqués * sont\n\
         obligatoires). Joignez résultats, images ou PDF en pièces jointes.\n\n",
        s.gateway.network
    ));
    for c in catalogue.iter() {
        out.push_str(&format!(
            "== {} ==\nAdresse : {}\n",
            c.name,
            category_address(s, c)
        ));
        if !c.response_time.is_empty() {
            out.push_str(&format!(
                "Délai de réponse habituel : {}\n",
                c.response_time
            ));
        }
        if let Some(p) = &c.phone {
            out.push_str(&format!("En cas d'urgence : {p}\n"));
        }
        // With its `Catégorie :` line: copied into a mail to the plain gateway address, the
        // form still reaches this category.
        out.push('\n');
        out.push_str(&c.template.blank_for(&c.name));
        out.push('\n');
    }
    out.push_str("Pour recevoir cette aide à nouveau : un message dont l'objet est « aide ».\n\n");
    out.push_str(&signature(s));
    out
}

pub fn form_problems(s: &Settings, c: &Category, problems: &[FormProblem], filled: &str) -> String {
    let mut out = format!(
        "Bonjour,\n\nVotre demande de téléexpertise ({}) n'a pas été transmise, car le formulaire\n\
         est incomplet ou contient des erreurs :\n\n",
        c.name
    );
    for p in problems {
        out.push_str(&format!("  - {}\n", p.message));
    }
    out.push_str(&format!(
        "\nVoici le formulaire tel qu'il a été compris. Corrigez-le et renvoyez-le à\n{} :\n\n{}\n\n",
        category_address(s, c),
        filled.trim_end()
    ));
    out.push_str(&signature(s));
    out
}

pub fn ack(s: &Settings, id: &ThreadId, c: &Category, previous: Option<&str>) -> String {
    let mut out = format!(
        "Bonjour,\n\nVotre demande de téléexpertise a bien été reçue et transmise.\n\n\
         Référence : {id}\nRéseau : {}\nCatégorie : {}\n",
        s.gateway.network, c.name
    );
    if let Some(p) = previous {
        out.push_str(&format!("Suite de la demande : {p}\n"));
    }
    if !c.response_time.is_empty() {
        out.push_str(&format!(
            "Délai de réponse habituel : {}\n",
            c.response_time
        ));
    }
    if let Some(p) = &c.phone {
        out.push_str(&format!("\nEn cas d'urgence, appelez le {p}.\n"));
    }
    out.push_str(
        "\nLa réponse de l'expert vous parviendra par messagerie sécurisée. Pour compléter votre\n\
         demande, répondez simplement à ce message. Pour l'annuler, répondez avec une ligne\n\
         #annuler.\n\n",
    );
    out.push_str(&signature(s));
    out
}

fn requester_line(signer: &SignerIdentity) -> String {
    let name = signer
        .display_name
        .clone()
        .unwrap_or_else(|| signer.common_name.clone());
    match &signer.rpps {
        Some(r) => format!("{name} — RPPS {r} — {}", signer.email),
        None => format!("{name} — {}", signer.email),
    }
}

const EXPERT_HELP: &str = "Pour répondre au requérant : « Répondre » à ce message (l'historique cité est retiré).\n\
Commandes, seules sur une ligne : #prendre (prendre en charge), #clore (clore ; le reste du\n\
message est la réponse finale et le compte-rendu est envoyé), #transferer <catégorie>.\n";

pub fn forward(
    s: &Settings,
    id: &ThreadId,
    c: &Category,
    request: &RequestForm,
    signer: &SignerIdentity,
    original: &str,
) -> String {
    format!(
        "Nouvelle demande de téléexpertise {id} — {}\n\nRequérant : {}\n\n{}\n\
         ---------------------------------------------------------------\nMessage du requérant, tel que reçu :\n\n{}\n\n\
         ---------------------------------------------------------------\n{EXPERT_HELP}\n{}",
        c.name,
        requester_line(signer),
        request.display_for_reading().trim_end(),
        original.trim(),
        signature(s)
    )
}

pub fn transferred_forward(
    s: &Settings,
    t: &Thread,
    c: &Category,
    original: &str,
    author: &str,
) -> String {
    let requester = t
        .requester_name
        .clone()
        .unwrap_or_else(|| t.requester.to_string());
    format!(
        "Demande de téléexpertise {} transférée à la catégorie {} par {author}.\n\n\
         Requérant : {requester}{}\n\n{}\n\
         ---------------------------------------------------------------\nMessage du requérant, tel que reçu :\n\n{}\n\n\
         ---------------------------------------------------------------\n{EXPERT_HELP}\n{}",
        t.id,
        c.name,
        t.requester_rpps
            .as_deref()
            .map(|r| format!(" — RPPS {r}"))
            .unwrap_or_default(),
        t.form.display_for_reading().trim_end(),
        original.trim(),
        signature(s)
    )
}

pub fn relay_to_requester(s: &Settings, id: &ThreadId, author: &str, text: &str) -> String {
    format!(
        "Réponse de {author} à votre demande {id} :\n\n{}\n\n\
         ---------------------------------------------------------------\n\
         Pour répondre à l'expert, répondez simplement à ce message.\n\n{}",
        text.trim(),
        signature(s)
    )
}

pub fn relay_to_group(s: &Settings, id: &ThreadId, author: &str, text: &str) -> String {
    format!(
        "Message de {author} sur la demande {id} :\n\n{}\n\n\
         ---------------------------------------------------------------\n{EXPERT_HELP}\n{}",
        text.trim(),
        signature(s)
    )
}

pub fn notice(s: &Settings, id: &ThreadId, n: Notice, author: &str, c: &Category) -> String {
    let what = match n {
        Notice::Taken => format!("La demande {id} est prise en charge par {author}."),
        Notice::Transferred => format!(
            "La demande {id} a été transférée à la catégorie {} par {author}.",
            c.name
        ),
        Notice::Cancelled => format!("La demande {id} a été annulée par le médecin requérant."),
        Notice::AutoClosed => format!(
            "La demande {id} a été close automatiquement après {} jours sans activité. Le compte-rendu suit.",
            s.gateway.auto_close_days
        ),
    };
    format!("Bonjour,\n\n{what}\n\n{}", signature(s))
}

pub fn unknown_thread(s: &Settings, token: &str) -> String {
    format!(
        "Bonjour,\n\nVotre message cite la référence {token}, qui ne correspond à aucune demande de\n\
         téléexpertise. Il n'a pas été transmis. Pour une nouvelle demande, écrivez un nouveau\n\
         message (objet « aide » pour recevoir les adresses et le formulaire).\n\n{}",
        signature(s)
    )
}

pub fn not_authorized(s: &Settings, id: &ThreadId) -> String {
    format!(
        "Bonjour,\n\nVotre message concerne la demande {id}, à laquelle vous ne participez pas. Il n'a\n\
         pas été transmis.\n\n{}",
        signature(s)
    )
}

pub fn closed(s: &Settings, id: &ThreadId, status: Status, c: &Category) -> String {
    format!(
        "Bonjour,\n\nLa demande {id} est close ({}). Votre message n'a pas été transmis.\n\n\
         Pour un nouvel avis, envoyez une nouvelle demande à {} avec le formulaire complet et la\n\
         ligne suivante, qui la reliera à la précédente :\n\nDemande précédente : {id}\n\n{}",
        status.label_fr(),
        category_address(s, c),
        signature(s)
    )
}

pub fn refused(s: &Settings, id: &ThreadId, why: &str) -> String {
    format!(
        "Bonjour,\n\nDemande {id} : commande refusée : {why}.\n\n{}",
        signature(s)
    )
}

/// Desk (issue 10): the reminder to the category's group when a thread reaches its deadline
/// unanswered. Names no patient: it says where to look.
pub fn reminder(s: &Settings, id: &ThreadId, category: &Category, due: &str) -> String {
    format!(
        "Bonjour,\n\n\
         La demande de téléexpertise {id} (catégorie {}) n'a pas reçu de réponse dans le délai \
         prévu : elle était attendue au plus tard le {due}.\n\n\
         Elle attend dans la boîte du groupe {}. Répondez-y, ou envoyez #prendre pour la \
         prendre en charge.\n\n\
         Sans réponse au double du délai, elle sera signalée à {}.\n\n{}",
        category.name,
        category.group_address,
        category.escalation_address,
        signature(s)
    )
}

/// Desk (issue 10): the escalation when a thread is still unanswered at twice its deadline.
pub fn escalation(
    s: &Settings,
    id: &ThreadId,
    category: &Category,
    due: &str,
    opened: &str,
) -> String {
    format!(
        "Bonjour,\n\n\
         La demande de téléexpertise {id} (catégorie {}), reçue le {opened}, est toujours sans \
         réponse au double de son délai (réponse attendue au plus tard le {due}). Le groupe {} \
         a été relancé à l'échéance.\n\n\
         Merci de trouver un expert pour y répondre.\n\n{}",
        category.name,
        category.group_address,
        signature(s)
    )
}
