//! The pure thread domain: ids, statuses, transitions, mail commands, authorization, quoting.
//!
//! No I/O: the intake pipeline asks these functions what a message means for a thread and
//! applies the answer in its transaction.

mod auto;
mod command;
mod id;
mod model;
mod quote;
mod status;
mod transition;

pub use auto::{AutoHeaders, is_automatic};
pub use command::{Command, ParsedCommand, parse_command};
pub use id::{ThreadId, ThreadIdError, subject};
pub use model::Thread;
pub(crate) use quote::quote_start;
pub use quote::strip_quoted;
pub use status::{Role, Status, StatusError, role_of};
pub use transition::{Action, Categories, Event, Notice, Outcome, Refusal, apply, open};
