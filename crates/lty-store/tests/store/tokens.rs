//! The token store over each cache: legacy key formats, expiry, and the two
//! key spaces.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lty_core::Result;
use lty_core::ports::Cache;
use lty_core::token::{CacheTokenStore, TOKEN_TTL, TokenKind, TokenStore};

use crate::helpers::{PAST_SHORT_TTL, SHORT_TTL, TestCache, each_cache};

fn store(t: &TestCache) -> CacheTokenStore {
    CacheTokenStore::new(t.cache.clone(), TOKEN_TTL)
}

#[tokio::test]
async fn token_store_resolves_an_issued_token_until_it_is_revoked() {
    each_cache(async |t| {
        let tokens = store(t);
        for kind in [TokenKind::User, TokenKind::Admin] {
            let token = tokens.issue(kind, 42).await.unwrap();
            assert_eq!(tokens.resolve(kind, &token).await.unwrap(), Some(42));
            assert_eq!(tokens.resolve(kind, &token).await.unwrap(), Some(42));

            assert!(tokens.revoke(kind, &token).await.unwrap());
            assert_eq!(tokens.resolve(kind, &token).await.unwrap(), None);
            assert!(!tokens.revoke(kind, &token).await.unwrap(), "revoked twice");
        }
    })
    .await;
}

#[tokio::test]
async fn issued_tokens_are_forty_lowercase_hex_characters_and_all_differ() {
    each_cache(async |t| {
        let tokens = store(t);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let token = tokens.issue(TokenKind::User, 1).await.unwrap();
            assert_eq!(token.len(), 40, "{token}");
            assert!(
                token
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{token}"
            );
            assert!(seen.insert(token));
        }
    })
    .await;
}

#[tokio::test]
async fn issued_tokens_are_stored_under_the_legacy_keys_with_the_decimal_id() {
    each_cache(async |t| {
        let tokens = store(t);
        let user_token = tokens.issue(TokenKind::User, 1234).await.unwrap();
        let admin_token = tokens.issue(TokenKind::Admin, 7).await.unwrap();

        let user_key = format!("token:{user_token}");
        let admin_key = format!("admin_token:{admin_token}");
        assert_eq!(
            t.cache.get(&user_key).await.unwrap().as_deref(),
            Some("1234")
        );
        assert_eq!(t.cache.get(&admin_key).await.unwrap().as_deref(), Some("7"));
        // As the backend itself holds them, past the adapter.
        assert_eq!(t.stored(&user_key).await.as_deref(), Some("1234"));
        assert_eq!(t.stored(&admin_key).await.as_deref(), Some("7"));
    })
    .await;
}

