//! ManifestWork files: what `ocm-ce source apply -f` and `ocm-ce source sync` read. YAML (JSON
//! is YAML too), one or many documents; every document must be a ManifestWork with a namespace
//! (the target cluster). Files with many thousands of works are read whole: the YAML parser's
//! limits grow with the input (which is in memory already), while its limits on nesting,
//! aliases and anchors stay.

use crate::api::ManifestWork;
use crate::error::{Error, Result};

/// The works of a ManifestWork file's text, in order. Empty documents are skipped; a file
/// without any work is an error, and so is a document that is not a ManifestWork or has no
/// namespace. Errors name the document (counted from 1).
pub fn works_from_yaml(text: &str) -> Result<Vec<ManifestWork>> {
    let budget = serde_saphyr::budget! {
        max_documents: text.len() / 16 + 1024,
        max_nodes: text.len() / 2 + 250_000,
        max_events: text.len() + 1_000_000,
        max_total_scalar_bytes: text.len() + 1024,
    };
    let invalid = |reason: String| Error::InvalidWorksFile { reason };
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(text, serde_saphyr::options! { budget: budget })
            .map_err(|e| invalid(format!("not valid YAML: {e}")))?;
    let mut works = Vec::new();
    for (i, doc) in docs.into_iter().filter(|d| !d.is_null()).enumerate() {
        if let Some(kind) = doc.get("kind").and_then(|k| k.as_str())
            && kind != "ManifestWork"
        {
            return Err(invalid(format!("document {} is a {kind}, not a ManifestWork", i + 1)));
        }
        let work: ManifestWork = serde_json::from_value(doc)
            .map_err(|e| invalid(format!("document {} is not a valid ManifestWork: {e}", i + 1)))?;
        if work.namespace_str().is_empty() {
            return Err(invalid(format!(
                "work {} (document {}) has no metadata.namespace (the target cluster)",
                work.name(),
                i + 1
            )));
        }
        works.push(work);
    }
    if works.is_empty() {
        return Err(invalid("it holds no ManifestWork".to_owned()));
    }
    Ok(works)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize, namespace: &str) -> String {
        format!(
            "---\napiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\nmetadata:\n  name: w{i}\n  namespace: {namespace}\nspec:\n  workload:\n    manifests:\n    - apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: cm{i}\n        namespace: default\n      data:\n        k: v{i}\n"
        )
    }

    #[test]
    fn a_file_of_thousands_of_works_reads_whole() {
        let text: String = (0..2000).map(|i| doc(i, "cluster1")).collect();
        let works = works_from_yaml(&text).unwrap();
        assert_eq!(works.len(), 2000);
        assert_eq!(works[1999].name(), "w1999");
        assert_eq!(works[1999].spec.workload.manifests.len(), 1);
    }

    #[test]
    fn what_is_not_a_namespaced_work_is_refused_in_plain_words() {
        let err = works_from_yaml(&doc(1, "\"\"")).unwrap_err().to_string();
        assert!(err.contains("has no metadata.namespace"), "{err}");
        let err = works_from_yaml("kind: ConfigMap\n").unwrap_err().to_string();
        assert!(err.contains("document 1 is a ConfigMap"), "{err}");
        let err = works_from_yaml("---\n").unwrap_err().to_string();
        assert!(err.contains("holds no ManifestWork"), "{err}");
        let err = works_from_yaml("a: [").unwrap_err().to_string();
        assert!(err.contains("not valid YAML"), "{err}");
    }
}
