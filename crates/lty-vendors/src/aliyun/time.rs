//! UTC calendar formatting of Unix timestamps for the Aliyun signers
//! (ISO 8601 `Timestamp`/`x-acs-date`, RFC 1123 `Date`), without a date crate.

/// Broken-down UTC time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    /// 0 = Sunday.
    weekday: u64,
}

fn civil(unix: u64) -> Civil {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Howard Hinnant's days-from-civil inverse, shifted so eras start in March;
    // every intermediate fits in i64 for any u64 input.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: secs / 3_600,
        minute: secs % 3_600 / 60,
        second: secs % 60,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4) % 7,
    }
}

/// `YYYY-MM-DDThh:mm:ssZ`, the format of RPC `Timestamp` and ACS3 `x-acs-date`.
pub(crate) fn iso8601(unix: u64) -> String {
    let c = civil(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// RFC 1123 in GMT (`Tue, 04 Mar 2025 08:09:10 GMT`), the `Date` header of
/// OSS and SLS requests.
pub(crate) fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(unix);
    // Both indexes are in range by construction; `get` keeps this panic-free.
    let weekday = DAYS.get(c.weekday as usize).copied().unwrap_or("???");
    let month = MONTHS
        .get((c.month as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("???");
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_documented_timestamps() {
        // Aliyun ECS "Request signatures" example uses 2016-02-23T12:46:24Z.
        assert_eq!(iso8601(1_456_231_584), "2016-02-23T12:46:24Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn http_date_matches_rfc_1123() {
        assert_eq!(http_date(1_672_223_261), "Wed, 28 Dec 2022 10:27:41 GMT");
        assert_eq!(http_date(1_447_048_983), "Mon, 09 Nov 2015 06:03:03 GMT");
        assert_eq!(http_date(1_132_253_398), "Thu, 17 Nov 2005 18:49:58 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn formatting_never_panics_at_the_extremes() {
        assert!(!iso8601(u64::MAX).is_empty());
        assert!(!http_date(u64::MAX).is_empty());
    }
}
