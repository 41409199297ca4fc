//! Authentication (client certificates, bearer tokens) and authorization (the policy file).
//!
//! The formats are described in `docs/broker.md`; in short:
//!
//! ```yaml
//! # tokens file
//! tokens:
//!   - token: 6c1f0b7e4d3a9c2b
//!     identity: cluster1-agent
//!     expiresAt: "2030-01-01T00:00:00Z"   # optional, RFC 3339
//! ```
//!
//! ```yaml
//! # authorization policy
//! identities:
//!   hub-controller:            # a certificate CN or a token identity
//!     sources: [source1]       # may subscribe as / publish specs from these source ids
//!   cluster1-agent:
//!     clusters: [cluster1]     # may subscribe for / publish statuses of these clusters
//!   operator:
//!     sources: ["*"]           # "*" matches every id
//!     clusters: ["*"]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials were required (insecure mode without authentication).
    Anonymous,
    /// The subject CN of a verified client certificate, or the identity of a bearer token.
    Named(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::Named(name) => f.write_str(name),
        }
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_yaml<'de, T: Deserialize<'de>>(what: &'static str, path: &Path, text: &'de str) -> Result<T> {
    serde_saphyr::from_str(text).map_err(|e| Error::InvalidFile {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// `from_file` and `from_yaml` of the type of `$what`, through its
/// `parse(path, text)` (the path names the file in errors; empty for YAML text).
macro_rules! yaml_file_constructors {
    ($what:literal) => {
        #[doc = concat!("Reads ", $what, ".")]
        pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
            let path = path.as_ref();
            Self::parse(path, &read(path)?)
        }

        #[doc = concat!("Parses the YAML of ", $what, ".")]
        pub fn from_yaml(text: &str) -> Result<Self> {
            Self::parse(Path::new(""), text)
        }
    };
}

// ---- tokens -------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFileDoc {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenEntry {
    token: String,
    identity: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// The bearer tokens the broker accepts: token → identity, with an optional expiry.
#[derive(Clone, Default)]
pub struct Tokens {
    by_token: HashMap<String, (String, Option<DateTime<Utc>>)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secrets.
        f.debug_struct("Tokens").field("count", &self.by_token.len()).finish()
    }
}

impl Tokens {
    yaml_file_constructors!("a tokens file");

    fn parse(path: &Path, text: &str) -> Result<Self> {
        let doc: TokensFileDoc = parse_yaml("tokens file", path, text)?;
        let invalid = |reason: String| Error::InvalidFile {
            what: "tokens file",
            path: path.to_owned(),
            reason,
        };
        let mut by_token = HashMap::new();
        for (i, entry) in doc.tokens.into_iter().enumerate() {
            if entry.token.is_empty() || entry.identity.is_empty() {
                return Err(invalid(format!("entry {i}: token and identity must not be empty")));
            }
            if entry.token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(format!("entry {i}: a token must not contain whitespace")));
            }
            if by_token
                .insert(entry.token, (entry.identity, entry.expires_at))
                .is_some()
            {
                return Err(invalid(format!("entry {i}: duplicate token")));
            }
        }
        Ok(Self { by_token })
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// True when there is no token.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The identity of `token` at time `now`.
    pub(crate) fn lookup(&self, token: &str, now: DateTime<Utc>) -> std::result::Result<&str, Status> {
        match self.by_token.get(token) {
            None => Err(Status::unauthenticated("invalid bearer token")),
            Some((_, Some(expiry))) if *expiry <= now => Err(Status::unauthenticated("the bearer token has expired")),
            Some((identity, _)) => Ok(identity),
        }
    }
}

// ---- policy -------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    identities: BTreeMap<String, GrantDoc>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct GrantDoc {
    sources: Vec<String>,
    clusters: Vec<String>,
}

/// What one identity may do: act as these source ids, and for these clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Grant {
    sources: Names,
    clusters: Names,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Names {
    #[default]
    None,
    All,
    Some(BTreeSet<String>),
}

impl Names {
    fn from_list(list: Vec<String>) -> Self {
        if list.iter().any(|n| n == "*") {
            Self::All
        } else if list.is_empty() {
            Self::None
        } else {
            Self::Some(list.into_iter().collect())
        }
    }

    fn contains(&self, name: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Some(set) => set.contains(name),
        }
    }
}

/// The authorization policy: identity → the source ids it may act as and the clusters it may
/// act for. Identities that are not listed may do nothing.
///
/// * Subscribing as source `S` needs `S` in `sources`; subscribing for cluster `C` needs `C` in
///   `clusters`.
/// * Spec events (`create/update/delete_request`, `resync_response`) and status resync requests
///   are sent by sources: their `source` attribute must be in `sources`.
/// * Status events and spec resync requests are sent by agents: their `clustername` extension
///   must be in `clusters`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    grants: BTreeMap<String, Grant>,
}

