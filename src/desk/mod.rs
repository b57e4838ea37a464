//! The desk: who is on duty (the roster, imported from CSV or iCalendar) and what the intake
//! asks of it (the on-duty notices when a thread opens, roster experts allowed to post), and
//! the deadline of each request (standard or urgent line).

pub mod deadline;
pub mod hooks;
pub mod roster;
