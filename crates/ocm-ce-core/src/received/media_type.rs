//! When Go's `mime.ParseMediaType` rejects a `datacontenttype`.
//!
//! CloudEvents validation in the Go SDK requires a present `datacontenttype` to parse as an
//! RFC 2046 media type with Go's parser; an event that fails is dropped on receipt and refused
//! on send. This is a port of that parser's error paths (Go 1.22).

/// Checks `value` like Go's `mime.ParseMediaType`; the error is Go's reason.
pub(super) fn check(value: &str) -> Result<(), String> {
    let base = value.split(';').next().unwrap_or_default();
    let media_type = base.to_lowercase();
    check_type_and_subtype(media_type.trim())?;

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut rest = &value[base.len()..];
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(());
        }
        let Some((key, param_value, tail)) = consume_param(rest) else {
            if rest.trim() == ";" {
                // A trailing semicolon is not an error.
                return Ok(());
            }
            return Err("mime: invalid media parameter".to_owned());
        };
        // Go keeps continuations (`name*0`, …) in maps of their own, but a duplicate is
        // always the same full key, so one list answers the same.
        let duplicate = seen
            .iter()
            .any(|(seen_key, seen_value)| seen_key == &key && seen_value != &param_value);
        if duplicate {
            return Err("mime: duplicate parameter name".to_owned());
        }
        seen.push((key, param_value));
        rest = tail;
    }
}

fn check_type_and_subtype(s: &str) -> Result<(), String> {
    let (main_type, rest) = consume_token(s);
    if main_type.is_empty() {
        return Err("mime: no media type".to_owned());
    }
    if rest.is_empty() {
        return Ok(());
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err("mime: expected slash after first token".to_owned());
    };
    let (subtype, rest) = consume_token(rest);
    if subtype.is_empty() {
        return Err("mime: expected token after slash".to_owned());
    }
    if !rest.is_empty() {
        return Err("mime: unexpected content after media subtype".to_owned());
    }
    Ok(())
}

fn is_tspecial(c: char) -> bool {
    "()<>@,;:\\\"/[]?=".contains(c)
}

fn is_token_char(c: char) -> bool {
    c > ' ' && c < '\u{7f}' && !is_tspecial(c)
}

fn consume_token(v: &str) -> (&str, &str) {
    match v.find(|c: char| !is_token_char(c)) {
        None => (v, ""),
        Some(i) => v.split_at(i),
    }
}

/// Go's `consumeValue`: a token or a quoted string; `None` when neither is there.
fn consume_value(v: &str) -> Option<(String, &str)> {
    if v.is_empty() {
        return None;
    }
    let Some(quoted) = v.strip_prefix('"') else {
        let (token, rest) = consume_token(v);
        return (!token.is_empty()).then(|| (token.to_owned(), rest));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[i + 1..])),
            '\\' if quoted[i + 1..].starts_with(is_tspecial) => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '\r' | '\n' => return None,
            c => value.push(c),
        }
    }
    // No closing quote.
    None
}

/// Go's `consumeMediaParam`: `; key = value`, lower-cased key.
fn consume_param(v: &str) -> Option<(String, String, &str)> {
    let rest = v.trim_start().strip_prefix(';')?.trim_start();
    let (key, rest) = consume_token(rest);
    if key.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let (value, rest) = consume_value(rest)?;
    Some((key.to_lowercase(), value, rest))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_the_media_types_go_accepts() {
        for ok in [
            "application/json",
            "text/json",
            "application/cloudevents+json",
            "text/plain; charset=utf-8",
            "Text/Plain;charset=\"utf-8\"",
            "text",
            "application/json;",
            "a/b; x=1; x=1",
            "a/b; q=\"with \\\" quote\"",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_the_media_types_go_rejects() {
        for (bad, reason) in [
            ("", "mime: no media type"),
            ("/json", "mime: no media type"),
            ("application json", "mime: expected slash after first token"),
            ("application/", "mime: expected token after slash"),
            ("application/json/x", "mime: unexpected content after media subtype"),
            ("a/b; x", "mime: invalid media parameter"),
            ("a/b; x=\"open", "mime: invalid media parameter"),
            ("a/b; x=1; x=2", "mime: duplicate parameter name"),
        ] {
            assert_eq!(check(bad), Err(reason.to_owned()), "{bad:?}");
        }
    }
}
