//! The checks [`Config::load`] runs before a configuration is used; each
//! error names the setting and the environment variable behind it.

use super::legacy::env_name_for;
use super::{Config, ConfigError};

pub(super) fn invalid(path: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path,
        var: env_name_for(path),
        message: message.into(),
    }
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        // An RTC token carries the AppId at a fixed width; another length
        // would mint tokens nobody can parse.
        if let Some(app_id) = &self.volcengine.app_id
            && (app_id.len() != 24 || !app_id.is_ascii())
        {
            return Err(invalid(
                "volcengine.app_id",
                "must be the 24-character RTC AppId",
            ));
        }
        if let Some(base) = &self.public_base_url {
            check_http_url("public_base_url", base)?;
        }
        self.validate_xiaozhi()?;
        if let Some(loc) = &self.redis.location {
            check_redis_url(loc)?;
        }
        if let Some(url) = &self.database.url {
            let u = url.expose();
            if !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || u.starts_with("sqlite:"))
            {
                return Err(invalid(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        if self.http.body_limit < 1024 {
            return Err(invalid("http.body_limit", "must be at least 1024 bytes"));
        }
        if self.ws.queue_capacity == 0 {
            return Err(invalid("ws.queue_capacity", "must be at least 1"));
        }
        if self.ws.ping_interval_secs == 0 {
            return Err(invalid("ws.ping_interval_secs", "must be at least 1"));
        }
        if self.ws.replay_len == 0 {
            return Err(invalid("ws.replay_len", "must be at least 1"));
        }
        if self.ws.replay_window_secs == 0 {
            return Err(invalid("ws.replay_window_secs", "must be at least 1"));
        }
        self.validate_auth()?;
        self.validate_ai()?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if !["huoshan", "aliyun", "tencent", "local"].contains(&self.audio.provider.as_str()) {
            return Err(invalid(
                "audio.provider",
                "must be one of huoshan, aliyun, tencent, local",
            ));
        }
        for (path, url) in [
            ("llm.base_url", &self.llm.base_url),
            ("volcengine.api_base_url", &self.volcengine.api_base_url),
            ("audio.huoshan.base_url", &self.audio.huoshan.base_url),
            (
                "audio.tencent.tts_endpoint",
                &self.audio.tencent.tts_endpoint,
            ),
            (
                "audio.tencent.asr_endpoint",
                &self.audio.tencent.asr_endpoint,
            ),
            ("aliyun.sms.endpoint", &self.aliyun.sms.endpoint),
            ("aliyun.nls.meta_endpoint", &self.aliyun.nls.meta_endpoint),
            ("aliyun.nls.gateway_url", &self.aliyun.nls.gateway_url),
            ("wechat.api_base_url", &self.wechat.api_base_url),
        ] {
            check_http_url(path, url)?;
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        for (path, value) in [
            ("auth.sms_code_ttl_secs", a.sms_code_ttl_secs),
            (
                "auth.sms_code_max_attempts",
                u64::from(a.sms_code_max_attempts),
            ),
            ("auth.admin_max_failures", u64::from(a.admin_max_failures)),
            ("auth.admin_lockout_secs", a.admin_lockout_secs),
            (
                "auth.device_signature_skew_secs",
                a.device_signature_skew_secs,
            ),
            ("aliyun.sms.timeout_secs", self.aliyun.sms.timeout_secs),
            ("wechat.timeout_secs", self.wechat.timeout_secs),
        ] {
            if value == 0 {
                return Err(invalid(path, "must be at least 1"));
            }
        }
        let l = &self.limits;
        for (path, limit) in [
            ("limits.mac_login_per_mac.window_secs", l.mac_login_per_mac),
            ("limits.mac_login_per_ip.window_secs", l.mac_login_per_ip),
            ("limits.rtc_token_per_mac.window_secs", l.rtc_token_per_mac),
            ("limits.rtc_token_per_ip.window_secs", l.rtc_token_per_ip),
            (
                "limits.sms_send_per_phone.window_secs",
                l.sms_send_per_phone,
            ),
            (
                "limits.sms_send_per_phone_daily.window_secs",
                l.sms_send_per_phone_daily,
            ),
            ("limits.sms_send_per_ip.window_secs", l.sms_send_per_ip),
            ("limits.sms_login_per_ip.window_secs", l.sms_login_per_ip),
            (
                "limits.wechat_login_per_ip.window_secs",
                l.wechat_login_per_ip,
            ),
            (
                "limits.admin_login_per_ip.window_secs",
                l.admin_login_per_ip,
            ),
            (
                "limits.card_scan_per_device.window_secs",
                l.card_scan_per_device,
            ),
        ] {
            if limit.enabled() && limit.window_secs == 0 {
                return Err(invalid(path, "must be at least 1 when max is set"));
            }
        }
        if self.aliyun.sms.code_param.trim().is_empty() {
            return Err(invalid("aliyun.sms.code_param", "must not be empty"));
        }
        Ok(())
    }

    fn validate_ai(&self) -> Result<(), ConfigError> {
        let max = match self.llm.provider.as_str() {
            "kimi" => 1.0,
            "openai" => 2.0,
            _ => return Err(invalid("llm.provider", "must be kimi or openai")),
        };
        if let Some(t) = self.llm.temperature
            && !(0.0..=max).contains(&t)
        {
            return Err(invalid(
                "llm.temperature",
                format!("must be within [0, {max}] for this provider"),
            ));
        }
        for (path, value) in [
            ("llm.connect_timeout_ms", self.llm.connect_timeout_ms),
            ("llm.first_byte_timeout_ms", self.llm.first_byte_timeout_ms),
            ("llm.idle_timeout_ms", self.llm.idle_timeout_ms),
            ("ai.sse_keep_alive_secs", self.ai.sse_keep_alive_secs),
            ("ai.max_message_chars", self.ai.max_message_chars as u64),
            ("ai.moderation_timeout_ms", self.ai.moderation_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(path, "must be at least 1"));
            }
        }
        if self.ai.refusal_message.trim().is_empty() {
            return Err(invalid("ai.refusal_message", "must not be empty"));
        }
        Ok(())
    }
}

fn check_http_url(path: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = url::Url::parse(value)
        .map(|u| matches!(u.scheme(), "http" | "https" | "ws" | "wss") && u.has_host())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(invalid(path, format!("{value:?} is not an http(s) URL")))
    }
}

