//! Go's `time.ParseDuration` syntax, which the Go SDK's config files use for durations
//! (`10m`, `1h30m`, `500ms`, or a YAML integer of nanoseconds), and serde helpers for such
//! fields.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// Parses a Go duration string (`time.ParseDuration`): an optional sign, then one or more
/// decimal numbers with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), e.g. `1h30m`,
/// `1.5s`, `300ms`; `0` alone is zero. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(invalid)?;
        let mut place = scale;
        for digit in frac.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * place;
        }
        total = total.checked_add(nanos).ok_or_else(invalid)?;
        rest = next;
    }
    if total > u128::from(i64::MAX.unsigned_abs()) {
        return Err(invalid());
    }
    if negative && total != 0 {
        return Err(format!("negative duration {text:?}"));
    }
    // Bounded by i64::MAX above.
    Ok(Duration::from_nanos(u64::try_from(total).unwrap_or(u64::MAX)))
}

/// Deserializes a Go duration: a string in Go's syntax or an integer number of nanoseconds
/// (what Go's YAML decoder accepts for a `time.Duration`). For `#[serde(deserialize_with)]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    deserialize_option(d)?.ok_or_else(|| de::Error::custom("a duration is required"))
}

/// Like [`deserialize`], with a missing or `null` value as `None`.
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct GoDuration;

    impl Visitor<'_> for GoDuration {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Go duration such as \"30s\" or an integer number of nanoseconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_go_duration(v).map(Some).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_nanos(v)))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(|n| Some(Duration::from_nanos(n)))
                .map_err(|_| E::custom(format!("negative duration {v}")))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    d.deserialize_any(GoDuration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        let ok = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(ok("60s"), Duration::from_secs(60));
        assert_eq!(ok("10m"), Duration::from_secs(600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("2us"), Duration::from_micros(2));
        assert_eq!(ok("2µs"), Duration::from_micros(2));
        assert_eq!(ok(".5h"), Duration::from_secs(1800));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("60").unwrap_err(),
            "time: missing unit in duration \"60\""
        );
        assert_eq!(
            parse_go_duration("1x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"1x\""
        );
        for bad in ["", "s", ".s", "1..2s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_go_duration("-1s").is_err());
    }

    #[test]
    fn more_go_durations() {
        let ok = [
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
        for bad in ["10", "1d", "1.2.3s", "."] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_take_strings_nanoseconds_and_null() {
        #[derive(serde::Deserialize)]
        struct C {
            #[serde(deserialize_with = "deserialize")]
            a: Duration,
            #[serde(default, deserialize_with = "deserialize_option")]
            b: Option<Duration>,
        }
        let c: C = serde_json::from_str(r#"{"a":"1m","b":1500}"#).unwrap();
        assert_eq!((c.a, c.b), (Duration::from_secs(60), Some(Duration::from_nanos(1500))));
        let c: C = serde_json::from_str(r#"{"a":5,"b":null}"#).unwrap();
        assert_eq!((c.a, c.b), (Duration::from_nanos(5), None));
        assert!(serde_json::from_str::<C>(r#"{"a":"5"}"#).is_err());
        assert!(serde_json::from_str::<C>(r#"{"a":-1}"#).is_err());
    }
}
