//! JSON written byte for byte like Go's `encoding/json` (Go 1.22+, classic encoder): compact,
//! `<` `>` `&` U+2028 U+2029 escaped as `\u003c`-style sequences, `\b` `\f` `\n` `\r` `\t` short
//! escapes, other control characters as lower-case `\u00xx`. Field order and omission rules
//! come from the serde derives of the types being written.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// A `serde_json` formatter that escapes strings as Go does.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, writer: &mut W, char_escape: CharEscape) -> io::Result<()> {
        // serde_json's escapes for quote, backslash and control characters already match Go.
        serde_json::ser::CompactFormatter.write_char_escape(writer, char_escape)
    }
}

/// Serializes `value` as Go's `json.Marshal` would (given Go-shaped serde derives).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut Serializer::with_formatter(&mut out, GoFormatter))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_line_separators_are_escaped_like_go() {
        let s = "a<b>&c\u{2028}\u{2029}\n\t\u{8}\u{c}\u{1f}\u{7f}é\"\\";
        assert_eq!(
            String::from_utf8(to_vec(s).unwrap()).unwrap(),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\n\\t\\b\\f\\u001f\u{7f}é\\\"\\\\\""
        );
    }
}
