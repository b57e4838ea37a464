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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread::{Categories, Command, Event, Role, apply, open};

    fn thread() -> Thread {
        let at = "2026-03-02T08:00:00Z".parse().unwrap();
        Thread {
            id: ThreadId::new(2026, 42),
            status: Status::Nouvelle,
            category: "infectio".into(),
            requester: EmailAddress::parse("dr.martin@cabinet.test").unwrap(),
            requester_name: None,
            requester_rpps: None,
            taken_by: None,
            form: serde_json::from_str(
                r#"{"patient":{"birth_name":"X","used_name":null,"first_names":"Y","sex":"F",
                "birth_date":"1991-01-23","birth_place":null,"nir":null},"consent":true,
                "question":"?","extra":[]}"#,
            )
            .unwrap(),
            previous: None,
            created_at: at,
            updated_at: at,
            closed_at: None,
        }
    }

    #[test]
    fn after_applies_status_move_take_and_times() {
        let t = thread();
        let expert = EmailAddress::parse("dr.ruch@hopital.test").unwrap();
        let now = "2026-03-02T09:00:00Z".parse().unwrap();
        let known = ["infectio", "pneumo"];
        let cats = Categories {
            current: "infectio",
            known: &known,
        };
        let take = apply(
            t.status,
            Role::Expert,
            &Event::Command(Command::Prendre),
            &cats,
        );
        let taken = t.after(&take.unwrap(), &expert, now);
        assert_eq!(taken.status, Status::EnCours);
        assert_eq!(taken.taken_by.as_deref(), Some("dr.ruch@hopital.test"));
        assert_eq!((taken.updated_at, taken.closed_at), (now, None));
        let moved = Event::Command(Command::Transferer("pneumo".into()));
        let moved = taken.after(
            &apply(taken.status, Role::Expert, &moved, &cats).unwrap(),
            &expert,
            now,
        );
        assert_eq!(
            (moved.category.as_str(), moved.status),
            ("pneumo", Status::Nouvelle)
        );
        let close = apply(
            moved.status,
            Role::Group,
            &Event::Command(Command::Clore),
            &cats,
        );
        let closed = moved.after(&close.unwrap(), &expert, now);
        assert_eq!(
            (closed.status, closed.closed_at),
            (Status::Terminee, Some(now))
        );
        assert_eq!(closed.created_at, t.created_at);
        assert_eq!(open().actions, [Action::Acknowledge, Action::Forward]);
    }
}
