//! The thread state machine as one pure function: (status, role, event) → outcome or refusal.
//! The caller applies the outcome (store, outbox) in the same transaction as the message.

use super::command::Command;
use super::status::{Role, Status};

/// What happened in the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message (not a command) from the requester.
    RequesterMessage,
    /// A message (not a command) from the group or an expert.
    ExpertMessage,
    Command(Command),
    /// No activity for `auto_close_days`; raised by the daemon, whatever the role passed.
    AutoClose,
}

/// Categories known to the caller, so `#transferer` is checked here and not left to each caller.
#[derive(Debug, Clone, Copy)]
pub struct Categories<'a> {
    /// The thread's category id.
    pub current: &'a str,
    /// Every configured category id.
    pub known: &'a [&'a str],
}

/// What the caller must do. `Relay*` actions concern the message's own text (for a command,
/// the text left around the command line) and are skipped when that text is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Acknowledge a new request to the requester, with the thread id and response time.
    Acknowledge,
    /// Forward a new request, attachments included, to the category's group.
    Forward,
    /// Relay the text to the requester (signed, encrypted).
    RelayToRequester,
    /// Relay the text to the thread's category group (after a `MoveTo`, the new one).
    RelayToGroup,
    /// Record the sender as the expert in charge.
    Take,
    /// Change the thread's category to this id.
    MoveTo(String),
    /// Forward the original request, attachments included, to the (new) category's group.
    ForwardRequest,
    /// Send the compte-rendu to the requester and a copy to the group; for `#clore` the text is
    /// the final answer and belongs in it.
    SendReport,
    NotifyRequester(Notice),
    NotifyGroup(Notice),
    /// Tell the group the thread had before a `MoveTo`.
    NotifyPreviousGroup(Notice),
}

/// The short automatic notices a transition calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// An expert took the thread.
    Taken,
    /// The thread moved to another category.
    Transferred,
    /// The requester cancelled.
    Cancelled,
    /// Closed for lack of activity.
    AutoClosed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub actions: Vec<Action>,
}

/// Why a message cannot act on the thread. Messages are French, for the reply to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The thread is closed: the caller points the sender to a new request.
    #[error("cette demande est close ({}) ; pour un nouvel avis, envoyez une nouvelle demande", .0.label_fr())]
    Closed(Status),
    /// The sender may not post in this thread: quarantined, never relayed (an authenticated
    /// sender gets a short notice naming only the thread id they already had).
    #[error("l'expéditeur n'est ni le requérant ni un expert de la catégorie")]
    NotAuthorized,
    /// The sender may post but not do this.
    #[error("{0}")]
    NotAllowed(&'static str),
    #[error("#transferer : la catégorie « {0} » n'existe pas")]
    UnknownCategory(String),
    #[error("#transferer : la demande est déjà dans cette catégorie")]
    SameCategory,
}

const EXPERT_ONLY_CLORE: &str =
    "seul un expert peut clore la demande ; pour l'annuler, écrivez #annuler";
const EXPERT_ONLY_PRENDRE: &str = "seul un expert peut prendre en charge la demande";
const EXPERT_ONLY_TRANSFERER: &str = "seul un expert peut transférer la demande";
const REQUESTER_ONLY_ANNULER: &str =
    "seul le médecin requérant peut annuler la demande ; pour la clore, écrivez #clore";
const WRONG_SIDE: &str = "message attribué au mauvais interlocuteur";

/// A new request opens a thread: `nouvelle`, acknowledged to the requester, forwarded to the
/// group.
pub fn open() -> Outcome {
    Outcome {
        status: Status::Nouvelle,
        actions: vec![Action::Acknowledge, Action::Forward],
    }
}

