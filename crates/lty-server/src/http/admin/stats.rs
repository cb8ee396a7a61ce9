//! Stats for the operator console: users, devices, chat messages per day,
//! card scans per batch, voice sessions, and provider errors read from the
//! same counters `/metrics` exposes.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Duration, DurationRound, Utc};
use lty_store::achievements::HOUR_KEY;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminCtx;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Stats routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
}

/// `?days=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Days of daily series, today included: 1 to 90 (default 7).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
}

/// User counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserStats {
    pub total: u64,
    pub active: u64,
    pub disabled: u64,
}

/// Device counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceStats {
    /// Distinct MACs with a binding in force.
    pub bound: u64,
    /// Devices seen within the last 5 minutes on any instance (the online
    /// index, `device:online`).
    pub online: u64,
    /// Device sockets open on the instance that answered
    /// (`lty_ws_open_connections`); sum `/metrics` of every instance for
    /// the fleet.
    pub sockets_open_here: u64,
}

/// Activity of one UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayStats {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Messages children sent.
    pub user_messages: u64,
    /// Replies.
    pub assistant_messages: u64,
    /// Minutes of voice-chat sessions that ended that day.
    pub voice_minutes: i64,
}

/// Activity of one UTC hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourStats {
    /// The hour's start, `YYYY-MM-DDTHH:00:00Z`.
    pub hour: DateTime<Utc>,
    /// Messages children sent.
    pub user_messages: u64,
    /// Replies.
    pub assistant_messages: u64,
    /// Minutes of voice-chat sessions that ended that hour.
    pub voice_minutes: i64,
}

/// Scans of one card batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchScanStats {
    pub batch_id: i64,
    pub scans: u64,
    pub unique_users: u64,
}

/// Voice-chat sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceStats {
    /// Agents started and not yet stopped.
    pub sessions_running: u64,
    /// Voice minutes counted over all time (the `voice_minutes`
    /// achievement totals; stopped sessions only).
    pub minutes_total: i64,
}

/// An error counter of an outside provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderErrorStats {
    /// The counter (`lty_moderation_errors_total`, ...).
    pub metric: String,
    pub provider: String,
    pub errors: u64,
}

/// Upstream failures of one route: answers `502`, `503` or `504`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteErrorStats {
    pub method: String,
    /// The route template.
    pub route: String,
    pub requests: u64,
    pub upstream_errors: u64,
    /// `upstream_errors / requests`.
    pub error_rate: f64,
}

/// Everything on the stats page.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    pub users: UserStats,
    pub devices: DeviceStats,
    /// Oldest day first, `days` entries.
    pub per_day: Vec<DayStats>,
    /// The rolling last 24 hours: 24 clock hours (UTC), oldest first, the
    /// last being the current hour so far.
    pub per_hour: Vec<HourStats>,
    pub card_scans_per_batch: Vec<BatchScanStats>,
    pub voice: VoiceStats,
    /// Counters since this instance started.
    pub provider_errors: Vec<ProviderErrorStats>,
    /// Routes that answered upstream failures since this instance started.
    pub upstream_errors_by_route: Vec<RouteErrorStats>,
}

/// One sample of the Prometheus text format.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition (comments skipped).
fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let i = line.find(['{', ' '])?;
    let name = &line[..i];
    let mut rest = &line[i..];
    let mut labels = BTreeMap::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches(',');
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = body.find('=')?;
            let key = body[..eq].trim().to_owned();
            let mut chars = body[eq + 1..].strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let consumed = loop {
                let (idx, c) = chars.next()?;
                match c {
                    '\\' => {
                        let (_, e) = chars.next()?;
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                    '"' => break idx + 1,
                    c => value.push(c),
                }
            };
            labels.insert(key, value);
            body = &body[eq + 2 + consumed..];
        }
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn as_count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // Counters are whole numbers well below 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = v.round() as u64;
        n
    } else {
        0
    }
}

fn provider_errors(samples: &[Sample]) -> Vec<ProviderErrorStats> {
    let mut out: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in samples {
        if s.name.starts_with("lty_") && s.name.ends_with("_errors_total") {
            let provider = s.labels.get("provider").cloned().unwrap_or_default();
            *out.entry((s.name.clone(), provider)).or_default() += as_count(s.value);
        }
    }
    out.into_iter()
        .map(|((metric, provider), errors)| ProviderErrorStats {
            metric,
            provider,
            errors,
        })
        .collect()
}

fn route_errors(samples: &[Sample]) -> Vec<RouteErrorStats> {
    let mut per_route: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == "lty_http_requests_total")
    {
        let (Some(method), Some(route)) = (s.labels.get("method"), s.labels.get("route")) else {
            continue;
        };
        let entry = per_route
            .entry((method.clone(), route.clone()))
            .or_default();
        let n = as_count(s.value);
        entry.0 += n;
        if matches!(
            s.labels.get("status").map(String::as_str),
            Some("502" | "503" | "504")
        ) {
            entry.1 += n;
        }
    }
    per_route
        .into_iter()
        .filter(|(_, (_, errors))| *errors > 0)
        .map(|((method, route), (requests, upstream_errors))| {
            #[allow(clippy::cast_precision_loss)]
            let error_rate = upstream_errors as f64 / requests.max(1) as f64;
            RouteErrorStats {
                method,
                route,
                requests,
                upstream_errors,
                error_rate,
            }
        })
        .collect()
}

