//! The operator console in a real headless Chromium (WebDriver): the
//! operator's main flow — log in with the keyboard, find a family by the
//! MAC on a device's sticker, see its device online, grant a month of a
//! plan, disable and re-enable the account, make a 100-card batch and
//! download its ZIP — then editing a plan, stopping a voice session and
//! reading all of it in the audit log; refusals (wrong password, a POST
//! without its CSRF token, an operator trying a superadmin action). Every
//! page is screenshotted at 1280 px and checked for horizontal overflow,
//! browser errors and unlabelled inputs. Cookie attributes and the lockout
//! are checked over plain HTTP.

use std::io::Read as _;
use std::time::Duration;

use lty_core::MacAddress;
use lty_core::admin::AdminRole;
use lty_server::app::devices::SeenRecorder;
use lty_server::ws::protocol::last_seen_key;
use lty_store::sort::{AuditSort, SortKey};
use serde_json::{Value, json};

use crate::admin_api::volcengine;
use crate::fakes::volcengine::FakeVolcengine;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::subscriptions::{admin_token, create_plan};
use crate::webdriver::{Browser, ENTER, TAB};

const MAC: &str = "a4:cf:12:00:be:01";
const PASSWORD: &str = "correct horse battery staple";

/// Creates an operator account `username` with `role`.
async fn operator(app: &TestApp, username: &str, role: AdminRole) {
    lty_server::app::admin::create_admin(&app.state.db, username, PASSWORD, role)
        .await
        .unwrap();
}

/// Logs in through the form with the keyboard only: the username field has
/// the focus, Tab moves to the password, Enter submits.
async fn log_in(b: &Browser, app: &TestApp, username: &str) {
    b.goto(&app.url("/console/login")).await;
    b.find("#username").await;
    let focused = b.eval("return document.activeElement.id;", json!([])).await;
    assert_eq!(focused, "username", "the login form starts on the username");
    b.keys(username).await;
    b.keys(TAB).await;
    let focused = b.eval("return document.activeElement.id;", json!([])).await;
    assert_eq!(focused, "password", "Tab goes from username to password");
    b.keys(PASSWORD).await;
    b.keys(ENTER).await;
    b.find("header .admin").await;
}

/// The audit actions whose target is `target_type`, oldest first.
async fn audit_actions(app: &TestApp, target_type: &str) -> Vec<String> {
    let filter = lty_store::audit::AuditFilter {
        target_type: Some(target_type.into()),
        ..Default::default()
    };
    let page = app
        .state
        .db
        .audit_entries(&filter, <AuditSort as SortKey>::DEFAULT, 0, 100)
        .await
        .unwrap();
    let mut actions: Vec<String> = page.items.into_iter().map(|e| e.action).collect();
    actions.reverse();
    actions
}

