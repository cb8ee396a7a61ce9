//! SMS login codes: issuing, sending and checking them, and the two
//! [`SmsSender`] adapters (Aliyun SendSms in production, the log in
//! embedded mode).
//!
//! A code is 6 random digits, valid `auth.sms_code_ttl_secs` (5 minutes)
//! and good for one login. The cache holds, under `sms_code:{phone}`, a
//! random id and an HMAC of phone and code, never the code itself. Every
//! check first counts an attempt against the code's id (`INCR`), so even
//! concurrent guesses get at most `auth.sms_code_max_attempts` comparisons;
//! after that the code is locked until a new one is sent. A correct code is
//! consumed with set-if-absent on `sms_code_used:{id}`, so two simultaneous
//! logins with one code give exactly one token.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use lty_core::ports::Cache;
use lty_core::sms::SmsSender;
use lty_core::{Error, ErrorKind, PhoneNumber, Result};
use lty_vendors::aliyun::AccessKey;
use lty_vendors::aliyun::sms::{SendSmsErrorKind, SmsClient, SmsClientConfig};
use rand::Rng;
use serde_json::json;
use sha2::Sha256;

use crate::config::Config;

type HmacSha256 = Hmac<Sha256>;

// The cache key of the random hashing key used when SECRET_KEY is unset:
// shared by every instance on one Redis.
const GENERATED_KEY: &str = "sms_code_key";
const GENERATED_KEY_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// Where the code-hashing key comes from.
enum CodeKey {
    /// Derived from `SECRET_KEY`: a cache dump does not reveal codes.
    Derived(Vec<u8>),
    /// Random, kept in the cache beside the codes.
    Generated,
}

/// Issues and checks SMS login codes.
pub struct SmsCodes {
    cache: Arc<dyn Cache>,
    sender: Arc<dyn SmsSender>,
    key: CodeKey,
    ttl: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for SmsCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsCodes")
            .field("sender", &self.sender.name())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What [`SmsCodes::send`] did.
#[derive(Debug, Clone, Copy)]
pub struct SentCode {
    /// Seconds the code stays valid.
    pub expires_in: u64,
}

fn code_key(phone: &PhoneNumber) -> String {
    format!("sms_code:{phone}")
}

fn locked_key(phone: &PhoneNumber) -> String {
    format!("sms_code_locked:{phone}")
}

fn expired() -> Error {
    Error::coded(
        ErrorKind::Invalid,
        "sms_code_expired",
        "no valid code for this phone: it expired, was used, or was never sent; request a new one",
    )
}

fn locked() -> Error {
    Error::coded(
        ErrorKind::Limited,
        "sms_code_locked",
        "too many wrong codes; request a new code",
    )
}

impl SmsCodes {
    /// The code service for `config`: the Aliyun sender when every
    /// `ALIYUN_SMS_*` credential is set, the console sender when none is.
    pub fn build(config: &Config, cache: Arc<dyn Cache>) -> anyhow::Result<Self> {
        let sender = sender_for(config)?;
        let key = match &config.secret_key {
            Some(secret) if !secret.expose().is_empty() => {
                let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                    .context("cannot key the SMS code hash")?;
                mac.update(b"lty sms login codes v1");
                CodeKey::Derived(mac.finalize().into_bytes().to_vec())
            }
            _ => CodeKey::Generated,
        };
        Ok(Self {
            cache,
            sender,
            key,
            ttl: Duration::from_secs(config.auth.sms_code_ttl_secs),
            max_attempts: config.auth.sms_code_max_attempts,
        })
    }

    /// The sender in use: `aliyun` or `console`.
    pub fn sender_name(&self) -> &'static str {
        self.sender.name()
    }

