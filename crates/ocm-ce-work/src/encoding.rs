//! Go `encoding/json` behaviours that [`ocm_ce_core::go_json`] does not cover: compaction of raw
//! JSON (what Go does to the output of a `MarshalJSON`), the re-marshalling of a decoded
//! `Unstructured` object (sorted keys, Go number formatting, trailing newline) and `%q` quoting.

use std::fmt::Write as _;

use serde_json::Value;

/// Compacts valid JSON text as Go's `json.Compact` with HTML escaping does (the encoder applies
/// it to raw messages): insignificant whitespace is dropped, and inside strings `<` `>` `&`
/// U+2028 U+2029 become `\u003c`-style escapes. Everything else is kept byte for byte.
pub(crate) fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                _ => out.push(c),
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

/// Writes `value` as Go's `json.Encoder.Encode` writes a decoded `Unstructured` object: map
/// keys sorted, HTML-escaped strings, integers as integers, other numbers as Go float64, and a
/// trailing newline.
pub(crate) fn unstructured_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out.push('\n');
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, v);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    // Strings never fail to serialize.
    let bytes = ocm_ce_core::go_json::to_vec(s).unwrap_or_default();
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// Go's (apimachinery) decoding keeps integer literals that fit an int64 as integers and turns
/// every other number into a float64; encoding then prints floats with `strconv`'s shortest
/// representation, switching to exponent form below 1e-6 and from 1e21 on.
fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&go_float(f));
    } else {
        out.push_str(&n.to_string());
    }
}

/// Formats a float64 as Go's `encoding/json` does.
pub(crate) fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is the shortest round-trip form, like Go's 'e' with precision -1;
        // Go writes a sign on the exponent and at least two digits, which encoding/json then
        // trims back to one digit for negative exponents (`1e-07` → `1e-7`).
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else if f == f.trunc() && abs < 1e21 {
        // Integral values print without a fraction.
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

/// Quotes a string like Go's `%q` (`strconv.Quote`): printable characters as is, the usual
/// backslash escapes, `\x` for other bytes below 0x80 and `\u`/`\U` for non-printable runes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space. Controls, separators other than space, format characters and
/// unassigned/private code points are not printable.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e
        | 0x2060..=0x206f | 0xd800..=0xdfff | 0xe000..=0xf8ff | 0xfeff | 0xfff9..=0xfffb
        | 0xf0000..=0x10ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_drops_whitespace_and_escapes_html_inside_strings() {
        let raw = "{ \"a\" : [1, 2],\n\t\"b\": \"x <y> & z \\\" \u{2028}\" }";
        assert_eq!(
            compact(raw),
            "{\"a\":[1,2],\"b\":\"x \\u003cy\\u003e \\u0026 z \\\" \\u2028\"}"
        );
        assert_eq!(compact("\"\\u00e9 \\/\""), "\"\\u00e9 \\/\"");
    }

    #[test]
    fn unstructured_objects_are_written_with_sorted_keys_and_a_newline() {
        let v: Value = serde_json::from_str(r#"{"z":1,"a":{"y":1.0,"b":"<&>"},"m":[1e3, 1.5, 1e21, 1e-7]}"#).unwrap();
        assert_eq!(
            unstructured_json(&v),
            "{\"a\":{\"b\":\"\\u003c\\u0026\\u003e\",\"y\":1},\"m\":[1000,1.5,1e+21,1e-7],\"z\":1}\n"
        );
        assert_eq!(unstructured_json(&Value::Null), "null\n");
    }

    #[test]
    fn floats_format_like_go() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(-2.0), "-2");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.25e-7), "1.25e-7");
        assert_eq!(go_float(0.000001), "0.000001");
    }

    #[test]
    fn quoting_follows_go_percent_q() {
        assert_eq!(go_quote("a\"b\\c\n\u{0}é\u{7f}"), "\"a\\\"b\\\\c\\n\\x00é\\x7f\"");
        assert_eq!(go_quote("\u{feff}"), "\"\\ufeff\"");
    }
}
