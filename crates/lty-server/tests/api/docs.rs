//! `/openapi.json`, `/swagger/` and `/redoc/`: served from the binary, in
//! step with the committed `openapi.json`.

use serde_json::Value;

use crate::helpers::spawn_app;

fn committed_openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let text = std::fs::read_to_string(path).expect("openapi.json at the repo root");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

#[tokio::test]
async fn the_committed_openapi_json_matches_the_code() {
    let generated: Value =
        serde_json::from_str(&lty_server::http::openapi().to_json().unwrap()).unwrap();
    assert!(
        committed_openapi() == generated,
        "openapi.json is out of date: run `cargo run -p lty-server -- openapi > openapi.json`"
    );
}

#[tokio::test]
async fn openapi_json_is_served_and_documents_every_route() {
    let app = spawn_app().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, committed_openapi());
    let paths = served["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/user/mac-login/",
        "/api/user/profile/",
        "/api/user/logout/",
    ] {
        assert!(paths.contains_key(p), "{p} missing from openapi.json");
    }
    assert!(paths["/api/user/profile/"].get("patch").is_some());
}

/// Every `src="..."` and `href="..."` in `html`.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    out
}

async fn assert_page_is_self_contained(app: &crate::helpers::TestApp, page: &str) {
    let res = app.get(page).await;
    assert_eq!(res.status(), 200, "{page}");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    let refs = references(&html);
    assert!(!refs.is_empty(), "{page} references nothing?");
    for r in refs {
        assert!(
            !r.contains("://") && !r.starts_with("//"),
            "{page} loads {r} from outside the binary"
        );
        let url = if r.starts_with('/') {
            r.clone()
        } else {
            format!("{page}{}", r.trim_start_matches("./"))
        };
        let res = app.get(&url).await;
        assert_eq!(
            res.status(),
            200,
            "{page} references {url}, which is not served"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app().await;
    assert_page_is_self_contained(&app, "/swagger/").await;
    let init = app
        .get("/swagger/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}

#[tokio::test]
async fn redoc_is_served_from_the_binary() {
    let app = spawn_app().await;
    assert_page_is_self_contained(&app, "/redoc/").await;
    let html = app.get("/redoc/").await.text().await.unwrap();
    assert!(html.contains(r#"spec-url="/openapi.json""#));
    let res = app.get("/redoc").await;
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/redoc/");
}

/// The operations of `doc` as `(method path, operation)`.
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("responses").is_some() {
                out.push((format!("{method} {path}"), op));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_operation_documents_the_errors_the_shared_layers_give() {
    let doc = committed_openapi();
    let ops = operations(&doc);
    assert!(ops.len() > 90, "{} operations", ops.len());
    for (name, op) in ops {
        let responses = op["responses"].as_object().unwrap();
        let has = |status: &str| responses.contains_key(status);
        if op.get("requestBody").is_some() {
            assert!(has("400") && has("415"), "{name}: 400 and 415 for its body");
        }
        if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
            assert!(has("400"), "{name}: 400 for its parameters");
        }
        let secured = op["security"]
            .as_array()
            .is_some_and(|reqs| reqs.iter().any(|r| !r.as_object().unwrap().is_empty()));
        if secured {
            assert!(
                has("401") && has("403"),
                "{name}: 401 and 403 for its token"
            );
        }
    }
}

#[tokio::test]
async fn schemas_of_the_same_name_are_not_confused() {
    // The operator device list once named the family's device list schema,
    // whose items need an `id` the operator's do not have.
    let doc = committed_openapi();
    let list = &doc["paths"]["/api/v1/admin/devices/"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["$ref"];
    let name = list.as_str().unwrap().rsplit('/').next().unwrap();
    let schema = &doc["components"]["schemas"][name];
    let item = schema["allOf"][1]["properties"]["devices"]["items"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let props = doc["components"]["schemas"][item]["properties"]
        .as_object()
        .unwrap();
    assert!(
        props.contains_key("binding") && props.contains_key("xiaozhi"),
        "{item}"
    );
    // Paging parameters state the limits the server enforces.
    let params = doc["paths"]["/api/v1/admin/devices/"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let page_size = params.iter().find(|p| p["name"] == "page_size").unwrap();
    assert_eq!(page_size["schema"]["maximum"], 100);
}
