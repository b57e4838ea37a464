//! Command line only: parse arguments, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use teleavis::cli::{self, Format};

#[derive(Parser)]
#[command(
    name = "teleavis",
    version,
    about = "Téléexpertise gateway over an MSSanté-style S/MIME mailbox"
)]
struct Args {
    /// Configuration file [default: $TELEAVIS_CONFIG, then /etc/teleavis/teleavis.toml]
    #[arg(long, global = false)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (systemd Type=notify)
    Run,
    /// Validate the configuration, load every certificate and key
    CheckConfig {
        /// Also log in to IMAP and SMTP
        #[arg(long)]
        connect: bool,
    },
    /// Apply database migrations
    Migrate,
    /// Threads
    Threads {
        #[command(subcommand)]
        command: ThreadsCommand,
    },
    /// The compte-rendu of a thread
    Report {
        id: String,
        #[arg(long, default_value = "text")]
        format: String,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Volumes, distinct requérants, response times
    Stats {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "month")]
        by: String,
        /// table, csv, json, or html (a page with charts; with --output FILE)
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Rejected mail
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// The audit trail
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Retention: remove closed threads and their raw mail
    Purge {
        #[arg(long)]
        older_than: u32,
    },
    /// Who is on duty
    Roster {
        #[command(subcommand)]
        command: RosterCommand,
    },
    /// The national MSSanté directory
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
}

#[derive(Subcommand)]
enum RosterCommand {
    /// Replace the roster of the categories in a CSV or iCalendar file
    Import { file: PathBuf },
    /// Who is on duty
    Show {
        #[arg(long)]
        category: Option<String>,
        /// Local date-time, e.g. 2026-12-01T08:00 [default: every slot]
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Replace the directory by an extraction (.txt or .zip)
    Import { file: PathBuf },
    /// One entry, by address or RPPS
    Show { key: String },
}

#[derive(Subcommand)]
enum ThreadsCommand {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// Only open threads past their deadline with no expert action yet
        #[arg(long)]
        overdue: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
    Show {
        id: String,
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    List {
        #[arg(long, default_value = "table")]
        format: String,
    },
    Show {
        id: i64,
    },
    Reprocess {
        id: i64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    Verify,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config = args
        .config
        .or_else(|| std::env::var_os("TELEAVIS_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/teleavis/teleavis.toml"));
    let settings = match teleavis::config::load_and_validate(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error:\n{e}");
            return ExitCode::from(2);
        }
    };
    // The daemon logs at the configured level; the administrative commands print their result
    // and log only warnings, unless RUST_LOG says otherwise.
    let mut log = settings.log.clone();
    if !matches!(args.command, Command::Run) {
        log.level = Some("warn".into());
    }
    teleavis::daemon::init_logging(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let fmt = |s: &str| Format::parse(s);
    let result = runtime.block_on(async move {
        match args.command {
            Command::Run => teleavis::daemon::run(settings).await,
            Command::CheckConfig { connect } => {
                cli::check_config(&settings, &config, connect).await
            }
            Command::Migrate => cli::migrate(&settings).await,
            Command::Threads {
                command:
                    ThreadsCommand::List {
                        status,
                        category,
                        overdue,
                        format,
                    },
            } => cli::threads_list(&settings, status, category, overdue, fmt(&format)?).await,
            Command::Threads {
                command: ThreadsCommand::Show { id, format },
            } => cli::threads_show(&settings, &id, fmt(&format)?).await,
            Command::Report { id, format, output } => {
                cli::report(&settings, &id, fmt(&format)?, output).await
            }
            Command::Stats {
                from,
                to,
                by,
                format,
                output,
            } => cli::stats(&settings, from, to, &by, fmt(&format)?, output).await,
            Command::Quarantine {
                command: QuarantineCommand::List { format },
            } => cli::quarantine_list(&settings, fmt(&format)?).await,
            Command::Quarantine {
                command: QuarantineCommand::Show { id },
            } => cli::quarantine_show(&settings, id).await,
            Command::Quarantine {
                command: QuarantineCommand::Reprocess { id },
            } => cli::quarantine_reprocess(&settings, id).await,
            Command::Audit {
                command: AuditCommand::Verify,
            } => cli::audit_verify(&settings).await,
            Command::Purge { older_than } => cli::purge(&settings, older_than).await,
            Command::Roster {
                command: RosterCommand::Import { file },
            } => cli::roster_import(&settings, &file).await,
            Command::Roster {
                command: RosterCommand::Show { category, at },
            } => cli::roster_show(&settings, category.as_deref(), at.as_deref()).await,
            Command::Directory {
                command: DirectoryCommand::Import { file },
            } => cli::directory_import(&settings, &file).await,
            Command::Directory {
                command: DirectoryCommand::Show { key },
            } => cli::directory_show(&settings, &key).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<cli::UsageError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}
