//! Command line only: parse arguments, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use teleavis::cli::{self, Format};

#[derive(Parser)]
#[command(
    name = "teleavis",
    version = teleavis::VERSION,
    about = "Téléexpertise gateway over an MSSanté-style S/MIME mailbox",
    after_long_help = "Exit status: 0 success; 1 runtime failure, or `status` found something that \
needs a person; 2 usage or configuration error.\n\n\
Files: /etc/teleavis/teleavis.toml (one instance), /etc/teleavis/<instance>.toml \
(teleavis@<instance>.service), /var/lib/teleavis (state). Every setting can be overridden with \
TELEAVIS__SECTION__KEY (e.g. TELEAVIS__DATABASE__URL)."
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
    /// Health at a glance; exit 1 when something needs a person (a monitoring probe)
    Status {
        #[arg(long, default_value = "text")]
        format: String,
        /// Seconds without IMAP contact before it counts as a problem
        #[arg(long, default_value_t = 300)]
        imap_max_age: u64,
        /// Failed outbox rows of the last HOURS count as a problem
        #[arg(long, default_value_t = 24)]
        failed_hours: u64,
    },
    /// A consistent copy of the SQLite database while the daemon runs
    Backup { file: PathBuf },
    /// Writes the man pages and shell completions into DIR (package build)
    #[command(hide = true)]
    GenerateAssets { dir: PathBuf },
    /// Acts for the billing office
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
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
enum BillingCommand {
    /// One row per act of the period (days in the gateway's zone, both inclusive)
    Export {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "csv")]
        format: String,
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
    /// Checks the hash chain
    Verify,
    /// Lists entries: who did or read what
    List {
        /// Only the entries about this thread (TE-…) or message (inbound:<id>)
        #[arg(long)]
        subject: Option<String>,
        /// The newest N entries
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value = "table")]
        format: String,
    },
}

/// `teleavis … | head`: a closed stdout ends the command quietly (exit 0) instead of the
/// "failed printing to stdout: Broken pipe" panic. Every other panic keeps the default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("(os error 32)") {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
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
    if let Command::GenerateAssets { dir } = &args.command {
        return match cli::generate_assets(Args::command(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
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
            Command::Audit {
                command:
                    AuditCommand::List {
                        subject,
                        limit,
                        format,
                    },
            } => cli::audit_list(&settings, subject, limit, fmt(&format)?).await,
            Command::Status {
                format,
                imap_max_age,
                failed_hours,
            } => {
                let limits = cli::StatusLimits {
                    imap_max_age_seconds: imap_max_age,
                    failed_hours,
                };
                cli::status(&settings, limits, fmt(&format)?).await
            }
            Command::Backup { file } => cli::backup(&settings, &file).await,
            Command::GenerateAssets { .. } => Ok(()),
            Command::Purge { older_than } => cli::purge(&settings, older_than).await,
            Command::Billing {
                command: BillingCommand::Export { from, to, format },
            } => cli::billing_export(&settings, from, to, fmt(&format)?).await,
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
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<cli::UsageError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}
