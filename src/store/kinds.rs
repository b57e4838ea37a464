//! The closed sets of words the store keeps in text columns (message kinds and directions,
//! outbox kinds, inbound outcomes), each an enum with its ONE string mapping, here.

use std::fmt;

use super::{Result, StoreError};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident in $column:literal {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The text kept in the column.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<$name> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Corrupt {
                        column: $column,
                        detail: format!("unknown value `{other}`"),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// What a thread message is (DESIGN: `threads show` gives it as `kind`).
    MessageKind in "thread_messages.kind" {
        Request = "request",
        Ack = "ack",
        Forward = "forward",
        Answer = "answer",
        FollowUp = "follow_up",
        Command = "command",
        Report = "report",
        Notice = "notice",
    }
}

text_enum! {
    /// Whether a thread message came in or went out.
    Direction in "thread_messages.direction" {
        In = "in",
        Out = "out",
    }
}

text_enum! {
    /// What an outgoing message is.
    OutboxKind in "outbox.kind" {
        Ack = "ack",
        Forward = "forward",
        Answer = "answer",
        FollowUp = "follow_up",
        Report = "report",
        Notice = "notice",
        /// To the administrator: quarantine, bounce, held or failed mail.
        AdminAlert = "admin_alert",
        /// A disposition notification (RFC 8098) to the sender: encrypted when possible,
        /// never held (see `crate::mdn`).
        Mdn = "mdn",
        /// The desk's reminder at a thread's deadline, or its escalation at twice it.
        Reminder = "reminder",
    }
}

text_enum! {
    /// What became of an inbound message.
    InboundStatus in "inbound.outcome" {
        /// Raw message stored, not handled yet (or its transaction rolled back).
        Stored = "stored",
        /// Handled: applied to a thread, answered, or ignored on purpose.
        Processed = "processed",
        /// Rejected; `reason` holds the reason code.
        Quarantined = "quarantined",
        /// A copy of a message already handled.
        Duplicate = "duplicate",
        /// Was quarantined, handled again after the cause was fixed.
        Reprocessed = "reprocessed",
    }
}

impl OutboxKind {
    /// How the thread records a message of this kind it sent.
    pub fn message_kind(self) -> MessageKind {
        match self {
            OutboxKind::Ack => MessageKind::Ack,
            OutboxKind::Forward => MessageKind::Forward,
            OutboxKind::Answer => MessageKind::Answer,
            OutboxKind::FollowUp => MessageKind::FollowUp,
            OutboxKind::Report => MessageKind::Report,
            OutboxKind::Notice
            | OutboxKind::AdminAlert
            | OutboxKind::Mdn
            | OutboxKind::Reminder => MessageKind::Notice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_and_an_unknown_one_is_corrupt() {
        for k in [
            "request",
            "ack",
            "forward",
            "answer",
            "follow_up",
            "command",
            "report",
            "notice",
        ] {
            assert_eq!(k.parse::<MessageKind>().unwrap().as_str(), k);
        }
        for k in [
            "ack",
            "forward",
            "answer",
            "follow_up",
            "report",
            "notice",
            "admin_alert",
            "mdn",
            "reminder",
        ] {
            let kind: OutboxKind = k.parse().unwrap();
            assert_eq!(kind, k);
            assert_eq!(kind.to_string(), k);
        }
        for k in [
            "stored",
            "processed",
            "quarantined",
            "duplicate",
            "reprocessed",
        ] {
            assert_eq!(k.parse::<InboundStatus>().unwrap().as_str(), k);
        }
        assert_eq!("in".parse::<Direction>().unwrap(), Direction::In);
        assert!(matches!(
            "nouvelle".parse::<MessageKind>(),
            Err(StoreError::Corrupt {
                column: "thread_messages.kind",
                ..
            })
        ));
        assert_eq!(
            serde_json::to_string(&OutboxKind::AdminAlert).unwrap(),
            "\"admin_alert\""
        );
    }
}
