//! The admin role policy: for every admin route, the least role that may
//! call it and how it is audited. [`crate::auth::AuthAdmin`] applies this
//! table to every request it authenticates, so a handler cannot forget the
//! check, and routes of other modules (card batches, plans, achievements)
//! follow the same policy.
//!
//! Operators read everything and take support actions (disable a user,
//! reset a quota, unbind a device, push a test message, stop a voice
//! session, manage card batches and achievements). Superadmins may
//! additionally change personas and plans and revoke device secrets.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use lty_core::admin::{Admin, AdminRole};
use serde_json::json;

use super::AuditActor;
use crate::error::ApiError;
use crate::state::AppState;

use AdminRole::{Operator, Superadmin};

/// How a route is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Not audited: a plain read.
    No,
    /// The handler records its own, detailed entry (writes before acting,
    /// sensitive reads before answering).
    Handler(&'static str),
    /// Recorded here, before the handler runs, with the route's first path
    /// parameter as the target: for routes of other modules that do not
    /// audit themselves. The handler only runs once the entry is stored.
    Auto {
        action: &'static str,
        target_type: &'static str,
    },
}

/// The policy of one admin route.
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The route template as registered (`/api/v1/admin/users/{id}/`).
    pub path: &'static str,
    /// The least role allowed (`superadmin` includes `operator`).
    pub role: AdminRole,
    pub audit: Audit,
}

const fn route(
    method: &'static str,
    path: &'static str,
    role: AdminRole,
    audit: Audit,
) -> RoutePolicy {
    RoutePolicy {
        method,
        path,
        role,
        audit,
    }
}

const fn auto(action: &'static str, target_type: &'static str) -> Audit {
    Audit::Auto {
        action,
        target_type,
    }
}

/// Every authenticated admin route. `tests/api/admin_api.rs` checks that
/// each admin route in the OpenAPI document is listed here.
#[rustfmt::skip]
pub const POLICY: &[RoutePolicy] = &[
    // Session.
    route("POST", "/api/v1/admin/logout/", Operator, Audit::No),
    route("GET", "/api/v1/admin/me/", Operator, Audit::No),
    // Users.
    route("GET", "/api/v1/admin/users/", Operator, Audit::Handler("user.search")),
    route("GET", "/api/v1/admin/users/{id}/", Operator, Audit::Handler("user.view")),
    route("POST", "/api/v1/admin/users/{id}/disable/", Operator, Audit::Handler("user.disable")),
    route("POST", "/api/v1/admin/users/{id}/enable/", Operator, Audit::Handler("user.enable")),
    route("POST", "/api/v1/admin/users/{id}/reset-quota/", Operator, Audit::Handler("user.reset_quota")),
    route("POST", "/api/v1/admin/users/{id}/subscription/", Operator, auto("subscription.grant", "user")),
    route("GET", "/api/v1/admin/users/{id}/conversations/", Operator, Audit::Handler("conversation.list")),
    // Conversations (read-only, always audited).
    route("GET", "/api/v1/admin/conversations/{id}/", Operator, Audit::Handler("conversation.view")),
    // Devices.
    route("GET", "/api/v1/admin/devices/", Operator, Audit::No),
    route("GET", "/api/v1/admin/devices/{mac}/", Operator, Audit::Handler("device.view")),
    route("POST", "/api/v1/admin/devices/{mac}/unbind/", Operator, Audit::Handler("device.unbind")),
    route("POST", "/api/v1/admin/devices/{mac}/push-test/", Operator, Audit::Handler("device.push_test")),
    route("POST", "/api/v1/admin/devices/{mac}/revoke-secret/", Superadmin, Audit::Handler("device.revoke_secret")),
    // Voice-chat sessions.
    route("GET", "/api/v1/admin/voice-sessions/", Operator, Audit::No),
    route("POST", "/api/v1/admin/voice-sessions/{task_id}/stop/", Operator, Audit::Handler("voice_session.stop")),
    // Personas.
    route("GET", "/api/v1/admin/personas/", Operator, Audit::No),
    route("POST", "/api/v1/admin/personas/", Superadmin, Audit::Handler("persona.create")),
    route("PATCH", "/api/v1/admin/personas/{id}/", Superadmin, Audit::Handler("persona.update")),
    route("DELETE", "/api/v1/admin/personas/{id}/", Superadmin, Audit::Handler("persona.deactivate")),
    // Plans.
    route("GET", "/api/v1/admin/plans/", Operator, Audit::No),
    route("POST", "/api/v1/admin/plans/", Superadmin, auto("plan.create", "plan")),
    route("PATCH", "/api/v1/admin/plans/{id}/", Superadmin, Audit::Handler("plan.update")),
    route("DELETE", "/api/v1/admin/plans/{id}/", Superadmin, Audit::Handler("plan.deactivate")),
    // Achievement definitions.
    route("GET", "/api/v1/admin/achievements/", Operator, Audit::No),
    route("POST", "/api/v1/admin/achievements/", Operator, auto("achievement.create", "achievement")),
    route("PATCH", "/api/v1/admin/achievements/{id}/", Operator, Audit::Handler("achievement.update")),
    route("DELETE", "/api/v1/admin/achievements/{id}/", Operator, Audit::Handler("achievement.deactivate")),
    // Card batches and cards.
    route("GET", "/api/v1/admin/card-batches/", Operator, Audit::No),
    route("POST", "/api/v1/admin/card-batches/", Operator, auto("card_batch.create", "card_batch")),
    route("GET", "/api/v1/admin/card-batches/{id}/", Operator, Audit::No),
    route("POST", "/api/v1/admin/card-batches/{id}/disable/", Operator, Audit::Handler("card_batch.disable")),
    route("GET", "/api/v1/admin/card-batches/{id}/cards/", Operator, auto("card_batch.list_codes", "card_batch")),
    route("GET", "/api/v1/admin/card-batches/{id}/export.csv", Operator, auto("card_batch.export", "card_batch")),
    route("GET", "/api/v1/admin/card-batches/{id}/export.zip", Operator, auto("card_batch.export", "card_batch")),
    route("GET", "/api/v1/admin/cards/{code}/", Operator, Audit::No),
    route("POST", "/api/v1/admin/cards/{code}/disable/", Operator, Audit::Handler("card.disable")),
    // xiaozhi firmware releases and device keys.
    route("GET", "/api/v1/admin/firmware/", Operator, Audit::No),
    route("POST", "/api/v1/admin/firmware/", Superadmin, Audit::Handler("firmware.create")),
    route("PATCH", "/api/v1/admin/firmware/{id}/", Superadmin, Audit::Handler("firmware.update")),
    route("PUT", "/api/v1/admin/device-keys/{serial}/", Superadmin, Audit::Handler("device_key.put")),
    // Stats and the audit log.
    route("GET", "/api/v1/admin/stats/", Operator, Audit::No),
    route("GET", "/api/v1/admin/audit/", Operator, Audit::No),
];

