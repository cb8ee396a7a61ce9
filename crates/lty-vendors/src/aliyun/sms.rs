//! Aliyun SMS `SendSms` (dysmsapi, API version `2017-05-25`): the signed
//! form body (RPC signature V1, see [`super::pop`]) and a client with a
//! configurable endpoint and timeouts.
//!
//! `SendSms` is not idempotent, so the client never retries: after a
//! timeout the code already issued stays valid and the user may ask again.
//! Business failures come back as HTTP 200 with `Code` other than `OK`;
//! [`SendSmsError::kind`] sorts them into what the caller tells its user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pop::{
    PopError, PopResponseError, RpcCall, RpcSigned, check_pop_response, sign_rpc, signature_nonce,
};
use super::{AccessKey, Method, SignError};
use crate::http::ClientOptions;

/// `Action` of the call.
pub const ACTION: &str = "SendSms";
/// `Version` of the dysmsapi product.
pub const VERSION: &str = "2017-05-25";
/// `RegionId` of the SMS product.
pub const REGION_ID: &str = "cn-hangzhou";
/// The public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";

/// What one `SendSms` call sends.
#[derive(Debug, Clone, Copy)]
pub struct SendSms<'a> {
    /// `PhoneNumbers`: mainland numbers as 11 digits, others with their
    /// country code and no `+`; comma-separated for several.
    pub phone_numbers: &'a str,
    /// `SignName`, the approved signature text.
    pub sign_name: &'a str,
    /// `TemplateCode`, `SMS_...`.
    pub template_code: &'a str,
    /// `TemplateParam`: JSON text whose values are strings, e.g.
    /// `{"code":"482913"}`.
    pub template_param: Option<&'a str>,
    /// `OutId`, our correlation id echoed in delivery receipts.
    pub out_id: Option<&'a str>,
}

/// Signs a `SendSms` POST: the returned `signed_query` is the
/// `application/x-www-form-urlencoded` body.
pub fn sign_send_sms(
    req: &SendSms<'_>,
    key: &AccessKey,
    timestamp: u64,
    nonce: &str,
) -> Result<RpcSigned, SignError> {
    let mut params: Vec<(&str, &str)> = vec![
        ("RegionId", REGION_ID),
        ("PhoneNumbers", req.phone_numbers),
        ("SignName", req.sign_name),
        ("TemplateCode", req.template_code),
    ];
    if let Some(p) = req.template_param {
        params.push(("TemplateParam", p));
    }
    if let Some(id) = req.out_id {
        params.push(("OutId", id));
    }
    let call = RpcCall {
        action: ACTION,
        version: VERSION,
        params: &params,
    };
    sign_rpc(Method::Post, &call, key, timestamp, nonce)
}

/// A successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendSmsReceipt {
    /// `BizId`: the vendor's id of the message, for delivery lookups.
    pub biz_id: Option<String>,
    /// `RequestId`, for support tickets.
    pub request_id: Option<String>,
}

/// How a failed send should be reported to the person who asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendSmsErrorKind {
    /// Flow control: per-number (`isv.BUSINESS_LIMIT_CONTROL`) or at the
    /// gateway (`Throttling*`). Ask again later.
    Throttled,
    /// The vendor refuses the number (`isv.MOBILE_NUMBER_ILLEGAL`).
    InvalidNumber,
    /// Anything else: our configuration, the account, or the vendor.
    Failed,
}