impl Policy {
    yaml_file_constructors!("a policy file");

    fn parse(path: &Path, text: &str) -> Result<Self> {
        let doc: PolicyDoc = parse_yaml("authorization policy", path, text)?;
        let mut grants = BTreeMap::new();
        for (identity, grant) in doc.identities {
            if identity.is_empty() {
                return Err(Error::InvalidFile {
                    what: "authorization policy",
                    path: path.to_owned(),
                    reason: "an identity must not be empty".to_owned(),
                });
            }
            grants.insert(
                identity,
                Grant {
                    sources: Names::from_list(grant.sources),
                    clusters: Names::from_list(grant.clusters),
                },
            );
        }
        Ok(Self { grants })
    }

    /// True when `identity` may act as source `source_id`.
    pub fn allows_source(&self, identity: &str, source_id: &str) -> bool {
        self.grants.get(identity).is_some_and(|g| g.sources.contains(source_id))
    }

    /// True when `identity` may act for cluster `cluster_name`.
    pub fn allows_cluster(&self, identity: &str, cluster_name: &str) -> bool {
        self.grants
            .get(identity)
            .is_some_and(|g| g.clusters.contains(cluster_name))
    }
}

// ---- the authenticator ----------------------------------------------------------------------------

/// The loaded credentials and policy, swapped as a whole on reload.
#[derive(Debug, Default)]
pub(crate) struct Access {
    /// Client certificates are verified by TLS; a verified one authenticates.
    pub(crate) mtls: bool,
    pub(crate) tokens: Option<Tokens>,
    pub(crate) policy: Option<Policy>,
}

impl Access {
    pub(crate) fn load(mtls: bool, tokens_file: Option<&PathBuf>, policy_file: Option<&PathBuf>) -> Result<Self> {
        Ok(Self {
            mtls,
            tokens: tokens_file.map(Tokens::from_file).transpose()?,
            policy: policy_file.map(Policy::from_file).transpose()?,
        })
    }

    fn requires_authentication(&self) -> bool {
        self.mtls || self.tokens.is_some()
    }

    /// Authenticates a call from its verified certificate CN or its bearer token.
    pub(crate) fn authenticate(
        &self,
        certificate_cn: Option<&str>,
        metadata: &MetadataMap,
    ) -> std::result::Result<Identity, Status> {
        if let Some(cn) = certificate_cn {
            return Ok(Identity::Named(cn.to_owned()));
        }
        if let Some(tokens) = &self.tokens
            && let Some(value) = metadata.get("authorization")
        {
            let value = value
                .to_str()
                .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
            let token = value
                .get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| value[7..].trim())
                .ok_or_else(|| Status::unauthenticated("the authorization header is not a bearer token"))?;
            return tokens
                .lookup(token, Utc::now())
                .map(|id| Identity::Named(id.to_owned()));
        }
        if self.requires_authentication() {
            return Err(Status::unauthenticated(
                "missing credentials: present a client certificate or a bearer token",
            ));
        }
        Ok(Identity::Anonymous)
    }

    /// Checks that `identity` may act as source `source_id`.
    pub(crate) fn check_source(&self, identity: &Identity, source_id: &str) -> std::result::Result<(), Status> {
        self.check(
            identity,
            |p, id| p.allows_source(id, source_id),
            || format!("{identity} may not act as source {source_id:?}"),
        )
    }

    /// Checks that `identity` may act for cluster `cluster_name`.
    pub(crate) fn check_cluster(&self, identity: &Identity, cluster_name: &str) -> std::result::Result<(), Status> {
        self.check(
            identity,
            |p, id| p.allows_cluster(id, cluster_name),
            || format!("{identity} may not act for cluster {cluster_name:?}"),
        )
    }

    fn check(
        &self,
        identity: &Identity,
        allowed: impl FnOnce(&Policy, &str) -> bool,
        message: impl FnOnce() -> String,
    ) -> std::result::Result<(), Status> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        match identity {
            Identity::Named(name) if allowed(policy, name) => Ok(()),
            _ => Err(Status::permission_denied(message())),
        }
    }
}

// ---- certificate subject --------------------------------------------------------------------------