    async fn hash(&self, phone: &PhoneNumber, code: &str) -> Result<HmacSha256> {
        let key = match &self.key {
            CodeKey::Derived(k) => k.clone(),
            CodeKey::Generated => {
                let fresh = lty_core::token::generate_token();
                self.cache
                    .set_nx(GENERATED_KEY, &fresh, GENERATED_KEY_TTL)
                    .await?;
                self.cache
                    .get(GENERATED_KEY)
                    .await?
                    .unwrap_or(fresh)
                    .into_bytes()
            }
        };
        let mut mac = HmacSha256::new_from_slice(&key)
            .map_err(|e| Error::Backend(lty_core::BackendError::new("sms", e)))?;
        mac.update(phone.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(code.as_bytes());
        Ok(mac)
    }

    /// Issues a new code for `phone` (replacing any earlier one) and sends
    /// it. Rate limits are the caller's.
    #[tracing::instrument(skip_all, fields(phone = %phone.masked(), sender = self.sender.name()))]
    pub async fn send(&self, phone: &PhoneNumber) -> Result<SentCode> {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let id = lty_core::token::generate_token();
        let digest = hex::encode(self.hash(phone, &code).await?.finalize().into_bytes());
        // Stored before sending: a message that arrives after a slow or
        // timed-out vendor call still carries a valid code.
        self.cache
            .set(&code_key(phone), &format!("{id}.{digest}"), Some(self.ttl))
            .await?;
        self.cache.delete(&locked_key(phone)).await?;
        self.sender.send_code(phone, &code).await?;
        Ok(SentCode {
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Checks `code` for `phone` and consumes it. Exactly one of several
    /// concurrent checks of the right code succeeds.
    #[tracing::instrument(skip_all, fields(phone = %phone.masked()))]
    pub async fn verify(&self, phone: &PhoneNumber, code: &str) -> Result<()> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::validation(
                "code",
                "must be the 6 digits from the SMS",
            ));
        }
        let key = code_key(phone);
        let Some(record) = self.cache.get(&key).await? else {
            return Err(if self.cache.get(&locked_key(phone)).await?.is_some() {
                locked()
            } else {
                expired()
            });
        };
        let Some((id, digest)) = record.split_once('.') else {
            return Err(expired());
        };
        // Count the attempt before comparing, so concurrent guesses cannot
        // get more comparisons than the limit.
        let (attempt, _) = self
            .cache
            .incr(&format!("sms_code_attempts:{id}"), self.ttl)
            .await?;
        let max = i64::from(self.max_attempts);
        if attempt > max {
            self.lock(phone, &record).await?;
            return Err(locked());
        }
        let matches = match hex::decode(digest) {
            Ok(expected) => self
                .hash(phone, code)
                .await?
                .verify_slice(&expected)
                .is_ok(),
            Err(_) => false,
        };
        if !matches {
            if attempt >= max {
                self.lock(phone, &record).await?;
                return Err(locked());
            }
            return Err(
                Error::coded(ErrorKind::Invalid, "sms_code_invalid", "the code is wrong")
                    .with_details(json!({ "attempts_left": max - attempt })),
            );
        }
        if !self
            .cache
            .set_nx(&format!("sms_code_used:{id}"), "1", self.ttl)
            .await?
        {
            return Err(expired());
        }
        self.remove_if_current(&key, &record).await?;
        Ok(())
    }

    async fn lock(&self, phone: &PhoneNumber, record: &str) -> Result<()> {
        self.cache
            .set(&locked_key(phone), "1", Some(self.ttl))
            .await?;
        self.remove_if_current(&code_key(phone), record).await
    }

    // Deletes the code unless a newer one was sent meanwhile.
    async fn remove_if_current(&self, key: &str, record: &str) -> Result<()> {
        if self.cache.get(key).await?.as_deref() == Some(record) {
            self.cache.delete(key).await?;
        }
        Ok(())
    }
}

fn sender_for(config: &Config) -> anyhow::Result<Arc<dyn SmsSender>> {
    let sms = &config.aliyun.sms;
    let parts = [
        ("ALIYUN_SMS_ACCESS_KEY_ID", sms.access_key_id.is_some()),
        (
            "ALIYUN_SMS_ACCESS_KEY_SECRET",
            sms.access_key_secret.is_some(),
        ),
        ("ALIYUN_SMS_SIGN_NAME", sms.sign_name.is_some()),
        ("ALIYUN_SMS_TEMPLATE_CODE", sms.template_code.is_some()),
    ];
    let missing: Vec<&str> = parts.iter().filter(|p| !p.1).map(|p| p.0).collect();
    if missing.len() == parts.len() {
        return Ok(Arc::new(ConsoleSmsSender));
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "Aliyun SMS is partly configured: set {} too (or none of ALIYUN_SMS_* for the console sender)",
            missing.join(", ")
        );
    }
    let (Some(id), Some(secret), Some(sign_name), Some(template_code)) = (
        &sms.access_key_id,
        &sms.access_key_secret,
        &sms.sign_name,
        &sms.template_code,
    ) else {
        anyhow::bail!("Aliyun SMS settings vanished");
    };
    let client = SmsClient::new(SmsClientConfig {
        endpoint: sms.endpoint.clone(),
        key: AccessKey::new(id.clone(), secret.expose()),
        sign_name: sign_name.clone(),
        template_code: template_code.clone(),
        connect_timeout: Duration::from_secs(sms.timeout_secs.min(3)),
        timeout: Duration::from_secs(sms.timeout_secs),
    })
    .context("cannot build the Aliyun SMS client")?;
    Ok(Arc::new(AliyunSmsSender {
        client,
        code_param: sms.code_param.clone(),
    }))
}

/// Embedded mode: the code goes to the log (INFO) so a developer can sign
/// up without an SMS account. The phone is masked; the code is not.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleSmsSender;

#[async_trait]
impl SmsSender for ConsoleSmsSender {
    async fn send_code(&self, phone: &PhoneNumber, code: &str) -> Result<()> {
        tracing::info!(
            phone = %phone.masked(),
            code,
            "SMS login code (console sender; set ALIYUN_SMS_* to send real messages)"
        );
        Ok(())
    }

    fn name(&self) -> &'static str {
        "console"
    }
}

/// Production: Aliyun SendSms with the configured signature and template.
#[derive(Debug)]
pub struct AliyunSmsSender {
    client: SmsClient,
    code_param: String,
}

#[async_trait]
impl SmsSender for AliyunSmsSender {
    async fn send_code(&self, phone: &PhoneNumber, code: &str) -> Result<()> {
        let mut param = serde_json::Map::new();
        param.insert(self.code_param.clone(), json!(code));
        let param = serde_json::Value::Object(param).to_string();
        match self.client.send(phone.for_aliyun(), &param, None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.kind() {
                // Our own per-phone window is a minute; the vendor's
                // per-number control is at least that.
                SendSmsErrorKind::Throttled => Error::RateLimited {
                    retry_after_secs: 60,
                },
                SendSmsErrorKind::InvalidNumber => {
                    Error::validation("phone", "the SMS provider refused this number")
                }
                SendSmsErrorKind::Failed => Error::Upstream {
                    provider: "aliyun_sms",
                    message: e.to_string(),
                },
            }),
        }
    }

    fn name(&self) -> &'static str {
        "aliyun"
    }
}
