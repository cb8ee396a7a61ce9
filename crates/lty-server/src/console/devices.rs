//! Devices: search by MAC (or part of one), kind, reported firmware and
//! an online-only filter, sortable columns, live
//! online state (server-sent events re-reading `device:last_seen:{mac}`
//! every few seconds), and the support actions: push a test message,
//! unbind, revoke the secret (superadmin).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use futures_util::Stream;
use lty_core::MacAddress;
use lty_store::sort::DeviceSort;
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::{Op, url_encode};
use crate::extract::{Path as ApiPath, Query as ApiQuery};
use crate::http::admin::devices::{DeviceKind, DeviceSearchQuery, PushTestIn};
use crate::http::admin::{self, OptionalJson};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/devices", get(list))
        .route("/console/devices/events", get(events))
        .route("/console/devices/{mac}/{action}", post(act))
}

/// How often the live view re-reads the online state.
const LIVE_EVERY: Duration = Duration::from_secs(3);
/// Devices a live view follows at most.
const LIVE_MAX: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    mac: Option<String>,
    online: Option<String>,
    kind: Option<String>,
    firmware: Option<String>,
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(&state, Method::GET, "/api/v1/admin/devices/", None)
        .await?;
    let online_only = q.online.as_deref() == Some("1");
    let xiaozhi_only = q.kind.as_deref() == Some("xiaozhi");
    let firmware = q.firmware.clone().filter(|f| !f.trim().is_empty());
    let default = DeviceSort::default_for(xiaozhi_only);
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), default);
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    let versions = state.db.firmware_versions().await.or_fail(&op)?;
    let found = admin::devices::search(
        State(state),
        op.ctx(),
        ApiQuery(DeviceSearchQuery {
            page: q.page,
            page_size: Some(50),
            mac: q.mac.clone(),
            user_id: None,
            kind: xiaozhi_only.then_some(DeviceKind::Xiaozhi),
            firmware: firmware.clone(),
            online: online_only.then_some(true),
            sort: sort_pair.1.clone(),
            order: order_pair.1.clone(),
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let devices: Vec<_> = found.devices.iter().collect();
    let macs: Vec<&str> = devices.iter().map(|d| d.mac_address.as_str()).collect();
    let filters = [
        ("mac", q.mac.clone()),
        ("online", q.online.clone()),
        ("kind", q.kind.clone()),
        ("firmware", firmware.clone()),
    ];
    let unsorted = format!("/console/devices?{}", page::query(&filters));
    let base = format!(
        "/console/devices?{}",
        page::query(&[
            filters[0].clone(),
            filters[1].clone(),
            filters[2].clone(),
            filters[3].clone(),
            sort_pair,
            order_pair,
        ])
    );
    let th = |key, label| page::sort_th(&unsorted, sort, key, t(label));
    let chosen = firmware.as_deref().unwrap_or("");
    let done = q.done.as_deref().filter(|k| *k == "devices.done");
    let body = html! {
        (page::flash(&shell, done))
        form.filters method="get" action="/console/devices" {
            (page::sort_fields(sort, default))
            div { label for="mac" { (t("devices.mac")) } input #mac name="mac" type="search" value=(q.mac.clone().unwrap_or_default()); }
            div {
                label for="kind" { (t("devices.kind")) }
                select #kind name="kind" {
                    option value="" selected[!xiaozhi_only] { (t("devices.kind_all")) }
                    option value="xiaozhi" selected[xiaozhi_only] { (t("devices.kind_xiaozhi")) }
                }
            }
            div {
                label for="firmware" { (t("devices.firmware")) }
                select #firmware name="firmware" {
                    option value="" selected[chosen.is_empty()] { (t("devices.firmware_all")) }
                    @for v in &versions {
                        option value=(v) selected[v == chosen] { (v) }
                    }
                    @if !chosen.is_empty() && !versions.iter().any(|v| v == chosen) {
                        option value=(chosen) selected { (chosen) }
                    }
                }
            }
            div.check { input #online name="online" type="checkbox" value="1" checked[online_only]; label for="online" { (t("devices.online_only")) } }
            div { button type="submit" { (t("common.filter")) } }
        }
        @if devices.is_empty() {
            (page::empty(&shell, None))
        } @else {
            p.hint { (t("devices.live")) }
            div.table { table #devices data-live={"/console/devices/events?macs=" (url_encode(&macs.join(",")))} {
                thead { tr {
                    (th(DeviceSort::Mac, "user.mac")) th { (t("devices.user")) } (th(DeviceSort::Board, "devices.board"))
                    (th(DeviceSort::Firmware, "devices.firmware")) th { (t("users.state")) }
                    (th(DeviceSort::LastCheck, "devices.last_check")) th { (t("user.last_seen")) } th { (t("common.actions")) }
                } }
                tbody {
                    @for d in &devices {
                        tr data-mac=(d.mac_address) {
                            td { code { (d.mac_address) } }
                            td {
                                @if let Some(b) = &d.binding {
                                    a href={"/console/users/" (b.user_id)} { (b.user_id) }
                                } @else { (t("devices.unbound")) }
                            }
                            td.board { (d.xiaozhi.as_ref().and_then(|x| x.board_name.as_deref().or(x.board_type.as_deref())).unwrap_or("—")) }
                            td.firmware { (d.xiaozhi.as_ref().and_then(|x| x.firmware_version.as_deref()).unwrap_or("—")) }
                            td { span.badge.online.{ (if d.online { "ok" } else { "off" }) } data-on=(t("common.online")) data-off=(t("common.offline")) {
                                (if d.online { t("common.online") } else { t("common.offline") })
                            } }
                            td { (page::time_opt(d.xiaozhi.as_ref().map(|x| &x.last_check_at))) }
                            td { (page::time_opt(d.last_seen.as_ref())) }
                            td.actions {
                                @if d.binding.is_some() {
                                    form.inline method="post" action={"/console/devices/" (d.mac_address) "/push-test"} {
                                        (shell.csrf_field())
                                        button type="submit" { (t("devices.push")) }
                                    }
                                    form.inline method="post" action={"/console/devices/" (d.mac_address) "/unbind"} {
                                        (shell.csrf_field())
                                        button.danger type="submit" data-confirm=(t("devices.confirm_unbind")) { (t("devices.unbind")) }
                                    }
                                }
                                form.inline method="post" action={"/console/devices/" (d.mac_address) "/revoke-secret"} {
                                    (shell.csrf_field())
                                    button.danger type="submit" data-confirm=(t("devices.confirm_revoke")) { (t("devices.revoke")) }
                                }
                            }
                        }
                    }
                }
            } }
            (page::pager(&shell, &base, found.page.page, found.page.page_size, found.page.total))
        }
    };
    Ok(page::render(&shell, t("devices.title"), "devices", body).into_response())
}

/// Runs a device action through its API handler.
async fn act(
    State(state): State<AppState>,
    op: Op,
    Path((mac, action)): Path<(String, String)>,
) -> PageResult {
    let route = match action.as_str() {
        "push-test" => "/api/v1/admin/devices/{mac}/push-test/",
        "unbind" => "/api/v1/admin/devices/{mac}/unbind/",
        "revoke-secret" => "/api/v1/admin/devices/{mac}/revoke-secret/",
        _ => return Err(op.fail(crate::error::ApiError::route_not_found())),
    };
    op.allow(&state, Method::POST, route, Some(mac.clone()))
        .await?;
    let ctx = op.ctx();
    let path = ApiPath(mac);
    match action.as_str() {
        "push-test" => admin::devices::push_test(
            State(state),
            ctx,
            path,
            OptionalJson(Some(PushTestIn::default())),
        )
        .await
        .map(|_| ()),
        "unbind" => admin::devices::unbind(State(state), ctx, path)
            .await
            .map(|_| ()),
        _ => admin::devices::revoke_secret(State(state), ctx, path)
            .await
            .map(|_| ()),
    }
    .or_fail(&op)?;
    Ok(Redirect::to("/console/devices?done=devices.done").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    macs: Option<String>,
}

/// `online` events, `{"mac":..,"online":bool}`, for the listed MACs:
/// each one at once, then whenever it changes.
async fn events(
    State(state): State<AppState>,
    op: Op,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, page::Fail> {
    op.allow(&state, Method::GET, "/api/v1/admin/devices/", None)
        .await?;
    let macs: Vec<MacAddress> = q
        .macs
        .unwrap_or_default()
        .split(',')
        .filter_map(|m| MacAddress::parse(m.trim()).ok())
        .take(LIVE_MAX)
        .collect();
    let stream = futures_util::stream::unfold(
        (state, macs, Vec::<Option<bool>>::new(), true),
        |(state, macs, mut last, first)| async move {
            if !first {
                tokio::time::sleep(LIVE_EVERY).await;
            }
            last.resize(macs.len(), None);
            let mut changed = Vec::new();
            for (i, mac) in macs.iter().enumerate() {
                let online = crate::app::devices::online_state(&state, mac)
                    .await
                    .map(|(on, _)| on)
                    .unwrap_or(false);
                if last[i] != Some(online) {
                    last[i] = Some(online);
                    changed.push(serde_json::json!({ "mac": mac.to_string(), "online": online }));
                }
            }
            let events: Vec<Result<Event, Infallible>> = changed
                .into_iter()
                .map(|c| Ok(Event::default().event("online").data(c.to_string())))
                .collect();
            Some((
                futures_util::stream::iter(events),
                (state, macs, last, false),
            ))
        },
    );
    use futures_util::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}