/// Whether `url` is a channel URL the xiaozhi firmware parses as meant:
/// `ws[s]://host[:port]/path` with no other `:` (the firmware takes the
/// first `:` after the scheme for the port separator), no user info or
/// IPv6 literal, under 1000 bytes.
pub fn xiaozhi_url_ok(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
    else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    url.len() < 1000
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
        && path.starts_with('/')
        && !path.contains(':')
        && !path.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

impl Config {
    fn validate_xiaozhi(&self) -> Result<(), ConfigError> {
        let x = &self.xiaozhi;
        if let Some(url) = x
            .websocket_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            && !xiaozhi_url_ok(url)
        {
            return Err(invalid(
                "xiaozhi.websocket_url",
                "must be ws[s]://host[:port]/path with no other `:` (no user info, IPv6 literal or `:` in the path)",
            ));
        }
        if !(1..=3).contains(&x.protocol_version) {
            return Err(invalid("xiaozhi.protocol_version", "must be 1, 2 or 3"));
        }
        if ![8000, 12000, 16000, 24000, 48000].contains(&x.downlink_sample_rate) {
            return Err(invalid(
                "xiaozhi.downlink_sample_rate",
                "must be 8000, 12000, 16000, 24000 or 48000",
            ));
        }
        if x.activation_code_ttl_secs < 60 || x.challenge_ttl_secs < 60 {
            return Err(invalid(
                "xiaozhi.activation_code_ttl_secs",
                "activation codes and challenges must live at least 60 s",
            ));
        }
        Ok(())
    }
}

/// `redis://`, `rediss://`, `unix://` or `redis+unix://` for one server;
/// `redis+cluster://[auth@]host:port,host:port,...` (database 0) for a
/// Redis Cluster.
fn check_redis_url(loc: &str) -> Result<(), ConfigError> {
    const CLUSTER: &str = "redis+cluster://";
    let cluster = loc
        .get(..CLUSTER.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(CLUSTER));
    if cluster {
        let rest = &loc[CLUSTER.len()..];
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let nodes_ok = !hosts.is_empty()
            && hosts.split(',').all(|node| {
                url::Url::parse(&format!("redis://{}", node.trim())).is_ok_and(|u| {
                    u.host_str().is_some_and(|h| !h.is_empty()) && u.port().is_some()
                })
            });
        if !nodes_ok || !(path.is_empty() || path == "0") {
            return Err(invalid(
                "redis.location",
                "a cluster is redis+cluster://host:port,host:port,... (database 0 only)",
            ));
        }
        return Ok(());
    }
    let ok = url::Url::parse(loc)
        .map(|u| matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix"))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "redis.location",
            "must be a redis:// URL such as redis://127.0.0.1:6379/0, \
             or redis+cluster://host:port,host:port for a Redis Cluster",
        ))
    }
}

#[cfg(test)]
mod xiaozhi_url_tests {
    use super::xiaozhi_url_ok;

    #[test]
    fn channel_urls_must_parse_as_the_firmware_parses_them() {
        for ok in [
            "ws://192.168.1.5:8000/xiaozhi/v1/",
            "wss://toys.example.com/xiaozhi/v1/",
            "ws://lty.local/x",
        ] {
            assert!(xiaozhi_url_ok(ok), "{ok}");
        }
        for bad in [
            "http://a/x",
            "ws://a",
            "ws://user@a/x",
            "ws://[::1]:80/x",
            "ws://a/x?t=1:2",
            "ws://a:port/x",
            "ws://a:123456/x",
            "ws://:80/x",
        ] {
            assert!(!xiaozhi_url_ok(bad), "{bad}");
        }
    }
}
