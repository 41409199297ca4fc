//! `timestamppb` conversions the way Go's protobuf runtime does them (the RFC 3339 string
//! form lives in `ocm_ce_core::go_time`).

use chrono::{DateTime, Utc};
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

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
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
