//! Orders of the admin listings. Each listing has its own whitelist of
//! sort keys (an enum per listing, below); a key maps to one column in the
//! query that lists, never to SQL from the request. Every order ends with
//! the row's id (or other unique key) in the same direction, so pages are
//! stable, and puts empty values (`NULL`) first when ascending and last
//! when descending on both SQLite and PostgreSQL.

use sea_orm::sea_query::NullOrdering;
use sea_orm::{EntityTrait, IntoSimpleExpr, Order, QueryOrder, Select};

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    /// `asc` or `desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    /// `asc` or `desc`, as written in a query string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }
}

/// A listing's order: one of its keys and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<K> {
    pub key: K,
    pub dir: Direction,
}

/// The sort keys of one listing.
pub trait SortKey: Copy + PartialEq + Sized + 'static {
    /// Every key with its name in query strings.
    const KEYS: &'static [(&'static str, Self)];
    /// The listing's order when none is asked for.
    const DEFAULT: Sort<Self>;

    /// The key named `name`.
    fn parse(name: &str) -> Option<Self> {
        Self::KEYS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// This key's name.
    fn name(self) -> &'static str {
        Self::KEYS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }
}

macro_rules! sort_keys {
    ($(#[$meta:meta])* $name:ident, default $def:ident $dir:ident, { $($(#[$vmeta:meta])* $var:ident = $key:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $var),+ }

        impl SortKey for $name {
            const KEYS: &'static [(&'static str, Self)] = &[$(($key, Self::$var)),+];
            const DEFAULT: Sort<Self> = Sort { key: Self::$def, dir: Direction::$dir };
        }
    };
}

sort_keys!(
    /// Users: by id unless asked.
    UserSort, default Id Asc, {
        Id = "id", Username = "username", Nickname = "nickname", Phone = "phone",
        /// `date_joined`.
        Joined = "joined",
        /// Active before disabled when descending.
        Active = "active",
    }
);

sort_keys!(
    /// Devices: by MAC unless asked (xiaozhi devices: most recently seen
    /// first). Board, firmware and last OTA check are what xiaozhi devices
    /// reported; other devices have none.
    DeviceSort, default Mac Asc, {
        Mac = "mac", Board = "board", Firmware = "firmware",
        /// The last OTA check.
        LastCheck = "last_check",
    }
);

impl DeviceSort {
    /// The order of a device listing nobody asked an order of: xiaozhi
    /// devices most recently seen first, any devices by MAC.
    pub fn default_for(xiaozhi_only: bool) -> Sort<Self> {
        if xiaozhi_only {
            Sort {
                key: Self::LastCheck,
                dir: Direction::Desc,
            }
        } else {
            Self::DEFAULT
        }
    }
}

sort_keys!(
    /// Card batches: newest first unless asked.
    BatchSort, default Id Desc, {
        Id = "id", Kind = "kind", Count = "count", Notes = "notes",
        /// Disabled after enabled when ascending.
        Disabled = "disabled",
        Created = "created",
    }
);

sort_keys!(
    /// Plans: by id unless asked.
    PlanSort, default Id Asc, {
        Id = "id", Code = "code", Name = "name", Messages = "messages", Minutes = "minutes",
        Price = "price", Active = "active",
    }
);

sort_keys!(
    /// Personas: by id unless asked.
    PersonaSort, default Id Asc, {
        Id = "id", Slug = "slug", Name = "name",
        /// The youngest age.
        Ages = "ages",
        Active = "active",
    }
);

sort_keys!(
    /// Achievement definitions: by id unless asked.
    AchievementSort, default Id Asc, {
        Id = "id", Code = "code", Name = "name", Event = "event", Threshold = "threshold",
        Active = "active",
    }
);

sort_keys!(
    /// Voice-chat sessions: oldest first unless asked.
    SessionSort, default Started Asc, {
        Started = "started", Task = "task", User = "user", Status = "status",
    }
);

sort_keys!(
    /// The audit log: newest first unless asked.
    AuditSort, default Time Desc, {
        /// The entry's id, which grows with its time.
        Time = "time",
        Operator = "operator", Action = "action",
        /// Target type, then target id.
        Target = "target",
    }
);

sort_keys!(
    /// Firmware releases: newest first unless asked.
    FirmwareSort, default Created Desc, {
        Created = "created", Board = "board", Version = "version", Size = "size",
        Active = "active",
    }
);

fn order_of(dir: Direction) -> (Order, NullOrdering) {
    match dir {
        Direction::Asc => (Order::Asc, NullOrdering::First),
        Direction::Desc => (Order::Desc, NullOrdering::Last),
    }
}

/// Orders `query` by `by` (then the unique `tie`) in `dir`.
pub(crate) fn ordered<E: EntityTrait>(
    query: Select<E>,
    by: impl IntoSimpleExpr,
    tie: impl IntoSimpleExpr,
    dir: Direction,
) -> Select<E> {
    let (order, nulls) = order_of(dir);
    query
        .order_by_with_nulls(by, order.clone(), nulls)
        .order_by(tie, order)
}

/// The `ORDER BY` direction and null placement of `dir`, for a leading
/// column before [`ordered`].
pub(crate) fn order_parts(dir: Direction) -> (Order, NullOrdering) {
    order_of(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_by_name_and_unknown_ones_do_not() {
        assert_eq!(UserSort::parse("joined"), Some(UserSort::Joined));
        assert_eq!(UserSort::Joined.name(), "joined");
        assert_eq!(UserSort::parse("date_joined; drop table"), None);
        assert_eq!(AuditSort::DEFAULT.dir, Direction::Desc);
        assert_eq!(Direction::parse("DESC"), None);
    }
}
