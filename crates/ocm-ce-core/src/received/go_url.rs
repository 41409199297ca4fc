//! When Go's `net/url.Parse` rejects a string.
//!
//! Go's parser accepts relative references and most malformed input, so `url::Url::parse`
//! (absolute URLs only, WHATWG rules) would reject messages Go accepts. This is a port of the
//! error paths of `url.Parse` (Go 1.22): the parsed value is not needed, only whether Go would
//! fail, so a received `ce_uri` / `ce_uri_ref` / `source` is accepted exactly when Go accepts
//! it.

/// Checks `raw` the way Go's `url.Parse` does; the error is Go's reason.
pub(super) fn check(raw: &str) -> Result<(), String> {
    let (main, fragment) = match raw.split_once('#') {
        Some((main, fragment)) => (main, Some(fragment)),
        None => (raw, None),
    };
    check_without_fragment(main)?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Other)?;
    }
    Ok(())
}

fn check_without_fragment(raw: &str) -> Result<(), String> {
    if raw.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    if raw == "*" {
        return Ok(());
    }
    let (scheme, rest) = scheme(raw)?;
    let rest = match rest.split_once('?') {
        Some((before, _query)) => before,
        None => rest,
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // A rootless path after a scheme is opaque: never inspected further.
            return Ok(());
        }
        let first_segment = rest.split('/').next().unwrap_or_default();
        if first_segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
    }
    let mut path = rest;
    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let authority_and_path = &rest[2..];
        let (authority, tail) = match authority_and_path.find('/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, ""),
        };
        check_authority(authority)?;
        path = tail;
    }
    unescape(path, Mode::Other)
}

/// Go's `getScheme`: the scheme (possibly empty) and the rest.
fn scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn check_authority(authority: &str) -> Result<(), String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    check_host(host)?;
    if let Some(userinfo) = userinfo {
        let valid = userinfo.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '.'
                        | '_'
                        | ':'
                        | '~'
                        | '!'
                        | '$'
                        | '&'
                        | '\''
                        | '('
                        | ')'
                        | '*'
                        | '+'
                        | ','
                        | ';'
                        | '='
                        | '%'
                        | '@'
                )
        });
        if !valid {
            return Err("net/url: invalid userinfo".to_owned());
        }
        for part in userinfo.splitn(2, ':') {
            unescape(part, Mode::Other)?;
        }
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err("missing ']' in host".to_owned());
        };
        check_port(&host[close + 1..])?;
        if let Some(zone) = host[..close].find("%25") {
            unescape(&host[..zone], Mode::Host)?;
            unescape(&host[zone..close], Mode::Zone)?;
            return unescape(&host[close..], Mode::Host);
        }
    } else if let Some(colon) = host.rfind(':') {
        check_port(&host[colon..])?;
    }
    unescape(host, Mode::Host)
}

/// Go's `validOptionalPort`, with its error.
fn check_port(port: &str) -> Result<(), String> {
    let valid = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid port {port:?} after host"))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Zone,
    Other,
}

/// Go's `shouldEscape` for host and zone mode, the only modes whose answer matters here.
fn host_byte_needs_escape(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
        ))
}

/// The error paths of Go's `unescape`.
fn unescape(s: &str, mode: Mode) -> Result<(), String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let escape = bytes.get(i + 1..i + 3);
                let (hi, lo) = match escape {
                    Some(&[hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => (hi, lo),
                    _ => {
                        let end = (i + 3).min(bytes.len());
                        let shown = String::from_utf8_lossy(&bytes[i..end]);
                        return Err(format!("invalid URL escape {shown:?}"));
                    }
                };
                let value = (hex_value(hi) << 4) | hex_value(lo);
                let is_percent = &bytes[i..i + 3] == b"%25";
                if mode == Mode::Host && hex_value(hi) < 8 && !is_percent {
                    let shown = String::from_utf8_lossy(&bytes[i..i + 3]);
                    return Err(format!("invalid URL escape {shown:?}"));
                }
                if mode == Mode::Zone && !is_percent && value != b' ' && host_byte_needs_escape(value) {
                    let shown = String::from_utf8_lossy(&bytes[i..i + 3]);
                    return Err(format!("invalid URL escape {shown:?}"));
                }
                i += 3;
            }
            c if mode != Mode::Other && c < 0x80 && host_byte_needs_escape(c) => {
                let shown = char::from(c);
                return Err(format!("invalid character {shown:?} in host name"));
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_go_accepts() {
        for ok in [
            "",
            "*",
            "source1",
            "cluster1-work-agent",
            "http://example.com/source",
            "https://user:pa%20ss@example.com:8443/a/b?q=%zz#frag",
            "mailto:%zz",
            "/absolute/path",
            "relative/path:with-colon-later",
            "//host.example/path",
            "///triple/slash",
            "http://[fe80::1%25en0]:80/",
            "urn:uuid:607b1d19-af88-5844-bab6-6d88adb07e64",
            "http://a_b.example/",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            ":foo",
            "a:b/c".replace("a:", "1a:").as_str(),
            "with\ncontrol",
            "del\u{7f}",
            "http://host:port/",
            "http://[::1/",
            "http://a b/",
            "http://%41.example/",
            "/path/%zz",
            "/path#%g0",
            "http://us\u{e9}r@host/",
        ] {
            assert!(check(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
