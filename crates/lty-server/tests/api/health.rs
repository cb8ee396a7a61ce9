//! Liveness, readiness, metrics and request ids.

use serde_json::Value;

use crate::helpers::{
    CuttableProxy, assert_error, metric_value, required_database_url, required_redis_url,
    socket_of, spawn_app, spawn_app_with, test_redis_url,
};

#[tokio::test]
async fn healthz_answers_ok_with_the_version() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readyz_reports_each_configured_backend_ok() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    if test_redis_url().is_some() {
        assert_eq!(body["checks"]["redis"], "ok");
    } else {
        assert!(body["checks"].get("redis").is_none());
    }
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (PostgreSQL + Redis leg)"]
async fn readyz_fails_naming_redis_when_redis_is_unreachable() {
    let redis = required_redis_url();
    let proxy = CuttableProxy::start(socket_of(&redis)).await;
    let app = spawn_app_with(|c| {
        c.redis.location = Some(format!("redis://{}/0", proxy.addr));
        c.redis.timeout_secs = 1;
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    proxy.cut();
    let body = assert_error(app.get("/readyz").await, 503, "not_ready").await;
    assert_eq!(body["details"]["down"], serde_json::json!(["redis"]));
    assert_eq!(body["details"]["checks"]["database"], "ok");
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL (PostgreSQL + Redis leg)"]
async fn readyz_fails_naming_the_database_when_postgres_is_unreachable() {
    let admin = required_database_url();
    let proxy = CuttableProxy::start(socket_of(&admin)).await;
    let app = spawn_app_with(|c| {
        let real = c.database.url.as_ref().unwrap().expose().to_owned();
        let mut url = url::Url::parse(&real).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        c.database.url = Some(lty_server::config::Secret::new(String::from(url)));
        c.database.acquire_timeout_secs = 1;
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    proxy.cut();
    let body = assert_error(app.get("/readyz").await, 503, "not_ready").await;
    assert_eq!(body["details"]["down"][0], "database");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    let healthz = [("method", "GET"), ("route", "/healthz"), ("status", "200")];
    let profile_401 = [
        ("method", "GET"),
        ("route", "/api/user/profile/"),
        ("status", "401"),
    ];
    // Latency is a histogram (buckets, not a summary's quantiles).
    let healthz_all_bucket = [
        ("method", "GET"),
        ("route", "/healthz"),
        ("status", "200"),
        ("le", "+Inf"),
    ];
    let requests_before = app.metric("lty_http_requests_total", &healthz).await;
    let timed_before = app
        .metric(
            "lty_http_request_duration_seconds_bucket",
            &healthz_all_bucket,
        )
        .await;
    let refused_before = app.metric("lty_http_requests_total", &profile_401).await;
    app.get("/healthz").await;
    app.get("/api/user/profile/").await; // 401
    // A socket open while /metrics is read: the gauge counts at least it.
    let user = app.user_with_device("kid", "02:00:00:00:21:01").await;
    let token = app.mac_login("02:00:00:00:21:01").await;
    let _socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    let value = |name, labels: &[(&str, &str)]| metric_value(&text, name, labels);
    // Other tests share the recorder: at least our requests were counted.
    assert!(
        value("lty_http_requests_total", &healthz) >= requests_before + 1.0,
        "{text}"
    );
    assert!(
        value(
            "lty_http_request_duration_seconds_bucket",
            &healthz_all_bucket
        ) >= timed_before + 1.0,
        "{text}"
    );
    assert!(
        value("lty_http_requests_total", &profile_401) >= refused_before + 1.0,
        "{text}"
    );
    assert_eq!(
        value("lty_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0,
        "{text}"
    );
    assert!(value("lty_ws_open_connections", &[]) >= 1.0, "{text}");
}

#[test]
fn a_metric_is_read_by_its_exact_label_set_and_is_zero_when_absent() {
    let text = "# TYPE lty_x_total counter\n\
        lty_x_total{a=\"1\",b=\"q\\\"t\"} 3\n\
        lty_x_total{a=\"1\"} 5\n\
        lty_x_total_more 7\n\
        lty_y 2.5 1700000000\n";
    assert_eq!(metric_value(text, "lty_x_total", &[("a", "1")]), 5.0);
    assert_eq!(
        metric_value(text, "lty_x_total", &[("b", "q\"t"), ("a", "1")]),
        3.0
    );
    assert_eq!(metric_value(text, "lty_x_total", &[]), 0.0);
    assert_eq!(metric_value(text, "lty_x_total", &[("a", "2")]), 0.0);
    assert_eq!(metric_value(text, "lty_y", &[]), 2.5);
    assert_eq!(metric_value(text, "lty_z", &[]), 0.0);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_supplied_one_is_kept() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let other = app.get("/nope").await;
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "from-the-client-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "from-the-client-42");
}