/// The transition table (DESIGN "Flow"):
///
/// | event | allowed roles | new status | actions |
/// |---|---|---|---|
/// | ExpertMessage | Group, Expert | en_cours | RelayToRequester |
/// | RequesterMessage | Requester | unchanged | RelayToGroup |
/// | #prendre | Group, Expert | en_cours | Take, RelayToRequester, NotifyGroup(Taken) |
/// | #clore | Group, Expert | terminee | SendReport |
/// | #transferer c | Group, Expert | nouvelle | MoveTo(c), ForwardRequest, RelayToGroup, NotifyRequester(Transferred), NotifyPreviousGroup(Transferred) |
/// | #annuler | Requester | annulee | RelayToGroup, NotifyGroup(Cancelled), NotifyRequester(Cancelled) |
/// | AutoClose | (daemon) | terminee | SendReport, NotifyRequester(AutoClosed) |
///
/// Only on `nouvelle` and `en_cours`: anything on a closed thread is `Refusal::Closed`.
/// `Role::Other` is always `NotAuthorized`, checked first so a stranger learns nothing.
pub fn apply(
    status: Status,
    role: Role,
    event: &Event,
    categories: &Categories<'_>,
) -> Result<Outcome, Refusal> {
    use Action::*;
    if *event == Event::AutoClose {
        if status.is_closed() {
            return Err(Refusal::Closed(status));
        }
        return Ok(Outcome {
            status: Status::Terminee,
            actions: vec![SendReport, NotifyRequester(Notice::AutoClosed)],
        });
    }
    if role == Role::Other {
        return Err(Refusal::NotAuthorized);
    }
    if status.is_closed() {
        return Err(Refusal::Closed(status));
    }
    let expert = matches!(role, Role::Group | Role::Expert);
    let outcome = |status, actions| Ok(Outcome { status, actions });
    match event {
        Event::ExpertMessage if expert => outcome(Status::EnCours, vec![RelayToRequester]),
        Event::RequesterMessage if role == Role::Requester => outcome(status, vec![RelayToGroup]),
        Event::ExpertMessage | Event::RequesterMessage => Err(Refusal::NotAllowed(WRONG_SIDE)),
        Event::Command(Command::Prendre) if expert => outcome(
            Status::EnCours,
            vec![Take, RelayToRequester, NotifyGroup(Notice::Taken)],
        ),
        Event::Command(Command::Prendre) => Err(Refusal::NotAllowed(EXPERT_ONLY_PRENDRE)),
        Event::Command(Command::Clore) if expert => outcome(Status::Terminee, vec![SendReport]),
        Event::Command(Command::Clore) => Err(Refusal::NotAllowed(EXPERT_ONLY_CLORE)),
        Event::Command(Command::Transferer(target)) if expert => {
            let target = target.to_lowercase();
            let Some(found) = categories
                .known
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&target))
            else {
                return Err(Refusal::UnknownCategory(target));
            };
            if found.eq_ignore_ascii_case(categories.current) {
                return Err(Refusal::SameCategory);
            }
            outcome(
                Status::Nouvelle,
                vec![
                    MoveTo(found.to_string()),
                    ForwardRequest,
                    RelayToGroup,
                    NotifyRequester(Notice::Transferred),
                    NotifyPreviousGroup(Notice::Transferred),
                ],
            )
        }
        Event::Command(Command::Transferer(_)) => Err(Refusal::NotAllowed(EXPERT_ONLY_TRANSFERER)),
        Event::Command(Command::Annuler) if role == Role::Requester => outcome(
            Status::Annulee,
            vec![
                RelayToGroup,
                NotifyGroup(Notice::Cancelled),
                NotifyRequester(Notice::Cancelled),
            ],
        ),
        Event::Command(Command::Annuler) => Err(Refusal::NotAllowed(REQUESTER_ONLY_ANNULER)),
        Event::AutoClose => Err(Refusal::Closed(status)), // handled above
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const KNOWN: &[&str] = &["infectio", "pneumo-bel-air", "derm-mercy"];
    const CATS: Categories<'static> = Categories {
        current: "infectio",
        known: KNOWN,
    };
    const OPEN: [Status; 2] = [Status::Nouvelle, Status::EnCours];
    const CLOSED: [Status; 2] = [Status::Terminee, Status::Annulee];
    const ROLES: [Role; 4] = [Role::Requester, Role::Group, Role::Expert, Role::Other];
    const EXPERTS: [Role; 2] = [Role::Group, Role::Expert];

    fn all_events() -> Vec<Event> {
        vec![
            Event::RequesterMessage,
            Event::ExpertMessage,
            Event::Command(Command::Clore),
            Event::Command(Command::Prendre),
            Event::Command(Command::Annuler),
            Event::Command(Command::Transferer("pneumo-bel-air".into())),
        ]
    }

    fn ok(status: Status, actions: Vec<Action>) -> Result<Outcome, Refusal> {
        Ok(Outcome { status, actions })
    }

    #[test]
    fn expert_messages() {
        for s in OPEN {
            for r in EXPERTS {
                assert_eq!(
                    apply(s, r, &Event::ExpertMessage, &CATS),
                    ok(Status::EnCours, vec![RelayToRequester])
                );
            }
            assert!(matches!(
                apply(s, Role::Requester, &Event::ExpertMessage, &CATS),
                Err(Refusal::NotAllowed(_))
            ));
        }
    }

    #[test]
    fn requester_follow_ups_keep_the_status() {
        for s in OPEN {
            assert_eq!(
                apply(s, Role::Requester, &Event::RequesterMessage, &CATS),
                ok(s, vec![RelayToGroup])
            );
            for r in EXPERTS {
                assert!(matches!(
                    apply(s, r, &Event::RequesterMessage, &CATS),
                    Err(Refusal::NotAllowed(_))
                ));
            }
        }
    }

    #[test]
    fn prendre() {
        let e = Event::Command(Command::Prendre);
        for s in OPEN {
            for r in EXPERTS {
                assert_eq!(
                    apply(s, r, &e, &CATS),
                    ok(
                        Status::EnCours,
                        vec![Take, RelayToRequester, NotifyGroup(Notice::Taken)]
                    )
                );
            }
            assert_eq!(
                apply(s, Role::Requester, &e, &CATS),
                Err(Refusal::NotAllowed(EXPERT_ONLY_PRENDRE))
            );
        }
    }

    #[test]
    fn clore() {
        let e = Event::Command(Command::Clore);
        for s in OPEN {
            for r in EXPERTS {
                assert_eq!(
                    apply(s, r, &e, &CATS),
                    ok(Status::Terminee, vec![SendReport])
                );
            }
            assert_eq!(
                apply(s, Role::Requester, &e, &CATS),
                Err(Refusal::NotAllowed(EXPERT_ONLY_CLORE))
            );
        }
    }

    #[test]
    fn transferer() {
        for s in OPEN {
            for r in EXPERTS {
                assert_eq!(
                    apply(
                        s,
                        r,
                        &Event::Command(Command::Transferer("PNEUMO-bel-air".into())),
                        &CATS
                    ),
                    ok(
                        Status::Nouvelle,
                        vec![
                            MoveTo("pneumo-bel-air".into()),
                            ForwardRequest,
                            RelayToGroup,
                            NotifyRequester(Notice::Transferred),
                            NotifyPreviousGroup(Notice::Transferred)
                        ]
                    )
                );
                assert_eq!(
                    apply(
                        s,
                        r,
                        &Event::Command(Command::Transferer("cardio".into())),
                        &CATS
                    ),
                    Err(Refusal::UnknownCategory("cardio".into()))
                );
                assert_eq!(
                    apply(
                        s,
                        r,
                        &Event::Command(Command::Transferer("infectio".into())),
                        &CATS
                    ),
                    Err(Refusal::SameCategory)
                );
            }
            assert_eq!(
                apply(
                    s,
                    Role::Requester,
                    &Event::Command(Command::Transferer("derm-mercy".into())),
                    &CATS
                ),
                Err(Refusal::NotAllowed(EXPERT_ONLY_TRANSFERER))
            );
        }
    }

    #[test]
    fn annuler() {
        let e = Event::Command(Command::Annuler);
        for s in OPEN {
            assert_eq!(
                apply(s, Role::Requester, &e, &CATS),
                ok(
                    Status::Annulee,
                    vec![
                        RelayToGroup,
                        NotifyGroup(Notice::Cancelled),
                        NotifyRequester(Notice::Cancelled)
                    ]
                )
            );
            for r in EXPERTS {
                assert_eq!(
                    apply(s, r, &e, &CATS),
                    Err(Refusal::NotAllowed(REQUESTER_ONLY_ANNULER))
                );
            }
        }
    }

    #[test]
    fn closed_threads_refuse_everything() {
        for s in CLOSED {
            for r in [Role::Requester, Role::Group, Role::Expert] {
                for e in all_events() {
                    assert_eq!(
                        apply(s, r, &e, &CATS),
                        Err(Refusal::Closed(s)),
                        "{s:?} {r:?} {e:?}"
                    );
                }
            }
            assert_eq!(
                apply(s, Role::Expert, &Event::AutoClose, &CATS),
                Err(Refusal::Closed(s))
            );
        }
    }

    #[test]
    fn strangers_are_never_authorized() {
        for s in OPEN.into_iter().chain(CLOSED) {
            for e in all_events() {
                assert_eq!(
                    apply(s, Role::Other, &e, &CATS),
                    Err(Refusal::NotAuthorized),
                    "{s:?} {e:?}"
                );
            }
        }
    }

    #[test]
    fn auto_close() {
        for s in OPEN {
            for r in ROLES {
                assert_eq!(
                    apply(s, r, &Event::AutoClose, &CATS),
                    ok(
                        Status::Terminee,
                        vec![SendReport, NotifyRequester(Notice::AutoClosed)]
                    )
                );
            }
        }
    }

    #[test]
    fn refusal_messages_are_french() {
        assert_eq!(
            Refusal::Closed(Status::Terminee).to_string(),
            "cette demande est close (terminée) ; pour un nouvel avis, envoyez une nouvelle demande"
        );
        assert_eq!(
            Refusal::UnknownCategory("cardio".into()).to_string(),
            "#transferer : la catégorie « cardio » n'existe pas"
        );
    }
}