#[tokio::test]
async fn a_token_written_by_the_legacy_system_resolves() {
    each_cache(async |t| {
        let legacy = "0123456789abcdef0123456789abcdef01234567";
        t.cache
            .set(&format!("token:{legacy}"), "17", Some(TOKEN_TTL))
            .await
            .unwrap();
        t.cache
            .set(&format!("admin_token:{legacy}"), "3", Some(TOKEN_TTL))
            .await
            .unwrap();

        let tokens = store(t);
        assert_eq!(
            tokens.resolve(TokenKind::User, legacy).await.unwrap(),
            Some(17)
        );
        assert_eq!(
            tokens.resolve(TokenKind::Admin, legacy).await.unwrap(),
            Some(3)
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_whose_value_is_not_a_decimal_id_resolves_to_none() {
    each_cache(async |t| {
        t.cache
            .set("token:garbage", "not-a-number", None)
            .await
            .unwrap();
        let tokens = store(t);
        assert_eq!(
            tokens.resolve(TokenKind::User, "garbage").await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn issued_tokens_expire_after_thirty_days() {
    assert_eq!(TOKEN_TTL, Duration::from_secs(2_592_000));
    each_cache(async |t| {
        let tokens = store(t);
        for kind in [TokenKind::User, TokenKind::Admin] {
            let token = tokens.issue(kind, 5).await.unwrap();
            let ttl = t.cache.ttl(&kind.key(&token)).await.unwrap().unwrap();
            assert!(
                ttl <= TOKEN_TTL && ttl >= TOKEN_TTL - Duration::from_secs(2),
                "{kind:?} token expires in {ttl:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn user_tokens_and_admin_tokens_never_resolve_in_each_other_s_space() {
    each_cache(async |t| {
        let tokens = store(t);
        let user = tokens.issue(TokenKind::User, 10).await.unwrap();
        let admin = tokens.issue(TokenKind::Admin, 20).await.unwrap();

        assert_eq!(tokens.resolve(TokenKind::Admin, &user).await.unwrap(), None);
        assert_eq!(tokens.resolve(TokenKind::User, &admin).await.unwrap(), None);
        assert!(!tokens.revoke(TokenKind::Admin, &user).await.unwrap());
        assert!(!tokens.revoke(TokenKind::User, &admin).await.unwrap());

        // Still valid in their own spaces after the cross-space revokes.
        assert_eq!(
            tokens.resolve(TokenKind::User, &user).await.unwrap(),
            Some(10)
        );
        assert_eq!(
            tokens.resolve(TokenKind::Admin, &admin).await.unwrap(),
            Some(20)
        );
    })
    .await;
}

/// A cache that counts the calls reaching it.
struct CountingCache {
    inner: Arc<dyn Cache>,
    calls: AtomicUsize,
}

impl CountingCache {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Cache for CountingCache {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.count();
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        self.count();
        self.inner.set(key, value, ttl).await
    }
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        self.count();
        self.inner.set_nx(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.count();
        self.inner.delete(key).await
    }
    async fn incr(&self, key: &str, window: Duration) -> Result<(i64, Duration)> {
        self.count();
        self.inner.incr(key, window).await
    }
    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.count();
        self.inner.ttl(key).await
    }
    async fn mark_present(&self, index: &str, member: &str, ttl: Duration) -> Result<()> {
        self.count();
        self.inner.mark_present(index, member, ttl).await
    }
    async fn present(&self, index: &str) -> Result<Vec<String>> {
        self.count();
        self.inner.present(index).await
    }
    async fn ping(&self) -> Result<()> {
        self.count();
        self.inner.ping().await
    }
    async fn get_marked(&self, key: &str, marker_prefix: &str) -> Result<Option<(String, bool)>> {
        self.count();
        self.inner.get_marked(key, marker_prefix).await
    }
}

#[tokio::test]
async fn a_token_with_weird_characters_resolves_to_none_without_touching_the_backend() {
    let long = "a".repeat(129);
    let weird = [
        "",
        "a b",
        "../token",
        "abc:def",
        "abc*",
        "tok\r\nFLUSHALL",
        "tök",
        "abc/def",
        long.as_str(),
    ];
    each_cache(async |t| {
        // Were a weird token looked up at all, it would resolve to 1.
        for token in weird {
            for kind in [TokenKind::User, TokenKind::Admin] {
                t.cache.set(&kind.key(token), "1", None).await.unwrap();
            }
        }
        let counting = Arc::new(CountingCache {
            inner: t.cache.clone(),
            calls: AtomicUsize::new(0),
        });
        let tokens = CacheTokenStore::new(counting.clone(), TOKEN_TTL);

        for token in weird {
            for kind in [TokenKind::User, TokenKind::Admin] {
                assert_eq!(
                    tokens.resolve(kind, token).await.unwrap(),
                    None,
                    "{token:?}"
                );
                assert!(!tokens.revoke(kind, token).await.unwrap(), "{token:?}");
                assert_eq!(
                    tokens.resolve_marked(kind, token, "m:").await.unwrap(),
                    None,
                    "{token:?}"
                );
            }
        }
        assert_eq!(counting.calls.load(Ordering::SeqCst), 0);

        // The counter does see a plausible token's lookup.
        assert_eq!(
            tokens
                .resolve(TokenKind::User, "abc-DEF_123")
                .await
                .unwrap(),
            None
        );
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn resolve_marked_reports_the_subjects_marker_in_one_backend_call() {
    each_cache(async |t| {
        let counting = Arc::new(CountingCache {
            inner: t.cache.clone(),
            calls: AtomicUsize::new(0),
        });
        let tokens = CacheTokenStore::new(counting.clone(), TOKEN_TTL);
        let calls = || counting.calls.load(Ordering::SeqCst);
        let token = tokens.issue(TokenKind::User, 77).await.unwrap();
        let before = calls();
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::User, &token, "user:disabled:")
                .await
                .unwrap(),
            Some((77, false)),
            "{}",
            t.name
        );
        assert_eq!(calls() - before, 1, "{}: one call", t.name);

        // Another subject's marker, or another prefix, is not this one's.
        t.cache.set("user:disabled:7", "1", None).await.unwrap();
        t.cache.set("other:77", "1", None).await.unwrap();
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::User, &token, "user:disabled:")
                .await
                .unwrap(),
            Some((77, false))
        );
        t.cache.set("user:disabled:77", "1", None).await.unwrap();
        let before = calls();
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::User, &token, "user:disabled:")
                .await
                .unwrap(),
            Some((77, true))
        );
        assert_eq!(calls() - before, 1, "{}: one call", t.name);
        // Admin tokens live in their own key space.
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::Admin, &token, "user:disabled:")
                .await
                .unwrap(),
            None
        );

        // A value not in canonical form still finds its subject's marker.
        t.cache
            .set("token:padded-77", " 077\n", None)
            .await
            .unwrap();
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::User, "padded-77", "user:disabled:")
                .await
                .unwrap(),
            Some((77, true))
        );
        // A value that is no id resolves to nothing.
        t.cache.set("token:junk", "abc", None).await.unwrap();
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::User, "junk", "user:disabled:")
                .await
                .unwrap(),
            None
        );
        assert!(tokens.revoke(TokenKind::User, &token).await.unwrap());
        assert_eq!(
            tokens
                .resolve_marked(TokenKind::User, &token, "user:disabled:")
                .await
                .unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_stops_resolving_once_its_ttl_has_passed() {
    each_cache(async |t| {
        let tokens = CacheTokenStore::new(t.cache.clone(), SHORT_TTL);
        let token = tokens.issue(TokenKind::User, 9).await.unwrap();
        assert_eq!(
            tokens.resolve(TokenKind::User, &token).await.unwrap(),
            Some(9)
        );

        tokio::time::sleep(PAST_SHORT_TTL).await;

        assert_eq!(tokens.resolve(TokenKind::User, &token).await.unwrap(), None);
        assert_eq!(t.cache.get(&format!("token:{token}")).await.unwrap(), None);
    })
    .await;
}
