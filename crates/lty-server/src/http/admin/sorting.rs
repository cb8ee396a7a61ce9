//! `?sort=&order=` of the admin listings. Each listing names its keys
//! ([`lty_store::sort`]): a key is looked up in that whitelist and becomes
//! one column of the store's query, never SQL. An unknown key or order is
//! a `400 validation_error`; the order without a key applies to the
//! listing's default key. Ties are broken by id, so pages are stable.

use lty_store::sort::{Direction, Sort, SortKey};
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// The order asked for by `sort` and `order`, or `default` without them.
/// Given a key without an order, ascending.
pub fn resolve<K: SortKey>(
    sort: Option<&str>,
    order: Option<&str>,
    default: Sort<K>,
) -> Result<Sort<K>, lty_core::Error> {
    // A parameter given is a parameter: `?sort=` (empty) or ` id` is not
    // a key, as the OpenAPI enum says, rather than no key.
    let key = match sort {
        None => default.key,
        Some(name) => K::parse(name).ok_or_else(|| {
            let names: Vec<&str> = K::KEYS.iter().map(|(n, _)| *n).collect();
            lty_core::Error::validation("sort", format!("must be one of {}", names.join(", ")))
        })?,
    };
    let dir = match order {
        Some(o) => Direction::parse(o)
            .ok_or_else(|| lty_core::Error::validation("order", "must be asc or desc"))?,
        None if sort.is_none() => default.dir,
        None => Direction::Asc,
    };
    Ok(Sort { key, dir })
}

/// The OpenAPI schema of a listing's `sort`: one of its keys, with the
/// default order in its description.
pub fn keys_schema<K: SortKey>() -> utoipa::openapi::schema::Object {
    let d = K::DEFAULT;
    let dir = match d.dir {
        Direction::Asc => "ascending",
        Direction::Desc => "descending",
    };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(K::KEYS.iter().map(|(n, _)| *n)))
        .description(Some(format!(
            "Sort key (default `{}` {dir}); ties are broken by id.",
            d.key.name()
        )))
        .build()
}

/// The OpenAPI schema of `order`.
pub fn order_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["asc", "desc"]))
        .description(Some(
            "Sort direction: `asc` when `sort` is given without it, else the list's default.",
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lty_store::sort::{AuditSort, UserSort};

    #[test]
    fn a_key_without_an_order_ascends_and_no_key_keeps_the_default() {
        let d = AuditSort::DEFAULT;
        assert_eq!(resolve::<AuditSort>(None, None, d).unwrap(), d);
        let s = resolve::<AuditSort>(Some("action"), None, d).unwrap();
        assert_eq!((s.key, s.dir), (AuditSort::Action, Direction::Asc));
        let s = resolve::<AuditSort>(None, Some("asc"), d).unwrap();
        assert_eq!((s.key, s.dir), (AuditSort::Time, Direction::Asc));
    }

    #[test]
    fn unknown_keys_and_orders_are_refused() {
        let d = UserSort::DEFAULT;
        assert!(resolve::<UserSort>(Some("password"), None, d).is_err());
        assert!(resolve::<UserSort>(Some("id"), Some("sideways"), d).is_err());
        assert!(resolve::<UserSort>(Some(""), None, d).is_err());
        assert!(resolve::<UserSort>(Some(" id"), None, d).is_err());
        assert!(resolve::<UserSort>(Some("id"), Some(""), d).is_err());
    }
}
