//! Label and field selectors for listing works (the subset Kubernetes list options use with
//! ManifestWorks: label requirements, and the `metadata.name` / `metadata.namespace` fields).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::api::ManifestWork;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        match self {
            Self::Equals(k, v) => get(k) == Some(v.as_str()),
            Self::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Self::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Self::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Self::Exists(k) => get(k).is_some(),
            Self::NotExists(k) => get(k).is_none(),
        }
    }
}

/// A label selector such as `app=web,tier!=db,env in (a,b),!legacy`. The empty selector matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    text: String,
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn bad(selector: &str, why: &str) -> Error {
    Error::InvalidSelector {
        selector: selector.to_owned(),
        reason: why.to_owned(),
    }
}

fn set_values(selector: &str, rest: &str) -> Result<Vec<String>, Error> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(selector, "expected a parenthesized value list"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

impl FromStr for LabelSelector {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(bad(s, "empty requirement"));
            }
            let r = if let Some(k) = p.strip_prefix('!') {
                Requirement::NotExists(k.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_owned(), set_values(s, rest)?)
            } else if let Some((k, rest)) = p.split_once(" in ") {
                Requirement::In(k.trim().to_owned(), set_values(s, rest)?)
            } else if p.contains([' ', '(', ')']) {
                return Err(bad(s, "unknown operator"));
            } else {
                Requirement::Exists(p.to_owned())
            };
            requirements.push(r);
        }
        Ok(Self {
            requirements,
            text: s.trim().to_owned(),
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl LabelSelector {
    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// A selector requiring `key=value`.
    pub fn equals(key: &str, value: &str) -> Self {
        Self {
            requirements: vec![Requirement::Equals(key.to_owned(), value.to_owned())],
            text: format!("{key}={value}"),
        }
    }
}

/// A field selector over `metadata.name` and `metadata.namespace` (`=`, `==`, `!=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FromStr for FieldSelector {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in s.split(',') {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(bad(s, "expected field=value or field!=value"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(bad(s, &format!("field label not supported: {field}")));
            }
            requirements.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { requirements })
    }
}

impl FieldSelector {
    /// True when the work's name and namespace satisfy every requirement.
    pub fn matches(&self, work: &ManifestWork) -> bool {
        self.requirements.iter().all(|(field, equal, value)| {
            let actual = if field == "metadata.name" {
                work.name()
            } else {
                work.namespace_str()
            };
            (actual == value) == *equal
        })
    }
}

/// What to list: a namespace (`""` = all), a label selector and a field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl ListParams {
    /// Parses Kubernetes-style selector strings (either may be empty).
    pub fn parse(labels: &str, fields: &str) -> Result<Self, Error> {
        Ok(Self {
            labels: labels.parse()?,
            fields: fields.parse()?,
        })
    }

    /// True when `work` matches both selectors.
    pub fn matches(&self, work: &ManifestWork) -> bool {
        self.labels.matches(work.metadata.labels.as_ref()) && self.fields.matches(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(ns: &str, name: &str, labels: &[(&str, &str)]) -> ManifestWork {
        let mut w = ManifestWork::new(ns, name, vec![]);
        if !labels.is_empty() {
            w.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        }
        w
    }

    #[test]
    fn label_selectors_follow_kubernetes_semantics() {
        let w = work("c1", "t1", &[("test", "true"), ("env", "prod")]);
        for (sel, want) in [
            ("", true),
            ("test=true", true),
            ("test==true", true),
            ("test!=true", false),
            ("env in (prod, dev)", true),
            ("env notin (prod)", false),
            ("test", true),
            ("!test", false),
            ("!missing", true),
            ("test=true,env=dev", false),
        ] {
            assert_eq!(
                sel.parse::<LabelSelector>()
                    .unwrap()
                    .matches(w.metadata.labels.as_ref()),
                want,
                "{sel}"
            );
        }
        assert!("a in b".parse::<LabelSelector>().is_err());
    }

    #[test]
    fn field_selectors_know_name_and_namespace_only() {
        let w = work("c1", "t1", &[]);
        assert!("metadata.name=t1".parse::<FieldSelector>().unwrap().matches(&w));
        assert!(!"metadata.namespace!=c1".parse::<FieldSelector>().unwrap().matches(&w));
        assert!("spec.x=1".parse::<FieldSelector>().is_err());
    }
}
