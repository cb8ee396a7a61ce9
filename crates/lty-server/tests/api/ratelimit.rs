//! Rate limits on mac-login: per MAC and per client IP, with `Retry-After`.

use lty_server::config::RateLimit;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

async fn mac_login(app: &TestApp, mac: &str, forwarded: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/user/mac-login/"))
        .json(&json!({ "mac_address": mac }));
    if let Some(f) = forwarded {
        req = req.header("X-Forwarded-For", f);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn mac_login_is_limited_per_mac_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.limits.mac_login_per_mac = RateLimit {
            max: 3,
            window_secs: 60,
        };
    })
    .await;
    app.user_with_device("a", "02:00:00:00:aa:01").await;
    app.user_with_device("b", "02:00:00:00:aa:02").await;
    for _ in 0..3 {
        assert_eq!(
            mac_login(&app, "02:00:00:00:aa:01", None).await.status(),
            200
        );
    }
    // Any spelling of the MAC counts against the same budget.
    let res = mac_login(&app, "02-00-00-00-AA-01", None).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let err = assert_error(res, 429, "rate_limited").await;
    assert_eq!(err["details"]["retry_after"], retry);
    assert_eq!(
        mac_login(&app, "02:00:00:00:aa:02", None).await.status(),
        200
    );
}

#[tokio::test]
async fn mac_login_is_limited_per_ip_unless_the_client_is_loopback() {
    let strict = spawn_app_with(|c| {
        c.limits.exempt_loopback = false;
        c.limits.mac_login_per_ip = RateLimit {
            max: 2,
            window_secs: 60,
        };
    })
    .await;
    for i in 0..2 {
        let res = mac_login(&strict, &format!("02:00:00:00:ab:{i:02x}"), None).await;
        assert_error(res, 404, "device_not_bound").await;
    }
    assert_error(
        mac_login(&strict, "02:00:00:00:ab:09", None).await,
        429,
        "rate_limited",
    )
    .await;

    // Exempt only when switched on (load tests from this machine).
    let exempt = spawn_app_with(|c| {
        c.limits.exempt_loopback = true;
        c.limits.mac_login_per_ip = RateLimit {
            max: 2,
            window_secs: 60,
        };
    })
    .await;
    for i in 0..5 {
        let res = mac_login(&exempt, &format!("02:00:00:00:ab:{i:02x}"), None).await;
        assert_error(res, 404, "device_not_bound").await;
    }
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let behind_proxy = spawn_app_with(|c| {
        c.limits.trusted_proxies = "127.0.0.1".parse().unwrap();
        c.limits.mac_login_per_ip = RateLimit {
            max: 1,
            window_secs: 60,
        };
    })
    .await;
    let a = Some("203.0.113.5");
    assert_error(
        mac_login(&behind_proxy, "02:00:00:00:ac:01", a).await,
        404,
        "device_not_bound",
    )
    .await;
    assert_error(
        mac_login(&behind_proxy, "02:00:00:00:ac:02", a).await,
        429,
        "rate_limited",
    )
    .await;
    let b = Some("198.51.100.1, 203.0.113.6");
    assert_error(
        mac_login(&behind_proxy, "02:00:00:00:ac:03", b).await,
        404,
        "device_not_bound",
    )
    .await;

    // Without a trusted proxy the header is ignored: the peer (loopback,
    // exempt here) is the client.
    let direct = spawn_app_with(|c| {
        c.limits.exempt_loopback = true;
        c.limits.mac_login_per_ip = RateLimit {
            max: 1,
            window_secs: 60,
        };
    })
    .await;
    for i in 0..3 {
        let res = mac_login(&direct, &format!("02:00:00:00:ac:{i:02x}"), a).await;
        assert_error(res, 404, "device_not_bound").await;
    }
}

#[tokio::test]
async fn default_limits_allow_120_logins_a_minute_per_mac() {
    // The benchmark drives ~5000 req/s across 5000 MACs from loopback for
    // 23 s: about 23 logins per MAC, well under the default.
    let app = spawn_app().await;
    app.user_with_device("bench", "02:00:00:00:ad:01").await;
    for _ in 0..120 {
        let res = mac_login(&app, "02:00:00:00:ad:01", None).await;
        assert_eq!(res.status(), 200);
    }
    let res = mac_login(&app, "02:00:00:00:ad:01", None).await;
    assert_error(res, 429, "rate_limited").await;
    let other: Value = mac_login(&app, "02:00:00:00:ad:02", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["code"], "device_not_bound");
}

#[tokio::test]
async fn rtc_token_by_mac_is_limited_per_mac_and_per_ip() {
    let app = spawn_app_with(|c| {
        c.volcengine.app_id = Some("0123456789abcdef01234567".into());
        c.volcengine.app_key = Some(lty_server::config::Secret::new("k"));
        c.limits.exempt_loopback = false;
        c.limits.rtc_token_per_mac = RateLimit {
            max: 2,
            window_secs: 60,
        };
        c.limits.rtc_token_per_ip = RateLimit {
            max: 4,
            window_secs: 60,
        };
    })
    .await;
    app.user_with_device("a", "02:00:00:00:ac:01").await;
    let rtc = |mac: &'static str| {
        app.client
            .post(app.url(&format!(
                "/api/device/rtc-token/get_by_mac/?mac_address={mac}"
            )))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(rtc("02:00:00:00:ac:01").await.unwrap().status(), 200);
    }
    let res = rtc("02:00:00:00:ac:01").await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "rate_limited").await;
    // Guessing other MACs from the same address runs into the IP limit.
    assert_error(
        rtc("02:00:00:00:ac:02").await.unwrap(),
        404,
        "device_not_bound",
    )
    .await;
    assert_error(rtc("02:00:00:00:ac:03").await.unwrap(), 429, "rate_limited").await;
}
