//! [`BlobStore`](lty_core::ports::BlobStore) over OpenDAL. Embedded mode uses
//! a local directory served under `/media/`; object storage services plug in
//! as further OpenDAL backends.

use async_trait::async_trait;
use bytes::Bytes;
use lty_core::ports::BlobStore;
use lty_core::{BackendError, Error, Result};
use opendal::{ErrorKind, Operator};

fn blob_err(err: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::new("blob", err))
}

/// A blob store backed by an OpenDAL operator.
#[derive(Debug, Clone)]
pub struct OpendalBlobStore {
    op: Operator,
    public_base: String,
}

impl OpendalBlobStore {
    /// A store on the local directory `root`, whose objects are served at
    /// `{public_base}/{key}` (e.g. `http://host:8000/media`).
    pub fn fs(root: &std::path::Path, public_base: &str) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(blob_err)?;
        let root = root
            .to_str()
            .ok_or_else(|| blob_err("media path is not UTF-8"))?;
        let builder = opendal::services::Fs::default().root(root);
        let op = Operator::new(builder).map_err(blob_err)?;
        Ok(Self {
            op,
            public_base: public_base.trim_end_matches('/').to_owned(),
        })
    }
}

/// Refuses keys that could escape the store's root or are not plain paths.
fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key.len() <= 1024
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::validation("key", "invalid object key"))
    }
}

#[async_trait]
impl BlobStore for OpendalBlobStore {
    async fn put(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        check_key(key)?;
        self.op
            .write_with(key, data)
            .content_type(content_type)
            .await
            .map(|_| ())
            .map_err(blob_err)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        match self.op.read(key).await {
            Ok(buf) => Ok(Some(buf.to_bytes())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.op.delete(key).await.map_err(blob_err)
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{}", self.public_base, key)
    }

    async fn ping(&self) -> Result<()> {
        self.op.check().await.map_err(blob_err)
    }
}