/// Reads one DER TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject common name of a DER certificate (the last CN attribute, as Go's `pkix.Name`).
pub(crate) fn subject_common_name(cert: &[u8]) -> Option<String> {
    let (0x30, certificate, _) = tlv(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(certificate)? else { return None };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // version
    }
    for _ in 0..4 {
        rest = tlv(rest)?.2; // serial, signature algorithm, issuer, validity
    }
    let (0x30, mut subject, _) = tlv(rest)? else {
        return None;
    };
    let mut common_name = None;
    while !subject.is_empty() {
        let (0x31, mut set, next) = tlv(subject)? else {
            return None;
        };
        subject = next;
        while !set.is_empty() {
            let (0x30, attribute, next) = tlv(set)? else {
                return None;
            };
            set = next;
            let (0x06, oid, value) = tlv(attribute)? else {
                return None;
            };
            if oid != OID_COMMON_NAME {
                continue;
            }
            let (tag, value, _) = tlv(value)?;
            common_name = match tag {
                // UTF8String, PrintableString, IA5String, T61String
                0x0c | 0x13 | 0x16 | 0x14 => Some(String::from_utf8_lossy(value).into_owned()),
                // BMPString (UTF-16BE)
                0x1e => {
                    let units: Vec<u16> = value
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    Some(String::from_utf16_lossy(&units))
                }
                _ => None,
            };
        }
    }
    common_name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_cn(cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "ocm");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_common_name_is_read_from_a_certificate() {
        assert_eq!(
            subject_common_name(&cert_with_cn("cluster1-agent")).unwrap(),
            "cluster1-agent"
        );
        assert_eq!(subject_common_name(&cert_with_cn("ünïcode")).unwrap(), "ünïcode");
        assert_eq!(subject_common_name(b"garbage"), None);
        let mut params = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let no_cn = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        assert_eq!(subject_common_name(no_cn.der()), None);
    }

    #[test]
    fn tokens_map_to_identities_and_expire() {
        let tokens = Tokens::from_yaml(
            "tokens:\n  - token: abc\n    identity: agent1\n  - token: old\n    identity: agent2\n    expiresAt: \"2020-01-01T00:00:00Z\"\n",
        )
        .unwrap();
        assert_eq!(tokens.len(), 2);
        let now = Utc::now();
        assert_eq!(tokens.lookup("abc", now).unwrap(), "agent1");
        assert_eq!(
            tokens.lookup("old", now).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            tokens.lookup("nope", now).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(format!("{tokens:?}").contains("count"), "secrets are not printed");
        assert!(Tokens::from_yaml("tokens:\n  - token: a\n    identity: x\n  - token: a\n    identity: y\n").is_err());
        assert!(Tokens::from_yaml("tokens:\n  - token: a\n    identity: x\n    extra: 1\n").is_err());
        assert!(Tokens::from_yaml("tokens:\n  - token: \"a b\"\n    identity: x\n").is_err());
    }

    #[test]
    fn the_policy_grants_sources_and_clusters_per_identity() {
        let policy = Policy::from_yaml(
            "identities:\n  hub:\n    sources: [source1]\n  agent1:\n    clusters: [cluster1, cluster2]\n  admin:\n    sources: ['*']\n    clusters: ['*']\n",
        )
        .unwrap();
        assert!(policy.allows_source("hub", "source1"));
        assert!(!policy.allows_source("hub", "source2"));
        assert!(!policy.allows_cluster("hub", "cluster1"));
        assert!(policy.allows_cluster("agent1", "cluster2"));
        assert!(!policy.allows_source("agent1", "source1"));
        assert!(policy.allows_source("admin", "anything") && policy.allows_cluster("admin", "x"));
        assert!(!policy.allows_cluster("stranger", "cluster1"));
        assert!(Policy::from_yaml("identities:\n  hub:\n    source: [typo]\n").is_err());
    }

    #[test]
    fn certificates_win_over_tokens_and_credentials_are_required_when_configured() {
        let access = Access {
            mtls: true,
            tokens: Some(Tokens::from_yaml("tokens:\n  - token: t1\n    identity: by-token\n").unwrap()),
            policy: None,
        };
        let mut metadata = MetadataMap::new();
        assert_eq!(
            access.authenticate(Some("cn"), &metadata).unwrap(),
            Identity::Named("cn".into())
        );
        assert_eq!(
            access.authenticate(None, &metadata).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        metadata.insert("authorization", "Bearer t1".parse().unwrap());
        assert_eq!(
            access.authenticate(None, &metadata).unwrap(),
            Identity::Named("by-token".into())
        );
        metadata.insert("authorization", "Basic t1".parse().unwrap());
        assert!(access.authenticate(None, &metadata).is_err());
        assert_eq!(
            Access::default().authenticate(None, &MetadataMap::new()).unwrap(),
            Identity::Anonymous
        );
    }
}
