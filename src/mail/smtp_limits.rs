//! The time limits of an SMTP session ([`Limits`], [`within`]) and the failed step
//! ([`Failure`]) described in one line for the outbox's `last_error` and the logs.

use std::time::Duration;

use tokio::time::Instant;

/// A step of the session that failed.
pub(super) enum Failure {
    /// The server's reply or lettre's protocol handling (classified by the reply code).
    Smtp {
        step: &'static str,
        error: lettre::transport::smtp::Error,
    },
    /// Network or TLS below SMTP (always temporary).
    Io { step: &'static str, message: String },
    /// No answer within the limit (always temporary).
    Timeout { step: &'static str, limit: Duration },
}

/// The time limits of one session: each step (connect, TLS, greeting, STARTTLS, AUTH, the
/// message, QUIT) gets `timeout_seconds` at most, and the whole session ends within
/// [`SESSION_STEPS`] times that. The outbox leases a row for 3 × `timeout_seconds` + 60 s: a
/// session that outlived the lease could see the same message sent again by another worker.
pub(super) struct Limits {
    step: Duration,
    end: Instant,
}

/// The whole session, in step time limits (see [`Limits`]).
const SESSION_STEPS: u32 = 3;

impl Limits {
    pub(super) fn new(step: Duration) -> Limits {
        Limits {
            step,
            end: Instant::now() + step * SESSION_STEPS,
        }
    }

    /// `wanted`, or what is left of the session if that is less.
    pub(super) fn of(&self, wanted: Duration) -> Duration {
        wanted.min(self.end.saturating_duration_since(Instant::now()))
    }

    /// The limit of an ordinary step.
    pub(super) fn step(&self) -> Duration {
        self.of(self.step)
    }
}

pub(super) fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Runs one lettre step under `limit`.
pub(super) async fn within<T>(
    step: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(error)) => Err(Failure::Smtp { step, error }),
        Err(_) => Err(Failure::Timeout { step, limit }),
    }
}

/// "step: cause", for `SendError` messages.
pub(super) fn describe(failure: &Failure) -> String {
    let step = match failure {
        Failure::Smtp { step, .. } | Failure::Io { step, .. } | Failure::Timeout { step, .. } => {
            step
        }
    };
    format!("{step}: {}", describe_cause(failure))
}

pub(super) fn describe_cause(failure: &Failure) -> String {
    match failure {
        Failure::Smtp { error, .. } => error_chain(error),
        Failure::Io { message, .. } => message.clone(),
        Failure::Timeout { limit, .. } => format!("no answer within {}", seconds(*limit)),
    }
}

/// The error and its sources on one line (lettre's Display alone hides the TLS reason).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
