//! Helpers shared by the fuzz targets of ocm-ce (see `README.md`).
//!
//! Targets whose decoder takes more than one byte string (the MQTT and Kafka bindings, the work
//! codecs) read their fuzz input in one simple **framing** instead of `arbitrary`'s encoding, so
//! that the seed corpus can be written from real messages (`seeds.py` does it from the Go golden
//! vectors) and stays readable:
//!
//! ```text
//! input  = header [ 0xFE payload ]
//! header = field *( 0xFF field )
//! ```
//!
//! `0xFE` and `0xFF` never occur in UTF-8, so a field can be any UTF-8 text (newlines and NUL
//! included), and any other byte string. The payload is every byte after the first `0xFE`,
//! unrestricted; without a `0xFE` there is no payload (`None`).

/// Ends the header; the payload follows.
pub const PAYLOAD: u8 = 0xFE;
/// Separates the fields of the header.
pub const SEPARATOR: u8 = 0xFF;

/// A fuzz input split into header fields and an optional payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header fields, in order (at least one, possibly empty).
    pub fields: Vec<&'a [u8]>,
    /// The bytes after the first [`PAYLOAD`] byte, if there is one.
    pub payload: Option<&'a [u8]>,
}

impl<'a> Frame<'a> {
    /// Splits `data` (never fails: every byte string is a frame).
    pub fn parse(data: &'a [u8]) -> Self {
        let (header, payload) = match data.iter().position(|&b| b == PAYLOAD) {
            Some(i) => (&data[..i], Some(&data[i + 1..])),
            None => (data, None),
        };
        Self {
            fields: header.split(|&b| b == SEPARATOR).collect(),
            payload,
        }
    }

    /// Field `i` as text (lossy UTF-8), `""` when absent.
    pub fn text(&self, i: usize) -> String {
        self.fields.get(i).map(|f| text(f)).unwrap_or_default()
    }

    /// The fields from `start` on, as (name, value) pairs; an odd last name gets an empty value.
    pub fn pairs(&self, start: usize) -> Vec<(&'a [u8], &'a [u8])> {
        self.fields
            .get(start..)
            .unwrap_or_default()
            .chunks(2)
            .map(|c| (c[0], c.get(1).copied().unwrap_or_default()))
            .collect()
    }
}

/// Lossy UTF-8 text of a field.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_the_first_payload_byte() {
        let f = Frame::parse(b"a\xffb\xffc\xfe\xff\xfepay");
        assert_eq!(f.fields, [&b"a"[..], b"b", b"c"]);
        assert_eq!(f.payload, Some(&b"\xff\xfepay"[..]));
        assert_eq!(f.pairs(1), [(&b"b"[..], &b"c"[..])]);
        let f = Frame::parse(b"");
        assert_eq!(f.fields, [&b""[..]]);
        assert_eq!(f.payload, None);
        assert_eq!(f.pairs(0), [(&b""[..], &b""[..])]);
        assert!(f.pairs(5).is_empty());
    }
}
