//! `lty admin ...`: operator accounts from the command line.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use clap::{Args, Subcommand};
use lty_core::admin::AdminRole;

use crate::config::Config;
use crate::state::connect_database;

/// `lty admin ...`
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account. Prompts for the password (twice) unless
    /// --password-stdin is given.
    Create {
        /// Login name: 3 to 150 letters, digits or _ . @ -.
        #[arg(long)]
        username: String,
        /// `superadmin` (everything) or `operator` (day-to-day work).
        #[arg(long, default_value = "superadmin")]
        role: String,
        /// Read the password from standard input (one line) instead of
        /// prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        let line = text.lines().next().unwrap_or("");
        return Ok(line.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to prompt for the password on; pipe it with --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let again =
        rpassword::prompt_password("Password (again): ").context("cannot read the password")?;
    if first != again {
        anyhow::bail!("the passwords differ");
    }
    Ok(first)
}

/// Runs `lty admin ...`.
pub async fn run(args: AdminArgs, config: &Config) -> anyhow::Result<()> {
    match args.command {
        AdminCommand::Create {
            username,
            role,
            password_stdin,
        } => {
            let role: AdminRole = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let password = read_password(password_stdin)?;
            let db = connect_database(config).await?;
            let admin = crate::app::admin::create_admin(&db, &username, &password, role)
                .await
                .map_err(|e| match e {
                    lty_core::Error::Conflict { .. } => {
                        anyhow::anyhow!("an admin named {:?} already exists", username.trim())
                    }
                    lty_core::Error::Validation { field, message } => {
                        anyhow::anyhow!("{field}: {message}")
                    }
                    other => anyhow::anyhow!(other),
                })?;
            println!(
                "created admin {} (role {}, id {})",
                admin.username, admin.role, admin.id
            );
            Ok(())
        }
    }
}
