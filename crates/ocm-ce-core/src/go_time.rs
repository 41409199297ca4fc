//! Go's RFC 3339 time rules, in one place: parsing as `time.Parse(time.RFC3339Nano, s)` does
//! (with Go's error texts), formatting as `Format(time.RFC3339Nano)` does or at whole seconds as
//! `metav1.Time` does, and Go's zero `time.Time`.
//!
//! The layouts Go parses with ([`Layout::Rfc3339`] and [`Layout::Rfc3339Nano`]) accept the same
//! strings; they differ only in the layout named by an error. The two ways of writing a time
//! differ in precision, which [`Precision`] makes explicit.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};

/// Seconds from the Unix epoch to Go's zero `time.Time` (`0001-01-01T00:00:00Z`).
pub const GO_ZERO_UNIX_SECONDS: i64 = -62_135_596_800;

/// Go's zero `time.Time`, `0001-01-01T00:00:00Z`.
pub fn go_zero_time() -> DateTime<Utc> {
    // The constant is a valid chrono time (year 1).
    DateTime::from_timestamp(GO_ZERO_UNIX_SECONDS, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether `time` is Go's zero time, which Go treats as "no time" (no `time` attribute, a
/// `null` `metav1.Time`).
pub fn is_go_zero_time(time: &DateTime<Utc>) -> bool {
    time.timestamp() == GO_ZERO_UNIX_SECONDS && time.timestamp_subsec_nanos() == 0
}

/// How many fractional digits a written time keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Go's `time.RFC3339Nano`: up to nine fractional digits with trailing zeros (and a bare
    /// dot) removed; CloudEvents timestamps are written this way.
    Nanos,
    /// Go's `time.RFC3339`: whole seconds, the fraction dropped (so times before 1970 round
    /// down); `metav1.Time` is written this way.
    Seconds,
}

/// Writes `time` in UTC as Go's `t.UTC().Format(layout)` does, with the layout's `precision`.
///
/// Years beyond 9999 are written with all their digits and years before 0 with a minus sign
/// and four digits, as Go writes them.
pub fn format_rfc3339(time: &DateTime<Utc>, precision: Precision) -> String {
    // Written digit by digit: every event and every condition time goes through here.
    let t = time.naive_utc();
    let mut out = String::with_capacity(32);
    let year = t.year();
    if year < 0 {
        out.push('-');
    }
    push_digits(&mut out, year.unsigned_abs(), 4);
    for (separator, value) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        out.push(separator);
        push_digits(&mut out, value, 2);
    }
    // chrono keeps a leap second as nanos >= 1e9; Go has no leap seconds.
    let mut nanos = t.nanosecond() % 1_000_000_000;
    if precision == Precision::Nanos && nanos != 0 {
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        out.push('.');
        push_digits(&mut out, nanos, width);
    }
    out.push('Z');
    out
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut String, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut start = digits.len();
    let mut rest = value;
    while rest > 0 || start == digits.len() {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    for _ in (digits.len() - start)..width {
        out.push('0');
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// The layout Go parses a time with; it names itself in a "cannot parse" error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `time.RFC3339` (`metav1.Time`).
    Rfc3339,
    /// `time.RFC3339Nano` (CloudEvents `types.ParseTime`).
    Rfc3339Nano,
}

impl Layout {
    fn as_str(self) -> &'static str {
        match self {
            Self::Rfc3339 => "2006-01-02T15:04:05Z07:00",
            Self::Rfc3339Nano => "2006-01-02T15:04:05.999999999Z07:00",
        }
    }
}

/// A string Go's `time.Parse` refuses; `Display` is Go's `*time.ParseError` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeParseError {
    input: String,
    layout: Layout,
    kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ParseErrorKind {
    /// `cannot parse "rest" as "element"`.
    Cannot { at: usize, element: &'static str },
    /// `extra text: "rest"`.
    ExtraText { at: usize },
    /// `what out of range`.
    OutOfRange { what: &'static str },
}

impl TimeParseError {
    /// The string that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for TimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = go_time_quote(&self.input);
        match &self.kind {
            ParseErrorKind::Cannot { at, element } => write!(
                f,
                "parsing time {input} as {}: cannot parse {} as {}",
                go_time_quote(self.layout.as_str()),
                go_time_quote(&self.input[*at..]),
                go_time_quote(element)
            ),
            ParseErrorKind::ExtraText { at } => {
                write!(
                    f,
                    "parsing time {input}: extra text: {}",
                    go_time_quote(&self.input[*at..])
                )
            }
            ParseErrorKind::OutOfRange { what } => write!(f, "parsing time {input}: {what} out of range"),
        }
    }
}

impl std::error::Error for TimeParseError {}

/// Parses `s` as Go's `time.Parse(layout, s)` does for the RFC 3339 layouts:
/// `YYYY-MM-DDTHH:MM:SS[(.|,)fraction](Z|±hh:mm)`, upper case `T` and `Z` only, an hour of one
/// or two digits, no leap second, fraction digits beyond nine truncated, offsets up to `24:60`
/// (as Go allows). The result is in UTC.
pub fn parse_rfc3339(s: &str, layout: Layout) -> Result<DateTime<Utc>, TimeParseError> {
    let b = s.as_bytes();
    let fail = |kind| TimeParseError {
        input: s.to_owned(),
        layout,
        kind,
    };
    let cannot = |at: usize, element| fail(ParseErrorKind::Cannot { at, element });
    let range = |what| fail(ParseErrorKind::OutOfRange { what });
    let digit = |at: usize| b.get(at).filter(|c| c.is_ascii_digit()).map(|c| u32::from(c - b'0'));
    let two_digits = |at: usize| Some(digit(at)? * 10 + digit(at + 1)?);
    let literal = |at: usize, c: u8, element| {
        if b.get(at) == Some(&c) {
            Ok(())
        } else {
            Err(cannot(at, element))
        }
    };

    let year = (0..4)
        .map(digit)
        .try_fold(0u32, |acc, d| Some(acc * 10 + d?))
        .ok_or_else(|| cannot(0, "2006"))?;
    literal(4, b'-', "-")?;
    let month = two_digits(5).ok_or_else(|| cannot(5, "01"))?;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    literal(7, b'-', "-")?;
    let day = two_digits(8).ok_or_else(|| cannot(8, "02"))?;
    literal(10, b'T', "T")?;
    // Go's "15" takes one digit when a second one does not follow.
    let (hour, mut i) = match (digit(11), digit(12)) {
        (Some(h), Some(l)) => (h * 10 + l, 13),
        (Some(h), None) => (h, 12),
        (None, _) => return Err(cannot(11, "15")),
    };
    if hour >= 24 {
        return Err(range("hour"));
    }
    literal(i, b':', ":")?;
    let minute = two_digits(i + 1).ok_or_else(|| cannot(i + 1, "04"))?;
    if minute >= 60 {
        return Err(range("minute"));
    }
    literal(i + 3, b':', ":")?;
    let second = two_digits(i + 4).ok_or_else(|| cannot(i + 4, "05"))?;
    if second >= 60 {
        return Err(range("second"));
    }
    i += 6;

    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) && digit(i + 1).is_some() {
        let start = i + 1;
        let mut end = start;
        while digit(end).is_some() {
            end += 1;
        }
        let kept = &b[start..end.min(start + 9)];
        let value = kept.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        // At most nine digits kept, so the scale is 0..=8 and the product below 1e9.
        nanos = value * 10u32.pow(9 - kept.len() as u32);
        i = end;
    }

    let offset_seconds = if b.get(i) == Some(&b'Z') {
        i += 1;
        0
    } else {
        let zone = i;
        if b.len() < zone + 6 || b[zone + 3] != b':' {
            return Err(cannot(zone, "Z07:00"));
        }
        // Go reads the minutes only after good hours, and checks the ranges (with `>`: offsets
        // of 24 hours or 60 minutes pass) before the syntax of the sign.
        let h = two_digits(zone + 1);
        let m = h.and(two_digits(zone + 4));
        if m.is_some_and(|m| m > 60) {
            return Err(range("time zone offset minute"));
        }
        if h.is_some_and(|h| h > 24) {
            return Err(range("time zone offset hour"));
        }
        let (Some(h), Some(m)) = (h, m) else {
            return Err(cannot(zone, "Z07:00"));
        };
        let magnitude = i64::from(h * 3600 + m * 60);
        i += 6;
        match b[zone] {
            b'+' => magnitude,
            b'-' => -magnitude,
            _ => return Err(cannot(zone, "Z07:00")),
        }
    };
    if i != b.len() {
        return Err(fail(ParseErrorKind::ExtraText { at: i }));
    }

    // Four digits fit an i32.
    let year = i32::try_from(year).unwrap_or(0);
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| range("day"))?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).ok_or_else(|| range("second"))?;
    date.and_time(time)
        .and_utc()
        .checked_sub_signed(TimeDelta::seconds(offset_seconds))
        .ok_or_else(|| range("year"))
}