#[tokio::test]
async fn an_operator_finds_a_family_by_mac_grants_a_plan_and_makes_cards() {
    let app = spawn_app().await;
    let boss = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &boss, "premium", 200).await;
    let uid = app.user_with_device("family_wang", MAC).await;
    let mac = MacAddress::parse(MAC).unwrap();
    let now = chrono::Utc::now().timestamp().to_string();
    // Seen as its socket records it: last seen and the online index.
    SeenRecorder::new(&mac).touch(&app.state).await;
    let conv = app
        .state
        .db
        .create_conversation(uid, None, "恐龙")
        .await
        .unwrap();
    for (role, text) in [
        (lty_core::chat::Role::User, "给我讲讲恐龙"),
        (lty_core::chat::Role::Assistant, "很久很久以前……"),
    ] {
        app.state
            .db
            .add_message(lty_core::chat::NewMessage {
                conversation_id: conv.id,
                role,
                content: text.into(),
                incomplete: false,
                moderated: false,
                usage: None,
            })
            .await
            .unwrap();
    }
    let badge = app
        .state
        .db
        .create_achievement(lty_store::achievements::NewAchievement {
            code: "story_lover".into(),
            name: "小小故事家".into(),
            description: String::new(),
            icon: None,
            event_kind: "card_scanned".into(),
            threshold: 3,
            rule: lty_core::achievement::AchievementRule::Total,
        })
        .await
        .unwrap();
    app.state
        .db
        .unlock_achievement(uid, badge.id, chrono::Utc::now())
        .await
        .unwrap();
    operator(&app, "xiaoli", AdminRole::Operator).await;

    let b = Browser::start().await;
    b.goto(&app.url("/console/users")).await;
    assert!(
        b.url().await.contains("/console/login"),
        "pages need a session"
    );
    b.check_page("login").await;
    assert_eq!(
        b.eval("return document.documentElement.lang;", json!([]))
            .await,
        "zh-CN"
    );
    log_in(&b, &app, "xiaoli").await;
    b.wait_text("main h1", "运营概览").await;
    let online_tile = "return Array.prototype.filter.call(document.querySelectorAll('.tile'), function (t) { return t.querySelector('.label').textContent === '当前在线设备'; }).map(function (t) { return t.querySelector('.value').textContent; });";
    assert_eq!(b.eval(online_tile, json!([])).await, json!(["1"]));
    b.check_page("dashboard").await;

    // The session cookie cannot be read by scripts and stays on this site.
    let cookie = b.cookie("lty_console").await.expect("session cookie");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(b.eval("return document.cookie;", json!([])).await, "");

    // The MAC on the sticker, typed in upper case with dashes.
    b.click("header nav a[href='/console/users']").await;
    b.find("#q").await;
    b.check_page("users").await;
    b.keys(&MAC.to_uppercase().replace(':', "-")).await;
    b.keys(ENTER).await;
    b.wait_text("main h1", "family_wang").await;
    assert!(b.url().await.ends_with(&format!("/console/users/{uid}")));
    let row = b.text(&format!("tr[data-mac='{MAC}']")).await;
    assert!(row.contains("在线"), "the device shows online: {row}");
    b.wait_text("#achievements", "小小故事家").await;
    b.check_page("user").await;
    // The same page on a phone: nothing wider than the screen.
    b.resize(390, 844).await;
    b.goto(&b.url().await).await;
    b.find("#grant").await;
    b.check_page("user-phone").await;
    b.resize(1280, 900).await;
    b.goto(&b.url().await).await;

    // Conversations, read-only and audited.
    b.click("#conversations").await;
    b.find("#conversations").await;
    b.check_page("conversations").await;
    b.click(&format!("a[href='/console/conversations/{}']", conv.id))
        .await;
    b.wait_text("#messages", "给我讲讲恐龙").await;
    b.wait_text("#messages", "很久很久以前").await;
    b.check_page("conversation").await;
    let conv_audit = audit_actions(&app, "conversation").await;
    assert_eq!(conv_audit, ["conversation.view"]);
    b.goto(&app.url(&format!("/console/users/{uid}"))).await;

    // A month of the plan, after a confirmation that names it.
    b.eval(
        "document.getElementById('plan_id').value = arguments[0];",
        json!([plan.to_string()]),
    )
    .await;
    b.type_into("#days", "30", true).await;
    b.click("#grant").await;
    b.wait_text("main .confirm", "Premium").await;
    b.check_page("user-grant-confirm").await;
    b.click("#confirm").await;
    b.wait_text("main .flash.ok", "套餐已赠送").await;
    b.wait_text("#plan", "premium").await;

    // Disable, then enable again, each confirmed.
    b.type_into("#reason", "家长申请", false).await;
    b.click("#disable").await;
    b.wait_text("main .confirm", "家长申请").await;
    b.click("#confirm").await;
    b.wait_text("#account-state", "已停用").await;
    assert!(!app.state.db.user(uid).await.unwrap().unwrap().is_active);
    b.click("#enable").await;
    b.click("#confirm").await;
    b.wait_text("#account-state", "正常").await;
    assert!(app.state.db.user(uid).await.unwrap().unwrap().is_active);

    // A batch of 100 membership cards for a shop, then its ZIP.
    b.click("header nav a[href='/console/cards']").await;
    b.find("#create-batch").await;
    b.check_page("cards").await;
    b.eval(
        "document.getElementById('plan_id').value = arguments[0];",
        json!([plan.to_string()]),
    )
    .await;
    b.type_into("#notes", "朝阳门店", false).await;
    b.click("#create-batch button[type=submit]").await;
    b.wait_text("main .flash.ok", "卡片已生成").await;
    b.wait_text("#count", "100").await;
    b.wait_text("main dl.facts", "Premium (premium)").await;
    b.check_page("card-batch").await;
    let href = b
        .eval(
            "return document.getElementById('download-zip').href;",
            json!([]),
        )
        .await;
    let session = b.cookie("lty_console").await.unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .get(href.as_str().unwrap())
        .header("cookie", format!("lty_console={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut pngs = 0;
    let mut csv = String::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let name = file.name().unwrap().into_owned();
        if name.ends_with(".png") {
            pngs += 1;
        } else if name.ends_with(".csv") {
            file.read_to_string(&mut csv).unwrap();
        }
    }
    assert_eq!(pngs, 100, "one QR image per card");
    assert_eq!(csv.lines().count(), 101, "a header and 100 codes");
    // Without the session the download is refused.
    let res = app.client.get(href.as_str().unwrap()).send().await.unwrap();
    assert_eq!(res.status(), 303);

    // Every step is in the audit log, through the same entries as the API.
    let user_actions = audit_actions(&app, "user").await;
    for action in [
        "user.view",
        "subscription.grant",
        "user.disable",
        "user.enable",
        "conversation.list",
    ] {
        assert!(
            user_actions.iter().any(|a| a == action),
            "{action} audited: {user_actions:?}"
        );
    }
    assert_eq!(
        audit_actions(&app, "card_batch").await,
        ["card_batch.create", "card_batch.export"]
    );
    b.click("header nav a[href='/console/audit']").await;
    b.find("#audit").await;
    b.check_page("audit").await;
    let log = b.text("#audit").await;
    for action in [
        "user.disable",
        "user.enable",
        "subscription.grant",
        "card_batch.export",
    ] {
        assert!(log.contains(action), "{action} on the audit page");
    }
    b.type_into("#action", "user.disable", false).await;
    b.keys(ENTER).await;
    b.wait_text("main .pager", "共 1").await;

    // The device list follows the online state without a reload.
    app.state.cache.delete(&last_seen_key(&mac)).await.unwrap();
    b.click("header nav a[href='/console/devices']").await;
    b.find(&format!("#devices tr[data-mac='{MAC}'] .badge.off"))
        .await;
    b.check_page("devices").await;
    b.eval("window.__sameDocument = true;", json!([])).await;
    app.state
        .cache
        .set(&last_seen_key(&mac), &now, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    b.find(&format!("#devices tr[data-mac='{MAC}'] .badge.ok"))
        .await;
    assert_eq!(
        b.eval("return window.__sameDocument === true;", json!([]))
            .await,
        true,
        "updated in place, not reloaded"
    );
    b.click(&format!(
        "form[action='/console/devices/{MAC}/push-test'] button"
    ))
    .await;
    b.wait_text("main .flash.ok", "设备操作已完成").await;
    assert_eq!(audit_actions(&app, "device").await, ["device.push_test"]);

    // Logging out ends the admin session itself.
    b.click("header form[action='/console/logout'] button")
        .await;
    b.find("#username").await;
    assert!(
        app.state
            .tokens
            .resolve(lty_core::token::TokenKind::Admin, &session)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_superadmin_edits_a_plan_and_stops_a_voice_session_in_english() {
    let fake = FakeVolcengine::start().await;
    let app = spawn_app_with(|c| volcengine(c, &fake)).await;
    let boss = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &boss, "premium", 200).await;
    app.user_with_device("family", MAC).await;
    let device = app.mac_login(MAC).await;
    let res = app
        .client
        .post(app.url("/api/device/voice-chat/start/"))
        .bearer_auth(&device)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let task = res.json::<Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    operator(&app, "boss", AdminRole::Superadmin).await;

    let b = Browser::start().await;
    log_in(&b, &app, "boss").await;
    b.click("header .who a[hreflang='en']").await;
    b.wait_text("main h1", "Overview").await;

    b.goto(&app.url("/console/plans")).await;
    b.find("#plans").await;
    b.check_page("plans").await;
    b.click(&format!("a[href='/console/plans/{plan}']")).await;
    b.find("#edit-plan").await;
    b.check_page("plan-edit").await;
    b.type_into("#name", "Premium Plus", true).await;
    b.type_into("#daily_ai_messages", "500", true).await;
    b.click("#save").await;
    b.wait_text("main .flash.ok", "Plan saved").await;
    b.wait_text("#plans tr[data-code='premium'] .name", "Premium Plus")
        .await;
    let saved = app.state.db.plan(plan).await.unwrap().unwrap();
    assert_eq!(saved.name, "Premium Plus");
    assert_eq!(saved.limits.daily_ai_messages, 500);

    // Personas and achievement definitions, created, edited and retired.
    b.click("nav.range a[href='/console/personas']").await;
    b.find("form[action='/console/personas']").await;
    b.type_into("#slug", "storyteller", false).await;
    b.type_into("#name", "Storyteller", false).await;
    b.type_into("#system_prompt", "You tell short stories.", false)
        .await;
    b.click("form[action='/console/personas'] button[type=submit]")
        .await;
    b.wait_text("main .flash.ok", "Saved").await;
    b.wait_text("#personas tr[data-slug='storyteller']", "Storyteller")
        .await;
    b.check_page("personas").await;
    b.goto(&app.url("/console/achievements")).await;
    b.find("form[action='/console/achievements']").await;
    b.type_into("#code", "story_lover", false).await;
    b.type_into("#event_kind", "card_scanned", false).await;
    b.type_into("#name", "Story lover", false).await;
    b.type_into("#threshold", "3", true).await;
    b.click("form[action='/console/achievements'] button[type=submit]")
        .await;
    b.wait_text("main .flash.ok", "Saved").await;
    b.check_page("achievements").await;
    b.click("#achievements tr[data-code='story_lover'] a").await;
    b.type_into("#threshold", "5", true).await;
    b.check_page("achievement-edit").await;
    b.click("#save").await;
    b.wait_text("#achievements tr[data-code='story_lover']", "\t5\t")
        .await;
    b.click("#achievements tr[data-code='story_lover'] a").await;
    b.click("#retire").await;
    b.wait_text("#achievements tr[data-code='story_lover']", "\tno\t")
        .await;
    assert_eq!(
        audit_actions(&app, "achievement").await,
        [
            "achievement.create",
            "achievement.update",
            "achievement.deactivate"
        ]
    );
    assert_eq!(audit_actions(&app, "persona").await, ["persona.create"]);

    // Firmware releases: retired and offered again.
    let release = app
        .state
        .db
        .create_firmware_release(
            lty_core::xiaozhi::NewFirmwareRelease {
                board: "bread-compact-wifi".into(),
                version: "1.6.2".into(),
                blob_key: "firmware/test.bin".into(),
                size: 1024,
                sha256: "0".repeat(64),
                notes: None,
                created_by: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    b.click("header nav a[href='/console/firmware']").await;
    b.find("#firmware").await;
    b.check_page("firmware").await;
    b.click(&format!(
        "form[action='/console/firmware/{}/state'] button",
        release.id
    ))
    .await;
    b.wait_text("main .flash.ok", "Saved").await;
    b.wait_text("#firmware", "Offer again").await;
    assert_eq!(audit_actions(&app, "firmware").await, ["firmware.update"]);

    b.goto(&app.url("/console/voice-sessions")).await;
    b.find(&format!("tr[data-task='{task}']")).await;
    b.check_page("voice-sessions").await;
    b.click(&format!("tr[data-task='{task}'] button")).await;
    b.accept_dialog().await;
    b.wait_text("main .flash.ok", "Voice session stopped").await;
    assert!(
        b.try_find(&format!("tr[data-task='{task}']"))
            .await
            .is_none()
    );
    assert_eq!(fake.calls_of("StopVoiceChat").len(), 1);

    assert_eq!(
        audit_actions(&app, "plan").await.last().unwrap(),
        "plan.update"
    );
    assert_eq!(
        audit_actions(&app, "voice_session").await,
        ["voice_session.stop"]
    );
    b.goto(&app.url("/console/audit?target_type=plan")).await;
    b.wait_text("#audit", "plan.update").await;
    b.goto(&app.url("/console/audit?target_type=voice_session"))
        .await;
    b.wait_text("#audit", "voice_session.stop").await;
}

#[tokio::test]
async fn wrong_passwords_csrf_less_posts_and_operators_overreaching_are_refused() {
    let app = spawn_app().await;
    let boss = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &boss, "premium", 200).await;
    let uid = app.user_with_device("family", MAC).await;
    operator(&app, "xiaoli", AdminRole::Operator).await;

    let b = Browser::start().await;
    b.goto(&app.url("/console/login")).await;
    b.type_into("#username", "xiaoli", false).await;
    b.type_into("#password", "not the password", false).await;
    b.click("form button[type=submit]").await;
    b.wait_text(".flash.error", "用户名或密码错误").await;
    b.check_page("login-failed").await;
    assert!(b.cookie("lty_console").await.is_none());

    log_in(&b, &app, "xiaoli").await;

    // A form whose CSRF token was removed is refused, and nothing happens.
    b.goto(&app.url(&format!("/console/users/{uid}"))).await;
    b.find("#disable").await;
    b.eval(
        "document.querySelectorAll('input[name=_csrf]').forEach(function (e) { e.remove(); });",
        json!([]),
    )
    .await;
    b.click("#disable").await;
    b.wait_text("main", "表单已过期").await;
    assert!(app.state.db.user(uid).await.unwrap().unwrap().is_active);
    // A wrong token too.
    b.goto(&app.url(&format!("/console/users/{uid}"))).await;
    b.eval(
        "document.querySelectorAll('input[name=_csrf]').forEach(function (e) { e.value = 'x' + e.value.slice(1); });",
        json!([]),
    )
    .await;
    b.click("#disable").await;
    b.wait_text("main", "表单已过期").await;
    assert!(app.state.db.user(uid).await.unwrap().unwrap().is_active);

    // Operators may not change plans: the API's policy answers.
    b.goto(&app.url(&format!("/console/plans/{plan}"))).await;
    b.type_into("#name", "Cheap", true).await;
    b.click("#save").await;
    b.wait_text("main", "您的角色无权执行此操作").await;
    b.check_page("forbidden").await;
    assert_eq!(
        app.state.db.plan(plan).await.unwrap().unwrap().name,
        "Premium"
    );
    assert!(
        !audit_actions(&app, "plan")
            .await
            .contains(&"plan.update".to_owned())
    );
}

#[tokio::test]
async fn console_cookies_are_strict_and_secure_behind_tls_and_logins_lock_out() {
    let app = spawn_app_with(|c| c.public_base_url = Some("https://lty.example".into())).await;
    operator(&app, "xiaoli", AdminRole::Operator).await;
    let form = app
        .client
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let pre = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(pre.contains("HttpOnly") && pre.contains("SameSite=Strict") && pre.contains("Secure"));
    let csrf = pre
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let login = |password: &'static str, token: Option<String>| {
        let csrf = csrf.clone();
        let app = &app;
        async move {
            let mut fields = vec![
                ("username", "xiaoli".to_owned()),
                ("password", password.to_owned()),
            ];
            if let Some(t) = token {
                fields.push(("_csrf", t));
            }
            app.client
                .post(app.url("/console/login"))
                .header("cookie", format!("lty_console_login={csrf}"))
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    // The login form needs its double-submit token.
    assert_eq!(login(PASSWORD, None).await.status(), 403);
    let ok = login(PASSWORD, Some(csrf.clone())).await;
    assert_eq!(ok.status(), 303);
    let session = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(session.starts_with("lty_console="));
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    // Five wrong passwords lock the account, as for the API.
    for _ in 0..5 {
        login("wrong password!", Some(csrf.clone())).await;
    }
    let locked = login(PASSWORD, Some(csrf.clone())).await;
    assert_eq!(locked.status(), 429);
    assert!(locked.text().await.unwrap().contains("锁定"));
    // Unknown sessions go to the login page, keeping where they were going.
    let res = app
        .client
        .get(app.url("/console/cards"))
        .header("cookie", "lty_console=0000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/console/login?next=%2Fconsole%2Fcards"
    );
}

/// The texts of the column that carries `aria-sort`, top to bottom.
const SORTED_COLUMN: &str = r#"
var th = document.querySelector('th[aria-sort]');
var i = Array.prototype.indexOf.call(th.parentNode.children, th);
return Array.prototype.map.call(th.closest('table').querySelectorAll('tbody tr'),
  function (r) { return r.children[i].textContent.trim(); });
"#;

/// The sorted column's texts, checked to be in order (numbers by value).
async fn sorted_column(b: &Browser, descending: bool) -> Vec<String> {
    let cells: Vec<String> =
        serde_json::from_value(b.eval(SORTED_COLUMN, json!([])).await).unwrap();
    let mut expected = cells.clone();
    if cells.iter().all(|c| c.parse::<f64>().is_ok()) {
        expected.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap()
                .total_cmp(&b.parse::<f64>().unwrap())
        });
    } else {
        expected.sort();
    }
    if descending {
        expected.reverse();
    }
    assert_eq!(cells, expected, "rows in the order of their header");
    cells
}

/// Waits up to 10 s for `script` to return `expected`.
async fn wait_eval(b: &Browser, script: &str, expected: Value) {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = b.eval(script, json!([])).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{script} returned {last}, not {expected}");
}

/// Clicks the header of `key` and waits for it to be the sorted column in
/// `direction` (`ascending` or `descending`).
async fn sort_by(b: &Browser, key: &str, direction: &str) {
    b.click(&format!("th a[data-sort='{key}']")).await;
    b.find(&format!("th[aria-sort='{direction}'] a[data-sort='{key}']"))
        .await;
}

#[tokio::test]
async fn every_list_sorts_by_its_column_headers_across_pages_and_filters() {
    let app = spawn_app().await;
    let boss = admin_token(&app, AdminRole::Superadmin).await;
    for i in 0..25 {
        app.state
            .db
            .create_user(lty_core::user::NewUser {
                username: format!("kid_{i:02}"),
                nickname: None,
                phone: None,
            })
            .await
            .unwrap();
    }
    // Devices: two on firmware 1.6.2 (one online), one on 1.7.0.
    for (i, fw) in [(1, "1.6.2"), (2, "1.6.2"), (3, "1.7.0")] {
        let mac = format!("02:00:00:00:0e:0{i}");
        app.user_with_device(&format!("family_{i}"), &mac).await;
        crate::admin_sorting::xiaozhi_device(&app, &mac, &format!("board-{i}"), fw).await;
    }
    // Seen as a device's socket records it: last seen and the online index.
    let online = MacAddress::parse("02:00:00:00:0e:02").unwrap();
    SeenRecorder::new(&online).touch(&app.state).await;
    // One row or more in every other list.
    create_plan(&app, &boss, "premium", 200).await;
    create_plan(&app, &boss, "basic", 20).await;
    for count in [5, 2, 9] {
        let res = app
            .client
            .post(app.url("/api/v1/admin/card-batches/"))
            .bearer_auth(&boss)
            .json(&json!({ "kind": "content", "count": count, "content_ref": "story:1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    for (code, threshold) in [("ten", 10), ("one", 1), ("five", 5)] {
        app.state
            .db
            .create_achievement(lty_store::achievements::NewAchievement {
                code: code.into(),
                name: code.into(),
                description: String::new(),
                icon: None,
                event_kind: "card_scanned".into(),
                threshold,
                rule: lty_core::achievement::AchievementRule::Total,
            })
            .await
            .unwrap();
    }
    let now = chrono::Utc::now();
    for (task, user_id) in [("a", 7), ("b", 9), ("c", 8)] {
        app.state
            .db
            .insert_session(&lty_core::voice_chat::VoiceChatSession {
                task_id: task.repeat(32),
                user_id,
                room_id: format!("room_{user_id}"),
                agent_user_id: format!("bot_{user_id}"),
                status: lty_core::voice_chat::SessionStatus::Running,
                started_at: now,
                offline_since: None,
                conversation_id: None,
            })
            .await
            .unwrap();
    }
    for (board, size) in [("b1", 4096), ("b2", 1024), ("b3", 2048)] {
        app.state
            .db
            .create_firmware_release(
                lty_core::xiaozhi::NewFirmwareRelease {
                    board: board.into(),
                    version: "1.0.0".into(),
                    blob_key: format!("firmware/{board}.bin"),
                    size,
                    sha256: "0".repeat(64),
                    notes: None,
                    created_by: None,
                },
                now,
            )
            .await
            .unwrap();
    }
    for slug in ["owl", "bear"] {
        app.state
            .db
            .create_persona(lty_store::admin_queries::NewPersona {
                slug: slug.into(),
                name: slug.into(),
                system_prompt: "You are kind.".into(),
                greeting: String::new(),
                voice_id: None,
                age_min: 3,
                age_max: 12,
            })
            .await
            .unwrap();
    }
    operator(&app, "xiaoli", AdminRole::Operator).await;

    let b = Browser::start().await;
    log_in(&b, &app, "xiaoli").await;

    // Users: by username, then reversed; the next page continues.
    b.goto(&app.url("/console/users?q=kid_")).await;
    b.find("#users").await;
    assert!(
        b.try_find("th[aria-sort='ascending'] a[data-sort='id']")
            .await
            .is_some(),
        "the default order is marked"
    );
    sort_by(&b, "username", "ascending").await;
    assert_eq!(sorted_column(&b, false).await[0], "kid_00");
    sort_by(&b, "username", "descending").await;
    assert_eq!(sorted_column(&b, true).await[..2], ["kid_24", "kid_23"]);
    b.check_page("users-sorted").await;
    b.click(".pager a[rel=next]").await;
    b.wait_text(".pager", "2 / 2").await;
    b.find("th[aria-sort='descending'] a[data-sort='username']")
        .await;
    assert_eq!(
        sorted_column(&b, true).await,
        ["kid_04", "kid_03", "kid_02", "kid_01", "kid_00"]
    );
    // A new search keeps the order.
    b.type_into("#q", "kid_1", true).await;
    b.keys(ENTER).await;
    b.wait_text(".pager", "共 10").await;
    assert_eq!(sorted_column(&b, true).await[0], "kid_19");
    assert!(b.url().await.contains("sort=username&order=desc"));

    // Devices: firmware, kind and online filters together, then sorted.
    b.goto(&app.url("/console/devices")).await;
    b.find("#firmware").await;
    let options = b
        .eval(
            "return Array.prototype.map.call(document.querySelectorAll('#firmware option'), function (o) { return o.value; });",
            json!([]),
        )
        .await;
    assert_eq!(options, json!(["", "1.6.2", "1.7.0"]));
    b.eval(
        "document.getElementById('firmware').value = '1.6.2'; document.getElementById('kind').value = 'xiaozhi';",
        json!([]),
    )
    .await;
    b.click("form.filters button[type=submit]").await;
    b.find("th[aria-sort='descending'] a[data-sort='last_check']")
        .await;
    let rows = "return Array.prototype.map.call(document.querySelectorAll('#devices tbody tr'), function (r) { return r.getAttribute('data-mac'); });";
    let mut macs: Vec<String> = serde_json::from_value(b.eval(rows, json!([])).await).unwrap();
    macs.sort();
    assert_eq!(macs, ["02:00:00:00:0e:01", "02:00:00:00:0e:02"]);
    sort_by(&b, "mac", "ascending").await;
    sort_by(&b, "mac", "descending").await;
    assert_eq!(
        b.eval(rows, json!([])).await,
        json!(["02:00:00:00:0e:02", "02:00:00:00:0e:01"])
    );
    b.click("#online").await;
    b.click("form.filters button[type=submit]").await;
    wait_eval(&b, rows, json!(["02:00:00:00:0e:02"])).await;
    // The total counts online devices only.
    b.wait_text("main .pager", "共 1").await;
    b.find("th[aria-sort='descending'] a[data-sort='mac']")
        .await;
    let url = b.url().await;
    for part in [
        "firmware=1.6.2",
        "kind=xiaozhi",
        "online=1",
        "sort=mac",
        "order=desc",
    ] {
        assert!(url.contains(part), "{part} kept in {url}");
    }
    assert_eq!(b.text("#devices td.firmware").await, "1.6.2");
    b.check_page("devices-firmware").await;

    // Every other list, by one of its columns both ways.
    for (path, key, name) in [
        ("/console/cards", "count", "cards-sorted"),
        ("/console/plans", "messages", "plans-sorted"),
        ("/console/personas", "slug", "personas-sorted"),
        ("/console/achievements", "threshold", "achievements-sorted"),
        ("/console/voice-sessions", "user", "voice-sessions-sorted"),
        ("/console/firmware", "size", "firmware-sorted"),
        ("/console/audit", "action", "audit-sorted"),
    ] {
        b.goto(&app.url(path)).await;
        sort_by(&b, key, "ascending").await;
        assert!(
            sorted_column(&b, false).await.len() >= 2,
            "{path}: rows to sort"
        );
        sort_by(&b, key, "descending").await;
        sorted_column(&b, true).await;
        assert!(
            b.url().await.ends_with(&format!("sort={key}&order=desc")),
            "{path}"
        );
        b.check_page(name).await;
    }
    // An unknown key is ignored: the default order, no error page.
    b.goto(&app.url("/console/audit?sort=details%3Bdrop&order=up"))
        .await;
    b.find("th[aria-sort='descending'] a[data-sort='time']")
        .await;
}

#[tokio::test]
async fn the_dashboard_shows_the_rolling_last_24_hours_hour_by_hour() {
    for _ in 0..3 {
        if dashboard_hours_once().await {
            return;
        }
    }
    panic!("the clock passed an hour during every attempt");
}

/// One attempt; `false` when the clock passed an hour meanwhile (the
/// buckets moved under the data at their edges).
async fn dashboard_hours_once() -> bool {
    let app = spawn_app().await;
    let uid = app.user_with_device("night_owl", MAC).await;
    let first = crate::admin_sorting::first_hour();
    crate::admin_sorting::edge_activity(&app, uid, first).await;
    operator(&app, "boss", AdminRole::Superadmin).await;
    let b = Browser::start().await;
    log_in(&b, &app, "boss").await;
    b.click("header .who a[hreflang='en']").await;
    b.wait_text("main h1", "Overview").await;
    b.click("nav.range a[href='/console/?days=1']").await;
    b.wait_text("#messages h2", "Chat messages per hour").await;
    let bars = "return Array.prototype.map.call(document.querySelectorAll(arguments[0] + ' rect title'), function (t) { return t.textContent; });";
    let messages: Vec<String> =
        serde_json::from_value(b.eval(bars, json!(["#messages"])).await).unwrap();
    let minutes: Vec<String> =
        serde_json::from_value(b.eval(bars, json!(["#minutes"])).await).unwrap();
    if crate::admin_sorting::first_hour() != first {
        return false;
    }
    let label = |h: i64| {
        (first + chrono::Duration::hours(h))
            .format("%H:00")
            .to_string()
    };
    assert_eq!(messages.len(), 24);
    assert_eq!(
        messages[0],
        format!("{}: 1", label(0)),
        "the first second counts"
    );
    assert_eq!(
        messages[23],
        format!("{}: 1", label(23)),
        "now is the last bar"
    );
    assert!(
        messages[1..23].iter().all(|m| m.ends_with(": 0")),
        "nothing else in the window: {messages:?}"
    );
    assert_eq!(minutes[0], format!("{}: 4", label(0)));
    assert_eq!(minutes[23], format!("{}: 2", label(23)));
    b.wait_text("main", "the last bar is the current hour")
        .await;
    b.check_page("dashboard-24h").await;
    // Seven days stay daily: today's bar has the two messages of today.
    b.click("nav.range a[href='/console/?days=7']").await;
    b.wait_text("#messages h2", "Chat messages per day").await;
    let days: Vec<String> =
        serde_json::from_value(b.eval(bars, json!(["#messages"])).await).unwrap();
    assert_eq!(days.len(), 7);
    true
}

/// A fake xiaozhi application image (the ESP32 image magic first).
fn firmware_image(len: usize) -> Vec<u8> {
    let mut data = vec![7u8; len];
    data[0] = 0xE9;
    data
}

#[tokio::test]
async fn a_superadmin_uploads_firmware_from_the_console_and_others_cannot() {
    let app = spawn_app().await;
    operator(&app, "boss", AdminRole::Superadmin).await;
    operator(&app, "xiaoli", AdminRole::Operator).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("xiaozhi.bin");
    std::fs::write(&good, firmware_image(64 * 1024)).unwrap();
    let bad = dir.path().join("merged.bin");
    std::fs::write(&bad, vec![0u8; 4096]).unwrap();

    let b = Browser::start().await;
    log_in(&b, &app, "boss").await;
    b.goto(&app.url("/console/firmware")).await;
    b.find("#upload").await;
    b.check_page("firmware-upload").await;
    b.type_into("#up-board", "bread-compact-wifi", false).await;
    b.type_into("#up-version", "1.6.3", false).await;
    b.type_into("#up-notes", "修复音量", false).await;
    b.type_into("#up-file", good.to_str().unwrap(), false).await;
    b.click("#upload button[type=submit]").await;
    b.wait_text("main .flash.ok", "固件已上传").await;
    b.wait_text("#firmware", "1.6.3").await;
    b.check_page("firmware-uploaded").await;
    let releases = app
        .state
        .db
        .newest_firmware("bread-compact-wifi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (releases.version.as_str(), releases.size),
        ("1.6.3", 64 * 1024)
    );
    assert_eq!(releases.notes.as_deref(), Some("修复音量"));
    assert_eq!(audit_actions(&app, "firmware").await, ["firmware.create"]);

    // The API's checks answer: not an application image, a version twice.
    b.type_into("#up-board", "bread-compact-wifi", false).await;
    b.type_into("#up-version", "1.6.4", false).await;
    b.type_into("#up-file", bad.to_str().unwrap(), false).await;
    b.click("#upload button[type=submit]").await;
    b.wait_text("main .flash.error", "validation_error").await;
    b.check_page("firmware-upload-refused").await;
    b.goto(&app.url("/console/firmware")).await;
    b.type_into("#up-board", "bread-compact-wifi", false).await;
    b.type_into("#up-version", "1.6.3", false).await;
    b.type_into("#up-file", good.to_str().unwrap(), false).await;
    b.click("#upload button[type=submit]").await;
    b.wait_text("main .flash.error", "firmware_exists").await;

    // Without the form's CSRF token first, nothing is read or stored.
    let session = b.cookie("lty_console").await.unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let csrf = b
        .eval(
            "return document.querySelector('input[name=_csrf]').value;",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let post = |form: reqwest::multipart::Form| {
        app.client
            .post(app.url("/console/firmware/upload"))
            .header("cookie", format!("lty_console={session}"))
            .multipart(form)
            .send()
    };
    let form = |first_csrf: Option<&str>, last_csrf: Option<&str>, version: &str, len: usize| {
        let mut f = reqwest::multipart::Form::new();
        if let Some(t) = first_csrf {
            f = f.text("_csrf", t.to_owned());
        }
        f = f
            .text("board", "bread-compact-wifi")
            .text("version", version.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(firmware_image(len)).file_name("x.bin"),
            );
        if let Some(t) = last_csrf {
            f = f.text("_csrf", t.to_owned());
        }
        f
    };
    assert_eq!(
        post(form(None, None, "2.0.0", 1024))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(form(None, Some(&csrf), "2.0.0", 1024))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(form(Some("0"), None, "2.0.0", 1024))
            .await
            .unwrap()
            .status(),
        403
    );
    // Past the API's 8 MiB limit: 413, and nothing is stored.
    let res = post(form(Some(&csrf), None, "2.0.0", 8 * 1024 * 1024 + 1))
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = post(form(Some(&csrf), None, "2.0.0", 1024)).await.unwrap();
    assert_eq!(res.status(), 303, "the form as a browser sends it");
    assert_eq!(
        app.state
            .db
            .newest_firmware("bread-compact-wifi")
            .await
            .unwrap()
            .unwrap()
            .version,
        "2.0.0"
    );

    // An operator sees the form, and the API's role policy refuses it.
    b.click("header form[action='/console/logout'] button")
        .await;
    b.find("#username").await;
    log_in(&b, &app, "xiaoli").await;
    b.goto(&app.url("/console/firmware")).await;
    b.type_into("#up-board", "bread-compact-wifi", false).await;
    b.type_into("#up-version", "3.0.0", false).await;
    b.type_into("#up-file", good.to_str().unwrap(), false).await;
    b.click("#upload button[type=submit]").await;
    b.wait_text("main", "您的角色无权执行此操作").await;
    assert_eq!(
        app.state
            .db
            .newest_firmware("bread-compact-wifi")
            .await
            .unwrap()
            .unwrap()
            .version,
        "2.0.0"
    );
    let actions = audit_actions(&app, "firmware").await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "firmware.create.failed")
            .count(),
        2,
        "the refused image and the version twice: {actions:?}"
    );
}
