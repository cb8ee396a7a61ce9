//! Batch exports, shared by the admin API and `lty cards generate`: the CSV
//! of a batch's codes, and a ZIP of that CSV plus a PNG and an SVG QR image
//! per card. Both are streams of chunks, one page of cards at a time, so
//! memory stays at a page whatever the batch size.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use lty_core::card::{Card, CardCode};
use lty_store::Database;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

/// Cards per page of the CSV.
const CSV_PAGE: u64 = 5_000;
/// Cards per page of images: about 2 MB of PNG and SVG per chunk.
const IMAGE_PAGE: u64 = 250;

/// The first line of a batch's CSV.
pub const CSV_HEADER: &str = "code,card_id,disabled\n";

/// Called with the number of cards whose images were just written.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] lty_core::Error),
    #[error("cannot write the ZIP archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot write the ZIP archive: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Qr(#[from] crate::app::qr::QrError),
    #[error("the image renderer stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The printed form of a stored code (`XXXX-XXXX-XXXX-XXXX`).
pub fn display_code(stored: &str) -> String {
    CardCode::parse(stored).map_or_else(|_| stored.to_owned(), |c| c.display())
}

fn csv_rows(cards: &[Card]) -> String {
    let mut out = String::with_capacity(cards.len() * 32);
    for c in cards {
        out.push_str(&format!(
            "{},{},{}\n",
            display_code(&c.code),
            c.id,
            c.disabled
        ));
    }
    out
}

/// The id to continue after, when `cards` was a full page.
fn next_after(cards: &[Card], page: u64) -> Option<i64> {
    (cards.len() as u64 == page)
        .then(|| cards.last().map(|c| c.id))
        .flatten()
}

/// The batch as CSV (`code,card_id,disabled`), a page per chunk.
pub fn csv_stream(
    db: Database,
    batch_id: i64,
) -> impl Stream<Item = Result<Bytes, lty_core::Error>> + Send + 'static {
    futures_util::stream::unfold((Some(0i64), true), move |(after, first)| {
        let db = db.clone();
        async move {
            let after = after?;
            let cards = match db.cards_of_batch(batch_id, after, CSV_PAGE).await {
                Ok(cards) => cards,
                Err(err) => return Some((Err(err), (None, false))),
            };
            let mut out = if first {
                CSV_HEADER.to_owned()
            } else {
                String::new()
            };
            out.push_str(&csv_rows(&cards));
            if out.is_empty() {
                return None;
            }
            Some((Ok(Bytes::from(out)), (next_after(&cards, CSV_PAGE), false)))
        }
    })
}

/// Where the ZIP writer puts its bytes until the stream hands them on.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn take(&self) -> Bytes {
        self.0
            .lock()
            .map(|mut buf| Bytes::from(std::mem::take(&mut *buf)))
            .unwrap_or_default()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("export buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Zip = ZipWriter<StreamWriter<Sink>>;

enum Phase {
    Csv { after: i64 },
    Images { after: i64 },
    Finish,
    Done,
}

struct ZipExport {
    db: Database,
    batch_id: i64,
    zip: Option<Zip>,
    sink: Sink,
    phase: Phase,
    progress: Progress,
}

fn stored() -> SimpleFileOptions {
    // PNGs are compressed already; Stored keeps the export CPU-cheap.
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(false)
}

fn write_images(mut zip: Zip, cards: &[Card]) -> Result<Zip, ExportError> {
    for card in cards {
        let code = display_code(&card.code);
        zip.start_file(format!("png/{code}.png"), stored())?;
        zip.write_all(&crate::app::qr::png(&code)?)?;
        zip.start_file(format!("svg/{code}.svg"), stored())?;
        zip.write_all(crate::app::qr::svg(&code)?.as_bytes())?;
    }
    Ok(zip)
}

impl ZipExport {
    fn zip(&mut self) -> Result<&mut Zip, ExportError> {
        self.zip
            .as_mut()
            .ok_or_else(|| std::io::Error::other("archive already finished").into())
    }

    /// The next chunk of the archive, `None` at its end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ExportError> {
        loop {
            match self.phase {
                Phase::Csv { after } => {
                    let cards = self
                        .db
                        .cards_of_batch(self.batch_id, after, CSV_PAGE)
                        .await?;
                    let name = format!("batch-{}.csv", self.batch_id);
                    let zip = self.zip()?;
                    if after == 0 {
                        zip.start_file(name, stored())?;
                        zip.write_all(CSV_HEADER.as_bytes())?;
                    }
                    zip.write_all(csv_rows(&cards).as_bytes())?;
                    self.phase = next_after(&cards, CSV_PAGE)
                        .map_or(Phase::Images { after: 0 }, |after| Phase::Csv { after });
                }
                Phase::Images { after } => {
                    let cards = self
                        .db
                        .cards_of_batch(self.batch_id, after, IMAGE_PAGE)
                        .await?;
                    self.phase = next_after(&cards, IMAGE_PAGE)
                        .map_or(Phase::Finish, |after| Phase::Images { after });
                    let zip = self
                        .zip
                        .take()
                        .ok_or_else(|| std::io::Error::other("archive already finished"))?;
                    let count = cards.len() as u64;
                    // Rendering a page of QR codes is CPU work: off the
                    // async workers.
                    let zip =
                        tokio::task::spawn_blocking(move || write_images(zip, &cards)).await??;
                    self.zip = Some(zip);
                    (self.progress)(count);
                }
                Phase::Finish => {
                    if let Some(zip) = self.zip.take() {
                        zip.finish()?;
                    }
                    self.phase = Phase::Done;
                }
                Phase::Done => {
                    let bytes = self.sink.take();
                    return Ok((!bytes.is_empty()).then_some(bytes));
                }
            }
            let bytes = self.sink.take();
            if !bytes.is_empty() {
                return Ok(Some(bytes));
            }
        }
    }
}

/// The batch as a ZIP archive: `batch-{id}.csv`, then `png/{CODE}.png` and
/// `svg/{CODE}.svg` for each card, written without seeking (entries carry
/// data descriptors) and handed on a page of cards at a time.
pub fn zip_stream(
    db: Database,
    batch_id: i64,
    progress: Progress,
) -> impl Stream<Item = Result<Bytes, ExportError>> + Send + 'static {
    let sink = Sink::default();
    let export = ZipExport {
        db,
        batch_id,
        zip: Some(ZipWriter::new_stream(sink.clone())),
        sink,
        phase: Phase::Csv { after: 0 },
        progress,
    };
    futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(export))),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(%err, "card batch export failed");
                Some((Err(err), None))
            }
        }
    })
}
