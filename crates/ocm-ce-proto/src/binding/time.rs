//! Time values the way Go writes and reads them.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use prost_types::Timestamp;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// `timestamppb.New(t)`.
pub(super) fn to_timestamp(time: &DateTime<Utc>) -> Timestamp {
    let mut seconds = time.timestamp();
    let mut nanos = i64::from(time.timestamp_subsec_nanos());
    // chrono keeps a leap second as nanos >= 1e9; Go has no leap seconds.
    if nanos >= NANOS_PER_SECOND {
        seconds = seconds.saturating_add(1);
        nanos -= NANOS_PER_SECOND;
    }
    Timestamp {
        seconds,
        // In 0..1e9 after the adjustment above.
        nanos: i32::try_from(nanos).unwrap_or(0),
    }
}

/// `ts.AsTime()`: nanos outside `0..1e9` are carried into the seconds, as Go does.
pub(super) fn from_timestamp(ts: &Timestamp) -> Result<DateTime<Utc>, String> {
    let nanos = i64::from(ts.nanos);
    let seconds = ts.seconds.checked_add(nanos.div_euclid(NANOS_PER_SECOND));
    let nanos = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).ok();
    seconds
        .zip(nanos)
        .and_then(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos))
        .ok_or_else(|| format!("timestamp out of range: seconds {} nanos {}", ts.seconds, ts.nanos))
}

/// Go's `t.UTC().Format(time.RFC3339Nano)`: the CloudEvents canonical string form of a
/// timestamp, with the fraction's trailing zeros (and a bare dot) removed.
pub(super) fn format_rfc3339_nano(time: &DateTime<Utc>) -> String {
    let year = time.year();
    let year = if year < 0 {
        format!("-{:04}", year.unsigned_abs())
    } else {
        format!("{year:04}")
    };
    let mut out = format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
    );
    let nanos = time.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Go's `time.Parse(time.RFC3339Nano, s)`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, upper
/// case `T` and `Z` only, no leap second, fraction digits beyond nine truncated.
pub(super) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)?;
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);

    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let kept = &b[start..end.min(start + 9)];
        let scale = 9 - u32::try_from(kept.len()).ok()?;
        let value = kept.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        nanos = value * 10u32.pow(scale);
        i = end;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).filter(|_| second < 60)?;

    let offset_seconds = match b.get(i..)? {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if h >= 24 || m >= 60 {
                return None;
            }
            let magnitude = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    let local = date.and_time(time).and_utc();
    local.checked_sub_signed(TimeDelta::seconds(offset_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        for (input, want) in [
            ("2024-10-01T12:00:00.123456789Z", "2024-10-01T12:00:00.123456789Z"),
            ("2024-10-01T12:00:00.500Z", "2024-10-01T12:00:00.5Z"),
            ("2026-11-25T12:20:41.034698300Z", "2026-11-25T12:20:41.0346983Z"),
            ("2024-10-01T12:00:00Z", "2024-10-01T12:00:00Z"),
            ("2024-10-01T14:00:00.1+02:00", "2024-10-01T12:00:00.1Z"),
        ] {
            assert_eq!(format_rfc3339_nano(&utc(input)), want);
        }
    }

    #[test]
    fn parses_what_go_parses() {
        assert_eq!(
            parse_rfc3339("2024-10-01T12:00:00.123456789Z"),
            Some(utc("2024-10-01T12:00:00.123456789Z"))
        );
        assert_eq!(
            parse_rfc3339("2024-10-01T14:00:00+02:00"),
            Some(utc("2024-10-01T12:00:00Z"))
        );
        assert_eq!(
            parse_rfc3339("2024-10-01T12:00:00,5-01:30"),
            Some(utc("2024-10-01T13:30:00.5Z"))
        );
        assert_eq!(
            parse_rfc3339("2024-10-01T12:00:00.1234567891Z"),
            Some(utc("2024-10-01T12:00:00.123456789Z"))
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "yesterday",
            "",
            "2024-10-01t12:00:00Z",
            "2024-10-01T12:00:00z",
            "2024-10-01 12:00:00Z",
            "2024-10-01T12:00:00",
            "2024-02-30T12:00:00Z",
            "2024-10-01T24:00:00Z",
            "2024-10-01T12:00:60Z",
            "2024-10-01T12:00:00.Z",
            "2024-10-01T12:00:00+24:00",
            "24-10-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps_round_trip_and_normalise_nanos() {
        let t = utc("2024-10-01T12:00:00.123456789Z");
        assert_eq!(from_timestamp(&to_timestamp(&t)), Ok(t));
        let carried = Timestamp { seconds: 10, nanos: -1 };
        assert_eq!(
            from_timestamp(&carried),
            Ok(DateTime::from_timestamp(9, 999_999_999).unwrap())
        );
        assert!(
            from_timestamp(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_err()
        );
    }
}
