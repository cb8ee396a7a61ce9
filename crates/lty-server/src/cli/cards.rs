//! `lty cards generate`: a batch of cards from the command line, written to
//! a ZIP of QR images (or a CSV), through the same store and export code as
//! the admin API.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use futures_util::{Stream, StreamExt};
use lty_core::card::{CardKind, NewBatch};

use crate::config::Config;
use crate::state::connect_database;

/// `lty cards ...`
#[derive(Debug, Args)]
pub struct CardsArgs {
    #[command(subcommand)]
    pub command: CardsCommand,
}

/// Card subcommands.
#[derive(Debug, Subcommand)]
pub enum CardsCommand {
    /// Generate a batch and write it to FILE: a ZIP of the CSV and PNG/SVG
    /// QR images, or only the CSV when FILE ends in `.csv`.
    Generate {
        /// `content` or `membership`.
        #[arg(long)]
        kind: String,
        /// 1 to 100000 cards.
        #[arg(long)]
        count: u32,
        /// Content cards: what to play, e.g. `story:42`.
        #[arg(long)]
        content_ref: Option<String>,
        /// Membership cards: the plan id ...
        #[arg(long)]
        plan: Option<i64>,
        /// ... and the days it gives.
        #[arg(long)]
        days: Option<u32>,
        /// Refuse the cards after this time (RFC 3339).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// Free text kept with the batch.
        #[arg(long)]
        notes: Option<String>,
        /// Where to write the export.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

async fn write_stream<E>(
    out: &std::path::Path,
    chunks: impl Stream<Item = Result<bytes::Bytes, E>>,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?,
    );
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        file.write_all(&chunk?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    file.flush()
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Runs `lty cards ...`.
pub async fn run(args: CardsArgs, config: &Config) -> anyhow::Result<()> {
    let CardsCommand::Generate {
        kind,
        count,
        content_ref,
        plan,
        days,
        expires_at,
        notes,
        out,
    } = args.command;
    let kind: CardKind = kind.parse().map_err(|e| anyhow::anyhow!("--kind: {e}"))?;
    let db = connect_database(config).await?;
    let batch = crate::app::cards::create_batch(
        &db,
        NewBatch {
            kind,
            count,
            content_ref,
            payload: None,
            plan_id: plan,
            days,
            expires_at,
            notes,
            created_by: None,
        },
    )
    .await
    .map_err(|e| match e {
        lty_core::Error::Validation { field, message } => anyhow::anyhow!("{field}: {message}"),
        other => anyhow::anyhow!(other),
    })?;
    eprintln!("generated batch {} ({} cards)", batch.id, batch.count);
    let as_csv = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if as_csv {
        write_stream(&out, crate::app::card_export::csv_stream(db, batch.id)).await?;
    } else {
        let total = u64::from(batch.count);
        let done = Arc::new(AtomicU64::new(0));
        let progress = {
            let done = done.clone();
            Arc::new(move |n: u64| {
                let now = done.fetch_add(n, Ordering::Relaxed) + n;
                eprint!("\rQR images: {now}/{total}");
            })
        };
        write_stream(
            &out,
            crate::app::card_export::zip_stream(db, batch.id, progress),
        )
        .await?;
        eprintln!();
    }
    println!(
        "batch {}: {} {} cards written to {}",
        batch.id,
        batch.count,
        batch.kind.as_str(),
        out.display()
    );
    Ok(())
}
