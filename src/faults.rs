//! Fault injection for the reliability tests (`TELEAVIS_FAULT=<point>`): compiled in only
//! with the `fault-injection` cargo feature, which the tests turn on; a service build never
//! reads the variable.

/// Whether the tests asked for a fault at `point` (`abort-after-commit`…).
#[cfg(feature = "fault-injection")]
pub fn injected(point: &str) -> bool {
    std::env::var("TELEAVIS_FAULT").is_ok_and(|v| v == point)
}

#[cfg(not(feature = "fault-injection"))]
pub fn injected(_point: &str) -> bool {
    false
}

/// `panic-on-subject:<marker>`: a bug meeting one message, whose subject holds the marker.
pub fn panic_on_subject(subject: &str) {
    #[cfg(feature = "fault-injection")]
    if let Ok(fault) = std::env::var("TELEAVIS_FAULT")
        && let Some(marker) = fault.strip_prefix("panic-on-subject:")
        && subject.contains(marker)
    {
        panic!("TELEAVIS_FAULT: injected panic");
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = subject;
}
