//! teleavis: a téléexpertise desk over an MSSanté-style S/MIME mailbox.
//!
//! The pure domain (`form`, `thread`, `report`) sits in the middle; `intake` is the pipeline
//! over one incoming message; `mail`, `smime`, `store` and `outbox` are the edges.

pub mod address;
pub mod billing;
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
pub mod mdn;
pub mod metrics;
pub mod outbox;
pub mod report;
pub mod smime;
pub mod store;
pub mod thread;

/// The git commit this binary was built from (`build.rs`), `unknown` without git metadata.
pub const GIT_COMMIT: &str = env!("TELEAVIS_GIT_COMMIT");

/// `0.1.0 (commit 1a2b3c4d5e6f)`, as `--version` prints it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TELEAVIS_GIT_COMMIT"),
    ")"
);
