//! How times, durations and sizes read for people, on pages and in the
//! command line alike: relative times ("5 min ago") with the absolute one
//! beside, durations at a glance, sizes in binary units.

/// "just now", "12 s ago", "5 min ago", "3 h ago", "2 days ago".
pub fn ago(ms: u64, now: u64) -> String {
    let seconds = now.saturating_sub(ms) / 1000;
    match seconds {
        0..=4 => "just now".to_string(),
        5..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ if seconds < 2 * 86_400 => "yesterday".to_string(),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// `2026-12-01 14:23:50 UTC`, for the hover and for machines.
pub fn absolute(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// `2026-12-01T14:23:50Z`: the `datetime` of a `<time>`.
pub fn iso(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// "850 ms", "12.3 s", "4 min 05 s", "1 h 02 min".
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// `1.5 MiB`, `320 KiB`, `12 bytes`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    match bytes {
        0..=1023 => format!("{bytes} bytes"),
        1024..=1_048_575 => format!("{:.0} KiB", bytes as f64 / KIB),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", bytes as f64 / KIB / KIB),
        _ => format!("{:.1} GiB", bytes as f64 / KIB / KIB / KIB),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_these_at_a_glance() {
        let now = 1_800_000_000_000;
        assert_eq!(ago(now - 2_000, now), "just now");
        assert_eq!(ago(now - 42_000, now), "42 s ago");
        assert_eq!(ago(now - 5 * 60_000, now), "5 min ago");
        assert_eq!(ago(now - 3 * 3_600_000, now), "3 h ago");
        assert_eq!(ago(now - 30 * 3_600_000, now), "yesterday");
        assert_eq!(ago(now - 5 * 86_400_000, now), "5 days ago");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4 min 05 s");
        assert_eq!(duration(3_720_000), "1 h 02 min");
        assert_eq!(size(2_500_000), "2.4 MiB");
        assert_eq!(absolute(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(iso(1_000), "1970-01-01T00:00:01Z");
    }
}
