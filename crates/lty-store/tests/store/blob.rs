//! The file-system blob store: round trips, missing objects, and keys that
//! must never leave the store's root. The S3 store's object URLs (its
//! requests are tested against the fake bucket in `lty-server`).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use lty_core::Error;
use lty_core::ports::BlobStore;
use lty_store::OpendalBlobStore;
use lty_store::blob::{S3Options, S3Urls};
use lty_vendors::aws;

use crate::helpers::TempDir;

fn store(dir: &TempDir) -> OpendalBlobStore {
    OpendalBlobStore::fs(&dir.path().join("media"), "http://127.0.0.1:8000/media/")
        .expect("a blob store on a temporary directory")
}

#[tokio::test]
async fn an_object_round_trips_through_put_get_and_delete() {
    let dir = TempDir::new();
    let blobs = store(&dir);
    blobs.ping().await.unwrap();
    let key = "audio/permanent/20261125/a.mp3";
    let data = Bytes::from_static(b"ID3\x04\x00fake mp3");

    blobs.put(key, data.clone(), "audio/mpeg").await.unwrap();

    assert_eq!(blobs.get(key).await.unwrap(), Some(data.clone()));
    let on_disk = dir.path().join("media").join(key);
    assert_eq!(std::fs::read(&on_disk).unwrap(), data.to_vec());

    blobs.delete(key).await.unwrap();
    assert_eq!(blobs.get(key).await.unwrap(), None);
    assert!(!on_disk.exists());
}

#[tokio::test]
async fn put_replaces_an_existing_object() {
    let dir = TempDir::new();
    let blobs = store(&dir);
    blobs
        .put(
            "qr/1.png",
            Bytes::from_static(b"old, longer content"),
            "image/png",
        )
        .await
        .unwrap();
    blobs
        .put("qr/1.png", Bytes::from_static(b"new"), "image/png")
        .await
        .unwrap();
    assert_eq!(
        blobs.get("qr/1.png").await.unwrap(),
        Some(Bytes::from_static(b"new"))
    );
}

#[tokio::test]
async fn a_missing_object_reads_as_none_and_deletes_without_error() {
    let dir = TempDir::new();
    let blobs = store(&dir);
    assert_eq!(blobs.get("audio/none.mp3").await.unwrap(), None);
    blobs.delete("audio/none.mp3").await.unwrap();
}

