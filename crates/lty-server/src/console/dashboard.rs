//! The dashboard: counts (users, bound devices, sockets open, voice
//! sessions) and server-rendered SVG bar charts of chat messages and voice
//! minutes, per hour over the rolling last 24 hours or per day over 7 or
//! 30 days, and card scans per batch; the upstream errors since this
//! instance started.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::IntoResponse;
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::Query as ApiQuery;
use crate::http::admin;
use crate::http::admin::stats::StatsQuery;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    days: Option<u32>,
}

/// `/console/`.
pub async fn show(
    State(state): State<AppState>,
    op: Op,
    Query(q): Query<RangeQuery>,
) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let days = match q.days {
        Some(1) => 1,
        Some(30) => 30,
        _ => 7,
    };
    op.allow(&state, Method::GET, "/api/v1/admin/stats/", None)
        .await?;
    let s = admin::stats::stats(
        State(state),
        op.ctx(),
        ApiQuery(StatsQuery { days: Some(days) }),
    )
    .await
    .or_fail(&op)?
    .0;
    // The last 24 hours are hourly (clock hours, UTC); longer ranges daily.
    let hourly = days == 1;
    let (labels, messages, minutes): (Vec<String>, Vec<f64>, Vec<f64>) = if hourly {
        (
            s.per_hour
                .iter()
                .map(|h| h.hour.format("%H:00").to_string())
                .collect(),
            s.per_hour
                .iter()
                .map(|h| (h.user_messages + h.assistant_messages) as f64)
                .collect(),
            s.per_hour.iter().map(|h| h.voice_minutes as f64).collect(),
        )
    } else {
        (
            s.per_day.iter().map(|d| d.day[5..].to_owned()).collect(),
            s.per_day
                .iter()
                .map(|d| (d.user_messages + d.assistant_messages) as f64)
                .collect(),
            s.per_day.iter().map(|d| d.voice_minutes as f64).collect(),
        )
    };
    let (messages_title, minutes_title) = if hourly {
        (t("dash.messages_hourly"), t("dash.voice_minutes_hourly"))
    } else {
        (t("dash.messages"), t("dash.voice_minutes"))
    };
    let mut scans: Vec<_> = s.card_scans_per_batch.iter().collect();
    scans.sort_by_key(|b| std::cmp::Reverse(b.scans));
    scans.truncate(12);
    let scan_labels: Vec<String> = scans.iter().map(|b| format!("#{}", b.batch_id)).collect();
    let scan_values: Vec<f64> = scans.iter().map(|b| b.scans as f64).collect();
    let body = html! {
        nav.range aria-label="range" {
            @for (d, key) in [(1, "dash.range_1"), (7, "dash.range_7"), (30, "dash.range_30")] {
                a href={"/console/?days=" (d)} aria-current=[(d == days).then_some("page")] { (t(key)) }
            }
        }
        @if hourly { p.hint { (t("dash.hours_note")) } }
        div.tiles {
            (tile(t("dash.users"), s.users.total))
            (tile(t("dash.active_users"), s.users.active))
            (tile(t("dash.bound"), s.devices.bound))
            (tile(t("dash.online"), s.devices.online))
            (tile(t("dash.sockets"), s.devices.sockets_open_here))
            (tile(t("dash.voice_running"), s.voice.sessions_running))
            (tile(t("dash.voice_total"), s.voice.minutes_total))
        }
        div.columns {
            section.card #messages { h2 { (messages_title) } (bars(&labels, &messages, messages_title)) }
            section.card #minutes { h2 { (minutes_title) } (bars(&labels, &minutes, minutes_title)) }
            section.card {
                h2 { (t("dash.scans")) }
                @if scans.is_empty() { (page::empty(&shell, None)) } @else { (bars(&scan_labels, &scan_values, t("dash.scans"))) }
            }
            section.card {
                h2 { (t("dash.errors")) }
                @if s.upstream_errors_by_route.is_empty() && s.provider_errors.iter().all(|p| p.errors == 0) {
                    (page::empty(&shell, Some(t("dash.no_errors"))))
                } @else {
                    ul {
                        @for r in &s.upstream_errors_by_route {
                            li { code { (r.method) " " (r.route) } ": " (r.upstream_errors) " / " (r.requests) }
                        }
                        @for p in s.provider_errors.iter().filter(|p| p.errors > 0) {
                            li { code { (p.metric) } " " (p.provider) ": " (p.errors) }
                        }
                    }
                }
            }
        }
    };
    Ok(page::render(&shell, t("dash.title"), "dashboard", body).into_response())
}

fn tile(label: &str, value: impl std::fmt::Display) -> Markup {
    html! { div.tile { span.value { (value.to_string()) } span.label { (label) } } }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A bar chart as inline SVG: one bar per value, the largest value on
/// the axis, labels under the bars (thinned out when crowded). It scales
/// with its container (`viewBox`).
pub fn bars(labels: &[String], values: &[f64], title: &str) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let n = values.len().max(1) as f64;
    let slot = (W - LEFT) / n;
    let bar = (slot * 0.7).max(1.0);
    let every = (values.len() / 10).max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{y}" x2="{W}" y2="{y}" class="axis"/><text x="{x}" y="12" class="tick" text-anchor="end">{max}</text><text x="{x}" y="{y}" class="tick" text-anchor="end">0</text>"#,
        y = H - BOTTOM,
        x = LEFT - 4.0,
    );
    for (i, v) in values.iter().enumerate() {
        let h = (H - BOTTOM - 16.0) * v / max;
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let y = H - BOTTOM - h;
        let label = labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" class="bar"><title>{}: {v}</title></rect>"#,
            esc(label)
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                H - 6.0,
                esc(label)
            );
        }
    }
    svg.push_str("</svg>");
    page::svg(svg)
}
