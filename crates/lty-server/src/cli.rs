//! The `lty` command line.

mod admin;
mod cards;
mod rtc_token;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, ENV_VARS, EnvProvider};
use crate::state::{AppState, connect_database};
use crate::{server, telemetry};

/// lty: backend for AI companion devices.
#[derive(Debug, Parser)]
#[command(name = "lty", version, about)]
pub struct Cli {
    /// Configuration file (default: ./lty.toml when present; env LTY_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; `serve` is the default.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP and WebSocket server.
    Serve {
        /// Address to listen on (overrides `bind` / LTY_BIND).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write a consistent copy of the embedded SQLite database while lty
    /// runs (docs/deploy.md, "Backups"). PostgreSQL: use pg_dump.
    Backup {
        /// The copy to write; must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create benchmark users bench_0..bench_{N-1}, each bound to its MAC
    /// (idempotent).
    Seed {
        /// Number of bench users.
        #[arg(long, env = "BENCH_USERS")]
        users: u32,
    },
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Mint a Volcengine RTC AccessToken, or verify one (--verify). Needs
    /// no configuration.
    RtcToken(rtc_token::RtcTokenArgs),
    /// Operator accounts: `lty admin create --username U`.
    Admin(admin::AdminArgs),
    /// Card batches: `lty cards generate --kind content --count N
    /// --content-ref R --out batch.zip`.
    Cards(cards::CardsArgs),
}

/// `lty config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) and the
    /// environment variables it was read from.
    Print,
}

/// Entry point of the `lty` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Purely local: runs even when the configuration is invalid.
    if let Some(Command::RtcToken(args)) = cli.command {
        return rtc_token::run(args);
    }
    let config = match Config::from_env(cli.config.as_deref()) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Option<Command>, mut config: Config) -> anyhow::Result<()> {
    match command.unwrap_or(Command::Serve { bind: None }) {
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                config.bind = bind;
            }
            let addr = config.bind_addr()?;
            telemetry::init_logging(&config);
            telemetry::install_panic_hook();
            let state = AppState::build(config).await?;
            crate::app::admin::log_first_admin_hint(&state).await;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tokio::spawn(server::cancel_on_signal(state.shutdown.clone()));
            server::serve(state, listener).await
        }
        Command::Migrate => {
            let db = connect_database(&config).await?;
            for name in db.applied_migrations().await? {
                println!("applied {name}");
            }
            Ok(())
        }
        Command::Backup { out } => {
            let db = connect_database(&config).await?;
            db.backup_sqlite(&out).await?;
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!("backup written to {} ({size} bytes)", out.display());
            println!(
                "restore: stop lty, copy it to {} and delete lty.db-wal and lty.db-shm beside it, then start lty",
                config.data_dir.join("lty.db").display()
            );
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Print,
        } => {
            print!("{}", config.to_redacted_toml());
            println!(
                "\n# database in effect: {}",
                redact_url(&config.database_url())
            );
            println!(
                "# mode: {}",
                if config.is_production() {
                    "production"
                } else {
                    "embedded"
                }
            );
            let read = EnvProvider::from_process().recognised();
            if !read.is_empty() {
                println!("# read from the environment:");
                for (name, path) in read {
                    let status = match ENV_VARS.iter().find(|v| v.name == name) {
                        Some(v) if !v.used => "accepted; used by a feature not in this version",
                        _ => "in use",
                    };
                    println!("#   {name} -> {path} ({status})");
                }
            }
            Ok(())
        }
        Command::Seed { users } => {
            let db = connect_database(&config).await?;
            let started = std::time::Instant::now();
            let report = lty_store::seed::seed_bench_users(&db, users).await?;
            let total = lty_store::seed::count_bench_users(&db).await?;
            println!(
                "seeded {users} bench users in {:.1}s: {} users and {} bindings created, {total} bench users in total",
                started.elapsed().as_secs_f64(),
                report.users_created,
                report.bindings_created,
            );
            Ok(())
        }
        Command::RtcToken(_) => anyhow::bail!("rtc-token is handled before configuration"),
        Command::Admin(args) => admin::run(args, &config).await,
        Command::Cards(args) => cards::run(args, &config).await,
        Command::Openapi => {
            println!("{}", crate::http::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}

/// A database URL with its password replaced by `***`.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.into()
        }
        _ => url.to_owned(),
    }
}
