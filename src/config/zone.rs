//! The time zone cybertron's `time_zone` names, as a fixed offset.
//!
//! It lives in the config layer because reading cybertron checks the zone
//! there, and config uses nothing above it; the time schedulers import it
//! from here to count their hours in the same zone.

use chrono::FixedOffset;

/// Parses a time zone as cybertron gives it: `UTC`, or a fixed offset like
/// `+02:00` or `-0530`.
pub fn parse_zone(text: &str) -> Result<FixedOffset, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(FixedOffset::east_opt(0).expect("zero offset"));
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => {
            return Err(format!(
                "time zone {text:?}: expected \"UTC\" or an offset like \"+02:00\""
            ))
        }
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    let valid = digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit());
    let (hours, minutes) = if valid {
        (
            digits[..2].parse::<i32>().unwrap_or(99),
            digits[2..].parse::<i32>().unwrap_or(99),
        )
    } else {
        (99, 99)
    };
    if hours > 14 || minutes > 59 {
        return Err(format!(
            "time zone {text:?}: expected \"UTC\" or an offset like \"+02:00\""
        ));
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
        .ok_or_else(|| format!("time zone {text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_utc_or_fixed_offsets() {
        assert_eq!(
            parse_zone("-0530").map(|z| z.local_minus_utc()),
            Ok(-(5 * 3600 + 30 * 60))
        );
        assert!(parse_zone("Mars/Olympus").is_err());
        assert!(parse_zone("+25:00").is_err());
    }
}
