//! `from`/`to` parsing: unix seconds (integer or fractional), RFC 3339, `now`, `now-1h`.

use chrono::DateTime;

pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// Parses a point in time to unix nanoseconds.
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        let d = crate::config::parse_duration(rest)?;
        return Ok(now.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
    }
    if let Ok(secs) = s.parse::<i64>() {
        // Accept milliseconds / nanoseconds too when the magnitude says so.
        return Ok(if secs.unsigned_abs() > 100_000_000_000_000 {
            secs
        } else if secs.unsigned_abs() > 100_000_000_000 {
            secs.saturating_mul(1_000_000)
        } else {
            secs.saturating_mul(1_000_000_000)
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.abs() < 1e11 {
            return Ok((f * 1e9) as i64);
        }
    }
    parse_rfc3339(s).ok_or_else(|| format!("invalid time {s:?}: use unix seconds or RFC 3339"))
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .and_then(|d| d.timestamp_nanos_opt())
}

pub fn format_rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn format_rfc3339_nanos(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_time("10", 0).unwrap(), 10_000_000_000);
        assert_eq!(parse_time("1.5", 0).unwrap(), 1_500_000_000);
        assert_eq!(
            parse_time("2026-11-24T18:36:48.605662892Z", 0).unwrap(),
            1_795_545_408_605_662_892
        );
        assert_eq!(
            parse_time("now-1m", 120_000_000_000).unwrap(),
            60_000_000_000
        );
        assert!(parse_time("yesterday", 0).is_err());
    }
}
