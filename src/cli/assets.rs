//! The man pages and shell completions, generated from the clap definitions of this very binary
//! (`clap_mangen`, `clap_complete`): `scripts/build-deb.sh` runs the hidden `generate-assets`
//! command at package build time, so the documentation cannot drift from the command line.

use std::path::Path;

use anyhow::Context;
use clap_complete::Shell;

/// Writes `DIR/man/teleavis.1` (and one page per subcommand, `teleavis-threads.1` …) and
/// `DIR/completions/{teleavis.bash,_teleavis}`.
pub fn generate_assets(mut cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    cmd.build();
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("writing the man pages in {}", man.display()))?;
    // clap's `help` subcommands would get pages of their own (teleavis-help-threads.1 …).
    for e in std::fs::read_dir(&man)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("teleavis-help") || name.contains("-help-") || name.ends_with("-help.1")
        {
            std::fs::remove_file(e.path())?;
        }
    }
    for shell in [Shell::Bash, Shell::Zsh] {
        clap_complete::generate_to(shell, &mut cmd, "teleavis", &completions)
            .with_context(|| format!("writing the {shell} completion"))?;
    }
    println!("{}", dir.display());
    Ok(())
}