#[tokio::test]
async fn keys_that_could_leave_the_root_are_rejected() {
    let dir = TempDir::new();
    let blobs = store(&dir);
    let outside = dir.path().join("escape.txt");
    std::fs::write(&outside, b"outside").unwrap();

    for key in [
        "../escape.txt",
        "audio/../../escape.txt",
        "..",
        "/etc/passwd",
        "/escape.txt",
        "",
        "audio//a.mp3",
        "./a.mp3",
        "a\\..\\escape.txt",
    ] {
        let put = blobs.put(key, Bytes::from_static(b"x"), "text/plain").await;
        assert!(
            matches!(put, Err(Error::Validation { .. })),
            "put {key:?}: {put:?}"
        );
        let got = blobs.get(key).await;
        assert!(
            matches!(got, Err(Error::Validation { .. })),
            "get {key:?}: {got:?}"
        );
        let deleted = blobs.delete(key).await;
        assert!(
            matches!(deleted, Err(Error::Validation { .. })),
            "delete {key:?}: {deleted:?}"
        );
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside");
}

#[tokio::test]
async fn an_object_url_joins_the_public_base_and_the_key() {
    let dir = TempDir::new();
    let blobs = store(&dir);
    assert_eq!(
        blobs.url("audio/a.mp3"),
        "http://127.0.0.1:8000/media/audio/a.mp3"
    );
}

#[tokio::test]
async fn folders_are_listed_and_deleted_with_everything_in_them() {
    let dir = TempDir::new();
    let blobs = store(&dir);
    assert!(
        blobs
            .list_folders("audio/temporary/")
            .await
            .unwrap()
            .is_empty()
    );
    for key in [
        "audio/temporary/20261101/a.wav",
        "audio/temporary/20261101/b.wav",
        "audio/temporary/20261120/c.wav",
        "audio/temporary/loose.wav",
        "audio/permanent/20261101/d.wav",
    ] {
        blobs
            .put(key, Bytes::from_static(b"x"), "audio/wav")
            .await
            .unwrap();
    }
    let mut folders = blobs.list_folders("audio/temporary/").await.unwrap();
    folders.sort();
    assert_eq!(folders, ["20261101", "20261120"]);

    blobs
        .delete_folder("audio/temporary/20261101/")
        .await
        .unwrap();
    assert_eq!(
        blobs.list_folders("audio/temporary/").await.unwrap(),
        ["20261120"]
    );
    assert_eq!(
        blobs.get("audio/temporary/20261101/a.wav").await.unwrap(),
        None
    );
    assert!(
        blobs
            .get("audio/temporary/loose.wav")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        blobs
            .get("audio/permanent/20261101/d.wav")
            .await
            .unwrap()
            .is_some()
    );

    for bad in ["audio/temporary", "../", "/abs/", "a/../b/"] {
        assert!(blobs.list_folders(bad).await.is_err(), "{bad}");
        assert!(blobs.delete_folder(bad).await.is_err(), "{bad}");
    }
}

fn s3_options(virtual_host_style: bool, urls: S3Urls) -> S3Options {
    S3Options {
        endpoint: "https://s3.eu-central-1.amazonaws.com/".into(),
        region: "eu-central-1".into(),
        bucket: "lty-media".into(),
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        virtual_host_style,
        urls,
        timeout: Duration::from_secs(5),
    }
}

/// Checks a presigned URL against an independent SigV4 computation from
/// its own `X-Amz-Date`, and returns it parsed.
fn check_presigned(url: &str, host: &str, path: &str) -> url::Url {
    let parsed = url::Url::parse(url).unwrap();
    assert_eq!(parsed.scheme(), "https");
    assert_eq!(parsed.host_str(), Some(host));
    assert_eq!(parsed.path(), path);
    let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["X-Amz-Expires"], "900");
    let date = &q["X-Amz-Date"];
    let at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc()
        .timestamp();
    let expected = aws::presign(
        &aws::PresignRequest {
            method: "GET",
            host,
            path,
            expires_secs: 900,
        },
        &aws::Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        },
        "eu-central-1",
        "s3",
        u64::try_from(at).unwrap(),
    );
    assert_eq!(q["X-Amz-Signature"], expected.signature);
    let age = chrono::Utc::now().timestamp() - at;
    assert!((0..5).contains(&age), "{age}");
    parsed
}

#[test]
fn s3_urls_are_presigned_path_style_by_default() {
    let presigned = S3Urls::Presigned {
        expiry: Duration::from_secs(900),
    };
    let blobs = OpendalBlobStore::s3(s3_options(false, presigned)).unwrap();
    let url = blobs.url("audio/temporary/20261125/a.mp3");
    check_presigned(
        &url,
        "s3.eu-central-1.amazonaws.com",
        "/lty-media/audio/temporary/20261125/a.mp3",
    );
}

#[test]
fn s3_urls_are_presigned_on_the_bucket_host_in_virtual_host_style() {
    let presigned = S3Urls::Presigned {
        expiry: Duration::from_secs(900),
    };
    let blobs = OpendalBlobStore::s3(s3_options(true, presigned)).unwrap();
    let url = blobs.url("qr/1.png");
    check_presigned(&url, "lty-media.s3.eu-central-1.amazonaws.com", "/qr/1.png");
}

#[test]
fn s3_public_urls_are_the_base_and_the_key() {
    let public = S3Urls::Public {
        base: "https://cdn.example.com/media/".into(),
    };
    let blobs = OpendalBlobStore::s3(s3_options(false, public)).unwrap();
    assert_eq!(
        blobs.url("qr/1.png"),
        "https://cdn.example.com/media/qr/1.png"
    );
}

#[test]
fn s3_needs_a_bucket_and_a_key_pair_and_never_prints_the_secret() {
    let urls = || S3Urls::Presigned {
        expiry: Duration::from_secs(900),
    };
    let mut opts = s3_options(false, urls());
    opts.bucket.clear();
    assert!(OpendalBlobStore::s3(opts).is_err());
    let mut opts = s3_options(false, urls());
    opts.secret_access_key.clear();
    assert!(OpendalBlobStore::s3(opts).is_err());
    let opts = s3_options(false, urls());
    assert!(!format!("{opts:?}").contains("EXAMPLEKEY"));
    let blobs = OpendalBlobStore::s3(opts).unwrap();
    assert!(!format!("{blobs:?}").contains("EXAMPLEKEY"), "{blobs:?}");
}
