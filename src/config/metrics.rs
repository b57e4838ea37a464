//! `[metrics]`: the Prometheus endpoint's settings.

use serde::Deserialize;

/// `[metrics]`: the Prometheus endpoint (DESIGN.md, *Operations*).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` serving `/metrics`; absent: no metrics.
    pub listen: Option<String>,
}

impl MetricsSettings {
    /// The parsed address (validated by [`Settings::problems`](super::Settings::problems)).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}
