//! A thread as the domain sees it: typed fields, decoded once from its stored row by `store`.

use chrono::{DateTime, Utc};

use super::{Action, Outcome, Status, ThreadId};
use crate::address::EmailAddress;
use crate::form::RequestForm;

/// One téléexpertise thread. `Debug` shows no patient data (`RequestForm` redacts itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: ThreadId,
    pub status: Status,
    /// Category id.
    pub category: String,
    pub requester: EmailAddress,
    /// The requérant's name, from the certificate.
    pub requester_name: Option<String>,
    pub requester_rpps: Option<String>,
    /// Expert who took the case (`#prendre`).
    pub taken_by: Option<String>,
    /// The request form as parsed when the thread was opened (patient data).
    pub form: RequestForm,
    /// The closed thread this one continues (`Demande précédente :`).
    pub previous: Option<ThreadId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Thread {
    /// The thread once `outcome` is applied: its status, its category after `MoveTo`, the
    /// expert in charge after `Take` (`by`, the sender), its times.
    pub fn after(&self, outcome: &Outcome, by: &EmailAddress, now: DateTime<Utc>) -> Thread {
        let mut next = self.clone();
        next.status = outcome.status;
        for action in &outcome.actions {
            match action {
                Action::MoveTo(c) => next.category = c.clone(),
                Action::Take => next.taken_by = Some(by.to_string()),
                _ => {}
            }
        }
        next.updated_at = now;
        next.closed_at = outcome.status.is_closed().then_some(now);
        next
    }
}
