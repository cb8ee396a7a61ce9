//! Operator accounts of the admin API: roles, lockout state and the
//! repository. Password hashes never leave the repository's answer to
//! [`AdminRepo::by_username`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, Result};

/// What an admin may do. `Superadmin` may do everything an `Operator` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Day-to-day operations: users, devices, cards, read-only audit.
    Operator,
    /// Everything, including managing other admins and plans.
    Superadmin,
}

impl AdminRole {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Superadmin => "superadmin",
        }
    }

    /// Whether this role includes the rights of `required`.
    pub fn includes(self, required: AdminRole) -> bool {
        self >= required
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdminRole {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "operator" => Ok(Self::Operator),
            "superadmin" => Ok(Self::Superadmin),
            _ => Err(Error::validation("role", "must be superadmin or operator")),
        }
    }
}

/// An operator account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    pub role: AdminRole,
    pub is_active: bool,
    /// Failed logins since the last success or lockout.
    pub failed_attempts: i32,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Admin {
    /// Whether logins are refused at `now` because of too many failures.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

/// Validates an admin username: 3 to 150 characters of letters, digits and
/// `_ . @ -`.
pub fn validate_admin_username(username: &str) -> Result<&str> {
    let u = username.trim();
    let ok = (3..=150).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if ok {
        Ok(u)
    } else {
        Err(Error::validation(
            "username",
            "must be 3 to 150 letters, digits or _ . @ -",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superadmin_includes_operator_but_not_the_reverse() {
        assert!(AdminRole::Superadmin.includes(AdminRole::Operator));
        assert!(AdminRole::Superadmin.includes(AdminRole::Superadmin));
        assert!(!AdminRole::Operator.includes(AdminRole::Superadmin));
        assert_eq!(
            "SuperAdmin".parse::<AdminRole>().unwrap(),
            AdminRole::Superadmin
        );
        assert!("root".parse::<AdminRole>().is_err());
    }

    #[test]
    fn usernames_are_validated() {
        assert_eq!(
            validate_admin_username(" ops.lead@x ").unwrap(),
            "ops.lead@x"
        );
        for bad in ["", "ab", "has space", "名字名字", &"a".repeat(151)] {
            assert!(validate_admin_username(bad).is_err(), "{bad}");
        }
    }
}