/// Counts for the operator console. Users, devices, messages and scans
/// come from the database; sockets and provider errors from this
/// instance's metrics (the counters `/metrics` serves).
#[utoipa::path(get, path = "/api/v1/admin/stats/", tag = "admin", operation_id = "admin_stats",
    security(("admin_bearer" = [])),
    params(StatsQuery),
    responses(
        (status = 200, body = StatsOut),
        (status = 400, description = "`days` out of range", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn stats(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<StatsOut>> {
    let days = q.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        return Err(lty_core::Error::validation("days", "must be 1 to 90").into());
    }
    let today = Utc::now().date_naive();
    let first = today - Duration::days(i64::from(days) - 1);
    let since = first
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now);
    let (total, active) = state.db.user_counts().await?;
    let bound = state.db.bound_device_count().await?;
    let user_msgs = state.db.messages_per_day("user", since).await?;
    let bot_msgs = state.db.messages_per_day("assistant", since).await?;
    let voice_minutes = state
        .db
        .event_days(lty_core::achievement::VOICE_MINUTES, first)
        .await?;
    let per_day = first
        .iter_days()
        .take(usize::try_from(days).unwrap_or(7))
        .map(|d| {
            let day = d.format("%Y-%m-%d").to_string();
            DayStats {
                user_messages: user_msgs.get(&day).copied().unwrap_or(0),
                assistant_messages: bot_msgs.get(&day).copied().unwrap_or(0),
                voice_minutes: voice_minutes.get(&day).copied().unwrap_or(0),
                day,
            }
        })
        .collect();
    let per_hour = last_24_hours(&state, Utc::now()).await?;
    let scans = state.db.scans_per_batch().await?;
    let sessions = state.db.all_sessions().await?.len() as u64;
    let minutes_total = state
        .db
        .event_total(lty_core::achievement::VOICE_MINUTES)
        .await?;
    let online = crate::app::devices::online_count(&state).await?;
    let samples = parse_samples(&state.metrics.render());
    let sockets = samples
        .iter()
        .filter(|s| s.name == "lty_ws_open_connections")
        .map(|s| as_count(s.value))
        .sum();
    Ok(Json(StatsOut {
        users: UserStats {
            total,
            active,
            disabled: total.saturating_sub(active),
        },
        devices: DeviceStats {
            bound,
            online,
            sockets_open_here: sockets,
        },
        per_day,
        per_hour,
        card_scans_per_batch: scans
            .into_iter()
            .map(|b| BatchScanStats {
                batch_id: b.batch_id,
                scans: b.scans,
                unique_users: b.unique_users,
            })
            .collect(),
        voice: VoiceStats {
            sessions_running: sessions,
            minutes_total,
        },
        provider_errors: provider_errors(&samples),
        upstream_errors_by_route: route_errors(&samples),
    }))
}

/// Hourly activity of the 24 clock hours up to `now`'s (UTC).
async fn last_24_hours(state: &AppState, now: DateTime<Utc>) -> ApiResult<Vec<HourStats>> {
    let this_hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let first = this_hour - Duration::hours(23);
    let user_msgs = state.db.messages_per_hour("user", first).await?;
    let bot_msgs = state.db.messages_per_hour("assistant", first).await?;
    let voice_minutes = state
        .db
        .event_hours(lty_core::achievement::VOICE_MINUTES, first)
        .await?;
    Ok((0..24)
        .map(|i| {
            let hour = first + Duration::hours(i);
            let key = hour.format(HOUR_KEY).to_string();
            HourStats {
                hour,
                user_messages: user_msgs.get(&key).copied().unwrap_or(0),
                assistant_messages: bot_msgs.get(&key).copied().unwrap_or(0),
                voice_minutes: voice_minutes.get(&key).copied().unwrap_or(0),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples_parse_with_labels_and_escapes() {
        let text = "# TYPE lty_http_requests_total counter\n\
            lty_http_requests_total{method=\"POST\",route=\"/api/ai/chat/\",status=\"502\"} 3\n\
            lty_http_requests_total{method=\"POST\",route=\"/api/ai/chat/\",status=\"200\"} 9\n\
            lty_moderation_errors_total{provider=\"a\\\"b\"} 2\n\
            lty_ws_open_connections 4\n";
        let samples = parse_samples(text);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[2].labels["provider"], "a\"b");
        assert_eq!(samples[3].value, 4.0);
        let routes = route_errors(&samples);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].requests, 12);
        assert_eq!(routes[0].upstream_errors, 3);
        assert!((routes[0].error_rate - 0.25).abs() < 1e-9);
        let providers = provider_errors(&samples);
        assert_eq!(providers.len(), 1);
        assert_eq!(providers[0].errors, 2);
    }
}
