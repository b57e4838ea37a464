//! The compte-rendu's data, assembled from a thread and its messages: who asked, who answered
//! (with their specialty), the exchanges and the files. The CLI's `report` and the intake's
//! closing both call [`assemble`].

use chrono::{DateTime, Utc};

use super::{ReportAttachment, ReportData, ReportExchange, ReportPatient, ReportPerson};
use crate::address::EmailAddress;
use crate::catalogue::Catalogue;
use crate::store::{AttachmentMeta, Direction, MessageKind, ThreadMessageRow};
use crate::thread::Thread;

/// Kinds of incoming messages the compte-rendu tells.
const TOLD: [MessageKind; 4] = [
    MessageKind::Request,
    MessageKind::Answer,
    MessageKind::FollowUp,
    MessageKind::Command,
];

pub fn assemble(
    network: &str,
    catalogue: &Catalogue,
    thread: &Thread,
    messages: &[ThreadMessageRow],
    now: DateTime<Utc>,
) -> ReportData {
    let request = &thread.form;
    let category_name = catalogue
        .get(&thread.category)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| thread.category.clone());
    let requester = thread.requester.to_string();
    let mut exchanges = vec![];
    let mut attachments = vec![];
    let mut experts: Vec<ReportPerson> = vec![];
    let mut answered_at = None;
    let incoming = messages
        .iter()
        .map(|m| &m.message)
        .filter(|m| m.direction == Direction::In && TOLD.contains(&m.kind));
    for m in incoming {
        let is_requester = m.from_addr == requester;
        if !is_requester {
            answered_at.get_or_insert(m.at);
            if !experts.iter().any(|e| e.address == m.from_addr) {
                // The category the expert (or group) belongs to: after a transfer, the first
                // category's experts keep their own specialty.
                let specialty = EmailAddress::parse(&m.from_addr)
                    .ok()
                    .and_then(|a| catalogue.of_member(&a))
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| category_name.clone());
                experts.push(ReportPerson {
                    // A group mailbox's certificate often bears the specialty as its name.
                    specialty: (m.author_name.as_deref() != Some(specialty.as_str()))
                        .then_some(specialty),
                    name: m.author_name.clone(),
                    address: m.from_addr.clone(),
                    rpps: m.author_rpps.clone(),
                });
            }
        }
        let text = if m.kind == MessageKind::Request {
            request.question.clone()
        } else {
            m.body_text.clone().unwrap_or_default()
        };
        if !text.trim().is_empty() {
            exchanges.push(ReportExchange {
                author: m.author_name.clone().unwrap_or_else(|| m.from_addr.clone()),
                role: if is_requester { "requérant" } else { "expert" }.into(),
                at: m.at,
                text,
            });
        }
        attachments.extend(
            AttachmentMeta::from_json(&m.attachments_json)
                .into_iter()
                .map(|a| ReportAttachment {
                    name: a.name,
                    content_type: a.content_type,
                    size: a.size,
                    sha256: a.sha256,
                }),
        );
    }
    let p = &request.patient;
    ReportData {
        thread_id: thread.id.to_string(),
        network: network.to_string(),
        category_name,
        requested_at: thread.created_at,
        answered_at,
        closed_at: thread.closed_at,
        status: thread.status.as_str().to_string(),
        patient: ReportPatient {
            birth_name: p.birth_name.clone(),
            used_name: p.used_name.clone(),
            first_names: p.first_names.clone(),
            sex: p.sex.letter().to_string(),
            birth_date: p.birth_date,
            nir: p.nir.as_ref().map(|n| n.formatted()),
        },
        requester: ReportPerson {
            name: thread.requester_name.clone(),
            address: requester,
            specialty: None,
            rpps: thread.requester_rpps.clone(),
        },
        experts,
        consent_confirmed: request.consent,
        form_lines: request
            .extra
            .iter()
            .map(|f| (f.label.clone(), f.value.clone()))
            .collect(),
        exchanges,
        attachments,
        generated_at: now,
        timezone: catalogue.tz,
    }
}