/// The policy of `method path` (a route template), if listed.
pub fn lookup(method: &Method, path: &str) -> Option<&'static RoutePolicy> {
    POLICY
        .iter()
        .find(|p| p.path == path && p.method == method.as_str())
}

/// `403 forbidden` naming the role needed.
pub fn forbidden(required: AdminRole) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("this needs the {required} role"),
    )
    .with_details(json!({ "required_role": required.as_str() }))
}

/// Applies the policy of the request's route to `admin`: the role check,
/// then, for [`Audit::Auto`] routes, the audit entry. Routes missing from
/// the table need the operator role and are not audited.
pub async fn enforce(state: &AppState, admin: &Admin, parts: &mut Parts) -> Result<(), ApiError> {
    let Some(path) = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return Ok(());
    };
    let Some(policy) = lookup(&parts.method, &path) else {
        return Ok(());
    };
    if !admin.role.includes(policy.role) {
        return Err(forbidden(policy.role));
    }
    if matches!(policy.audit, Audit::Auto { .. }) {
        let target_id = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params.iter().next().map(|(_, v)| v.to_owned()),
            Err(_) => None,
        };
        let actor = AuditActor::from_parts(admin, parts, state);
        apply(state, admin, &actor, policy, target_id).await?;
    }
    Ok(())
}

/// Applies the policy of the admin route `method path` (a template from
/// [`POLICY`]) for a caller that reaches the same action by another
/// protocol (the console): the role check, then the [`Audit::Auto`] entry
/// with `target_id`. A route missing from the table is refused, so that a
/// typo cannot open an action to everyone.
pub async fn enforce_route(
    state: &AppState,
    admin: &Admin,
    actor: &AuditActor,
    method: &Method,
    path: &str,
    target_id: Option<String>,
) -> Result<(), ApiError> {
    let policy = lookup(method, path).ok_or_else(|| forbidden(Superadmin))?;
    apply(state, admin, actor, policy, target_id).await
}

async fn apply(
    state: &AppState,
    admin: &Admin,
    actor: &AuditActor,
    policy: &RoutePolicy,
    target_id: Option<String>,
) -> Result<(), ApiError> {
    if !admin.role.includes(policy.role) {
        return Err(forbidden(policy.role));
    }
    if let Audit::Auto {
        action,
        target_type,
    } = policy.audit
    {
        actor
            .record(
                state,
                action,
                Some(target_type),
                target_id,
                json!({ "method": policy.method, "route": policy.path }),
            )
            .await?;
    }
    Ok(())
}
