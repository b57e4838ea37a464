//! `directory.file`: the daemon re-imports the extraction whenever it changes (size or
//! modification time against the last import's record, so a restart does not import again an
//! unchanged file). A bad file is logged and the current directory keeps serving.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::store::Store;

/// Checks `path` every `every` until a stop is requested.
pub async fn run(store: Store, path: PathBuf, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match super::changed_since_import(&store, &path).await {
            Ok(false) => {}
            Ok(true) => match super::import(&store, &path, chrono::Utc::now()).await {
                Ok(s) => info!(
                    file = %path.display(),
                    lines = s.lines,
                    entries = s.entries,
                    seconds = s.elapsed.as_secs_f64(),
                    "directory imported"
                ),
                Err(e) => warn!(error = %e, "directory.file not imported"),
            },
            Err(e) => {
                warn!(file = %path.display(), error = %format!("{e:#}"), "directory.file unreadable")
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
