//! `teleavis report <id> --format cda|xdm`: the compte-rendu as filed in the patient's record.

use std::path::PathBuf;

use super::{Format, UsageError};
use crate::config::Settings;
use crate::report::{self, ReportData};

/// Writes the CDA document or the `IHE_XDM.ZIP` archive of a thread's compte-rendu.
pub(super) fn write(
    settings: &Settings,
    data: &ReportData,
    format: Format,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let rec = settings
        .record
        .identity(&settings.gateway.network)
        .ok_or_else(|| {
            UsageError("record.finess is not set: no CDA can name its custodian".into())
        })?;
    let pdf = report::render_pdf(data)?;
    let (zip, doc) = match report::build_xdm(data, &rec, &pdf) {
        Ok(built) => built,
        Err(report::XdmError::Cda(report::CdaError::NoAct)) => {
            return Err(UsageError(format!(
                "{}: no expert answered, there is no act to document",
                data.thread_id
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let safe: String = data
        .thread_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let (bytes, default_name) = match format {
        Format::Cda => (doc.xml, format!("compte-rendu-{safe}.xml")),
        _ => (zip, report::XDM_FILE_NAME.to_owned()),
    };
    let path = output.unwrap_or_else(|| PathBuf::from(default_name));
    std::fs::write(&path, bytes)?;
    eprintln!("written: {}", path.display());
    Ok(())
}