/// Why a `SendSms` call failed.
#[derive(Debug, thiserror::Error)]
pub enum SendSmsError {
    /// The vendor answered with an error code (inside HTTP 200 or not).
    #[error(transparent)]
    Rejected(#[from] PopError),
    /// No complete answer within the timeout. The message may still go out.
    #[error("aliyun SMS did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("aliyun SMS request failed: {0}")]
    Transport(String),
    /// An answer that is not the POP envelope.
    #[error("aliyun SMS answered unexpectedly: {0}")]
    Malformed(String),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl SendSmsError {
    /// What the failure means for the caller.
    pub fn kind(&self) -> SendSmsErrorKind {
        match self {
            Self::Rejected(e) => {
                let code = e.code.as_str();
                if code == "isv.BUSINESS_LIMIT_CONTROL" || code.starts_with("Throttling") {
                    SendSmsErrorKind::Throttled
                } else if code == "isv.MOBILE_NUMBER_ILLEGAL" {
                    SendSmsErrorKind::InvalidNumber
                } else {
                    SendSmsErrorKind::Failed
                }
            }
            _ => SendSmsErrorKind::Failed,
        }
    }

    /// The vendor's `Code`, when it answered with one.
    pub fn vendor_code(&self) -> Option<&str> {
        match self {
            Self::Rejected(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// Classifies a `SendSms` answer.
pub fn parse_send_sms_response(status: u16, body: &[u8]) -> Result<SendSmsReceipt, SendSmsError> {
    match check_pop_response(status, body) {
        Ok(env) => {
            // Success must say so: an empty 200 body is not a sent message.
            if env.code.as_deref() != Some("OK") {
                return Err(SendSmsError::Malformed(format!(
                    "HTTP {status} without Code OK"
                )));
            }
            let biz_id = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("BizId").and_then(|b| b.as_str()).map(str::to_owned));
            Ok(SendSmsReceipt {
                biz_id,
                request_id: env.request_id,
            })
        }
        Err(PopResponseError::Api(e)) => Err(SendSmsError::Rejected(e)),
        Err(e) => Err(SendSmsError::Malformed(e.to_string())),
    }
}

/// Settings of an [`SmsClient`].
#[derive(Clone)]
pub struct SmsClientConfig {
    /// Base URL, e.g. [`DEFAULT_ENDPOINT`] or `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub key: AccessKey,
    /// `SignName` used for every message.
    pub sign_name: String,
    /// `TemplateCode` of the login-code template.
    pub template_code: String,
    pub connect_timeout: Duration,
    /// Bound on the whole call.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsClientConfig")
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .field("template_code", &self.template_code)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A `SendSms` client.
#[derive(Debug, Clone)]
pub struct SmsClient {
    config: SmsClientConfig,
    url: String,
    http: reqwest::Client,
}

impl SmsClient {
    /// A client for `config`; fails only when the HTTP client cannot be
    /// built (TLS setup).
    pub fn new(config: SmsClientConfig) -> Result<Self, SendSmsError> {
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| SendSmsError::Transport(e.to_string()))?;
        let url = format!("{}/", config.endpoint.trim_end_matches('/'));
        Ok(Self { config, url, http })
    }

    /// Sends one message to `phone_numbers` with the configured signature
    /// and template, `template_param` filling the template's variables.
    #[tracing::instrument(skip_all, err, fields(provider = "aliyun_sms"))]
    pub async fn send(
        &self,
        phone_numbers: &str,
        template_param: &str,
        out_id: Option<&str>,
    ) -> Result<SendSmsReceipt, SendSmsError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let req = SendSms {
            phone_numbers,
            sign_name: &self.config.sign_name,
            template_code: &self.config.template_code,
            template_param: Some(template_param),
            out_id,
        };
        let signed = sign_send_sms(&req, &self.config.key, now, &signature_nonce())?;
        let res = self
            .http
            .post(&self.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(signed.signed_query)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| self.transport(e))?;
        let receipt = parse_send_sms_response(status, &body)?;
        tracing::debug!(request_id = ?receipt.request_id, biz_id = ?receipt.biz_id, "SMS accepted");
        Ok(receipt)
    }

    fn transport(&self, err: reqwest::Error) -> SendSmsError {
        if err.is_timeout() {
            SendSmsError::Timeout(self.config.timeout)
        } else {
            SendSmsError::Transport(err.without_url().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pop::{canonicalized_query, pop_encode, rpc_signature, rpc_string_to_sign};
    use super::*;

    #[test]
    fn the_form_body_carries_every_parameter_and_a_verifiable_signature() {
        let key = AccessKey::new("testid", "testsecret");
        let req = SendSms {
            phone_numbers: "13800000000",
            sign_name: "阿里云短信测试",
            template_code: "SMS_154950909",
            template_param: Some(r#"{"code":"482913"}"#),
            out_id: None,
        };
        let signed = sign_send_sms(&req, &key, 1_700_000_000, "nonce-1").unwrap();
        let body = &signed.signed_query;
        for part in [
            "Action=SendSms",
            "Version=2017-05-25",
            "RegionId=cn-hangzhou",
            "PhoneNumbers=13800000000",
            "SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95",
            "TemplateCode=SMS_154950909",
            "TemplateParam=%7B%22code%22%3A%22482913%22%7D",
            "Timestamp=2023-11-14T22%3A13%3A20Z",
            "SignatureNonce=nonce-1",
            "Format=JSON",
        ] {
            assert!(body.contains(part), "{part} missing from {body}");
        }
        assert!(
            signed
                .string_to_sign
                .starts_with("POST&%2F&AccessKeyId%3Dtestid")
        );
        // What a gateway does: decode, drop Signature, re-sign, compare.
        let params: Vec<(String, String)> = body
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), percent_decode(v))
            })
            .filter(|(k, _)| k != "Signature")
            .collect();
        let sts = rpc_string_to_sign(Method::Post, &canonicalized_query(&params));
        let sig = rpc_signature("testsecret", &sts).unwrap();
        assert!(body.ends_with(&format!("&Signature={}", pop_encode(&sig))));
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ok_is_a_receipt_and_other_codes_in_http_200_are_errors() {
        let ok = br#"{"Code":"OK","Message":"OK","BizId":"9006197469364984^0","RequestId":"R1"}"#;
        let receipt = parse_send_sms_response(200, ok).unwrap();
        assert_eq!(receipt.biz_id.as_deref(), Some("9006197469364984^0"));
        assert_eq!(receipt.request_id.as_deref(), Some("R1"));

        for (code, kind) in [
            ("isv.BUSINESS_LIMIT_CONTROL", SendSmsErrorKind::Throttled),
            ("isv.MOBILE_NUMBER_ILLEGAL", SendSmsErrorKind::InvalidNumber),
            ("isv.DAY_LIMIT_CONTROL", SendSmsErrorKind::Failed),
            ("isv.AMOUNT_NOT_ENOUGH", SendSmsErrorKind::Failed),
        ] {
            let body = format!(r#"{{"Code":"{code}","Message":"m","RequestId":"R"}}"#);
            let err = parse_send_sms_response(200, body.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), kind, "{code}");
            assert_eq!(err.vendor_code(), Some(code));
        }
    }

    #[test]
    fn gateway_errors_and_odd_answers_are_classified() {
        let throttled = br#"{"RequestId":"R","HostId":"dysmsapi.aliyuncs.com","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#;
        let err = parse_send_sms_response(400, throttled).unwrap_err();
        assert_eq!(err.kind(), SendSmsErrorKind::Throttled);
        let sig = br#"{"RequestId":"R","Code":"SignatureDoesNotMatch","Message":"no"}"#;
        assert_eq!(
            parse_send_sms_response(400, sig).unwrap_err().kind(),
            SendSmsErrorKind::Failed
        );
        assert!(matches!(
            parse_send_sms_response(200, b"{}"),
            Err(SendSmsError::Malformed(_))
        ));
        assert!(matches!(
            parse_send_sms_response(502, b"<html>"),
            Err(SendSmsError::Malformed(_))
        ));
    }
}