/// Go's `time.quote`: ASCII as is with `"` and `\` escaped, every other byte as `\xNN`.
fn go_time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' && c != '\u{7f}' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Inputs with what Go 1.26 `time.Parse(time.RFC3339Nano, s)` returns: `ok` and the time
    /// written with `Format(time.RFC3339Nano)`, or `err` and the error text.
    const GO_CASES: &[(&str, &str)] = &[
        ("2024-10-01T12:00:00Z", "ok 2024-10-01T12:00:00Z"),
        ("2024-10-01T12:00:00.123456789Z", "ok 2024-10-01T12:00:00.123456789Z"),
        ("2024-10-01T12:00:00.500Z", "ok 2024-10-01T12:00:00.5Z"),
        ("2024-10-01T14:00:00+02:00", "ok 2024-10-01T12:00:00Z"),
        ("2024-10-01T12:00:00,5-01:30", "ok 2024-10-01T13:30:00.5Z"),
        ("2024-10-01T12:00:00.1234567891Z", "ok 2024-10-01T12:00:00.123456789Z"),
        ("2024-10-01T12:00:00+24:00", "ok 2024-09-30T12:00:00Z"),
        ("2024-10-01T12:00:00-23:60", "ok 2024-10-02T12:00:00Z"),
        (
            "2024-10-01T12:00:00+25:00",
            r#"err parsing time "2024-10-01T12:00:00+25:00": time zone offset hour out of range"#,
        ),
        (
            "2024-10-01T12:00:00+12:61",
            r#"err parsing time "2024-10-01T12:00:00+12:61": time zone offset minute out of range"#,
        ),
        ("2024-10-01T1:00:00Z", "ok 2024-10-01T01:00:00Z"),
        (
            "2024-10-01T12:0:00Z",
            r#"err parsing time "2024-10-01T12:0:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "0:00Z" as "04""#,
        ),
        (
            "2024-1-01T12:00:00Z",
            r#"err parsing time "2024-1-01T12:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "1-01T12:00:00Z" as "01""#,
        ),
        (
            "yesterday",
            r#"err parsing time "yesterday" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "yesterday" as "2006""#,
        ),
        (
            "",
            r#"err parsing time "" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "" as "2006""#,
        ),
        (
            "2024-10-01t12:00:00Z",
            r#"err parsing time "2024-10-01t12:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "t12:00:00Z" as "T""#,
        ),
        (
            "2024-10-01T12:00:00z",
            r#"err parsing time "2024-10-01T12:00:00z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "z" as "Z07:00""#,
        ),
        (
            "2024-10-01 12:00:00Z",
            r#"err parsing time "2024-10-01 12:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse " 12:00:00Z" as "T""#,
        ),
        (
            "2024-10-01T12:00:00",
            r#"err parsing time "2024-10-01T12:00:00" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "" as "Z07:00""#,
        ),
        (
            "2024-02-30T12:00:00Z",
            r#"err parsing time "2024-02-30T12:00:00Z": day out of range"#,
        ),
        ("2024-02-29T12:00:00Z", "ok 2024-02-29T12:00:00Z"),
        (
            "2023-02-29T12:00:00Z",
            r#"err parsing time "2023-02-29T12:00:00Z": day out of range"#,
        ),
        (
            "2024-10-01T24:00:00Z",
            r#"err parsing time "2024-10-01T24:00:00Z": hour out of range"#,
        ),
        (
            "2024-10-01T12:00:60Z",
            r#"err parsing time "2024-10-01T12:00:60Z": second out of range"#,
        ),
        (
            "2024-10-01T12:60:00Z",
            r#"err parsing time "2024-10-01T12:60:00Z": minute out of range"#,
        ),
        (
            "2024-13-01T12:00:00Z",
            r#"err parsing time "2024-13-01T12:00:00Z": month out of range"#,
        ),
        (
            "2024-00-01T12:00:00Z",
            r#"err parsing time "2024-00-01T12:00:00Z": month out of range"#,
        ),
        (
            "2024-10-00T12:00:00Z",
            r#"err parsing time "2024-10-00T12:00:00Z": day out of range"#,
        ),
        (
            "2024-10-32T12:00:00Z",
            r#"err parsing time "2024-10-32T12:00:00Z": day out of range"#,
        ),
        (
            "2024-10-01T12:00:00.Z",
            r#"err parsing time "2024-10-01T12:00:00.Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse ".Z" as "Z07:00""#,
        ),
        (
            "24-10-01T12:00:00Z",
            r#"err parsing time "24-10-01T12:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "24-10-01T12:00:00Z" as "2006""#,
        ),
        (
            "2024-10-01T12:00:00Zjunk",
            r#"err parsing time "2024-10-01T12:00:00Zjunk": extra text: "junk""#,
        ),
        (
            "2024-10-01T12:00:00+02:00x",
            r#"err parsing time "2024-10-01T12:00:00+02:00x": extra text: "x""#,
        ),
        (
            "2024-10-01T12:00:00+0200",
            r#"err parsing time "2024-10-01T12:00:00+0200" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "+0200" as "Z07:00""#,
        ),
        (
            "2024-10-01T12:00:00*25:00",
            r#"err parsing time "2024-10-01T12:00:00*25:00": time zone offset hour out of range"#,
        ),
        (
            "2024-10-01T12:00:00+2a:00",
            r#"err parsing time "2024-10-01T12:00:00+2a:00" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "+2a:00" as "Z07:00""#,
        ),
        (
            "2024-10-01T12:00:00.5",
            r#"err parsing time "2024-10-01T12:00:00.5" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "" as "Z07:00""#,
        ),
        (
            "2024-13-01 12:00:00Z",
            r#"err parsing time "2024-13-01 12:00:00Z": month out of range"#,
        ),
        ("0000-01-01T00:00:00Z", "ok 0000-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "ok 0001-01-01T00:00:00Z"),
        (
            "9999-12-31T23:59:59.999999999-24:00",
            "ok 10000-01-01T23:59:59.999999999Z",
        ),
        ("0000-01-01T00:00:00+01:00", "ok -0001-12-31T23:00:00Z"),
        (
            "2024-10-01T12:00:00+02:00\u{e9}",
            r#"err parsing time "2024-10-01T12:00:00+02:00\xc3\xa9": extra text: "\xc3\xa9""#,
        ),
        (
            "h\u{e9}llo\"\\",
            r#"err parsing time "h\xc3\xa9llo\"\\" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "h\xc3\xa9llo\"\\" as "2006""#,
        ),
        (
            "2024-10-01T12:00:00.\u{e9}",
            r#"err parsing time "2024-10-01T12:00:00.\xc3\xa9" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse ".\xc3\xa9" as "Z07:00""#,
        ),
        (
            "2024-10-01T12:00:00\u{1}",
            r#"err parsing time "2024-10-01T12:00:00\x01" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "\x01" as "Z07:00""#,
        ),
        ("2024-10-01T12:00:00.000000000Z", "ok 2024-10-01T12:00:00Z"),
        (
            "+2024-10-01T12:00:00Z",
            r#"err parsing time "+2024-10-01T12:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "+2024-10-01T12:00:00Z" as "2006""#,
        ),
    ];

    #[test]
    fn parses_and_refuses_exactly_as_go_does() {
        for (input, want) in GO_CASES {
            let got = match parse_rfc3339(input, Layout::Rfc3339Nano) {
                Ok(t) => format!("ok {}", format_rfc3339(&t, Precision::Nanos)),
                Err(e) => format!("err {e}"),
            };
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn the_layout_only_changes_the_name_in_cannot_parse_errors() {
        for (input, _) in GO_CASES {
            let nano = parse_rfc3339(input, Layout::Rfc3339Nano).map_err(|e| e.to_string());
            let plain = parse_rfc3339(input, Layout::Rfc3339).map_err(|e| {
                e.to_string()
                    .replace("2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00")
            });
            assert_eq!(nano, plain, "{input:?}");
        }
        assert_eq!(
            parse_rfc3339("x", Layout::Rfc3339).unwrap_err().to_string(),
            r#"parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006""#
        );
    }

    #[test]
    fn formats_at_either_precision() {
        for (input, nanos, seconds) in [
            (
                "2024-10-01T12:00:00.123456789Z",
                "2024-10-01T12:00:00.123456789Z",
                "2024-10-01T12:00:00Z",
            ),
            (
                "2024-10-01T12:00:00.500Z",
                "2024-10-01T12:00:00.5Z",
                "2024-10-01T12:00:00Z",
            ),
            (
                "2026-11-25T12:20:41.034698300Z",
                "2026-11-25T12:20:41.0346983Z",
                "2026-11-25T12:20:41Z",
            ),
            ("2024-10-01T12:00:00Z", "2024-10-01T12:00:00Z", "2024-10-01T12:00:00Z"),
            (
                "2024-10-01T14:00:00.1+02:00",
                "2024-10-01T12:00:00.1Z",
                "2024-10-01T12:00:00Z",
            ),
            (
                "1969-12-31T23:59:59.5Z",
                "1969-12-31T23:59:59.5Z",
                "1969-12-31T23:59:59Z",
            ),
        ] {
            assert_eq!(format_rfc3339(&utc(input), Precision::Nanos), nanos);
            assert_eq!(format_rfc3339(&utc(input), Precision::Seconds), seconds);
        }
    }

    proptest::proptest! {
        #[test]
        fn formats_any_time_as_its_fields_say(
            secs in -100_000_000_000i64..300_000_000_000,
            nanos in proptest::prop_oneof![0u32..1_000_000_000, proptest::strategy::Just(0), proptest::strategy::Just(500_000_000)],
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let year = if t.year() < 0 { format!("-{:04}", t.year().unsigned_abs()) } else { format!("{:04}", t.year()) };
            let seconds = format!(
                "{year}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.month(), t.day(), t.hour(), t.minute(), t.second()
            );
            let fraction = format!("{nanos:09}");
            let fraction = fraction.trim_end_matches('0');
            let dot = if fraction.is_empty() { "" } else { "." };
            proptest::prop_assert_eq!(format_rfc3339(&t, Precision::Seconds), format!("{seconds}Z"));
            proptest::prop_assert_eq!(format_rfc3339(&t, Precision::Nanos), format!("{seconds}{dot}{fraction}Z"));
        }
    }

    #[test]
    fn go_zero_time_is_year_one_and_only_exactly_so() {
        assert_eq!(go_zero_time(), utc("0001-01-01T00:00:00Z"));
        assert!(is_go_zero_time(&go_zero_time()));
        assert!(!is_go_zero_time(&utc("0001-01-01T00:00:00.000000001Z")));
        assert!(!is_go_zero_time(&Utc::now()));
        assert_eq!(
            format_rfc3339(&go_zero_time(), Precision::Nanos),
            "0001-01-01T00:00:00Z"
        );
    }
}
