//! teleavis: a téléexpertise desk over an MSSanté-style S/MIME mailbox.
//!
//! The pure domain (`form`, `thread`, `report`) sits in the middle; `intake` is the pipeline
//! over one incoming message; `mail`, `smime`, `store` and `outbox` are the edges.

pub mod address;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod desk;
pub mod directory;
pub mod faults;
pub mod form;
pub mod intake;
pub mod mail;
pub mod outbox;
pub mod report;
pub mod smime;
pub mod store;
pub mod thread;
