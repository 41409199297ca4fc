//! Creating the topics a client needs (ours: Go relies on the brokers' auto-creation), and
//! telling plainly which ones are missing when the brokers refuse.
//!
//! A topic is first looked up (a metadata request for that topic on the consumer, which does
//! not auto-create it); only missing topics are created, with the admin API
//! (`CreateTopics`, broker defaults for partitions and replication unless configured). A topic
//! that already exists, or that another client creates at the same moment
//! (`TopicAlreadyExists`), counts as created. When creation is refused (no `CREATE`
//! permission, a policy, too few brokers for the replication factor …) the client says once,
//! as a warning, which topics are missing and why, and carries on: its subscription picks the
//! topics up once someone creates them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;

use super::connection::{KafkaConsumer, KafkaContext, destroy_in_background, lock};

/// How long one lookup or creation request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the topics of one connection (see the module docs).
pub(super) struct Provisioner {
    config: ClientConfig,
    context: KafkaContext,
    partitions: i32,
    replication_factor: i32,
    /// Topics known to exist.
    ready: Mutex<HashSet<String>>,
    /// Missing topics that could not be created (reported once, not tried again on this
    /// connection: a later record to them must not wait for another refusal).
    refused: Mutex<HashSet<String>>,
    /// Created on the first topic that is missing (most clients never need one).
    admin: Mutex<Option<Arc<AdminClient<KafkaContext>>>>,
}

impl Provisioner {
    pub(super) fn new(config: ClientConfig, context: KafkaContext, partitions: i32, replication_factor: i32) -> Self {
        Self {
            config,
            context,
            partitions,
            replication_factor,
            ready: Mutex::default(),
            refused: Mutex::default(),
            admin: Mutex::default(),
        }
    }

    /// Whether every one of `topics` is known to exist or known to be refused (no request
    /// needed).
    pub(super) fn all_ready(&self, topics: &[String]) -> bool {
        let (ready, refused) = (lock(&self.ready), lock(&self.refused));
        topics.iter().all(|t| ready.contains(t) || refused.contains(t))
    }

    /// Learns which topics exist from one listing of them all, keeping those `relevant` says
    /// this client could create: a topic known this way needs no lookup before the first record
    /// to it. Meant for before the consumer reads: once it does, a metadata request on it
    /// waits behind its long-polling fetches (up to `fetch.wait.max.ms`, 500 ms by default,
    /// each time), which made a first record to a topic that existed all along wait about a
    /// second. When the listing fails, the lookups happen as before.
    pub(super) async fn learn_existing(&self, consumer: &Arc<KafkaConsumer>, relevant: impl Fn(&str) -> bool) {
        let consumer = consumer.clone();
        let listed = tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, REQUEST_TIMEOUT)).await;
        match listed {
            Ok(Ok(metadata)) => {
                let existing = metadata
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none() && relevant(t.name()))
                    .map(|t| t.name().to_owned());
                lock(&self.ready).extend(existing);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "kafka: listing the topics failed"),
            Err(e) => tracing::debug!(error = %e, "kafka: listing the topics failed"),
        }
    }

    /// Makes sure `topics` exist: looks up the ones not known yet and creates the missing
    /// ones. Returns the topics that became known by this call; a missing topic that cannot be
    /// created is reported once and left out (and not tried again by this provisioner).
    pub(super) async fn ensure(&self, consumer: &Arc<KafkaConsumer>, topics: &[String]) -> Vec<String> {
        let unknown: Vec<String> = {
            let (ready, refused) = (lock(&self.ready), lock(&self.refused));
            topics
                .iter()
                .filter(|t| !ready.contains(*t) && !refused.contains(*t))
                .cloned()
                .collect()
        };
        if unknown.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for topic in unknown {
            match exists(consumer, &topic).await {
                Ok(true) => found.push(topic),
                Ok(false) => missing.push(topic),
                Err(reason) => {
                    // Not known either way: try to create it (an existing one is fine).
                    tracing::debug!(topic, reason, "kafka: topic lookup failed");
                    missing.push(topic);
                }
            }
        }
        let mut refused = Vec::new();
        if !missing.is_empty() {
            match self.create(&missing).await {
                Ok(results) => {
                    for (topic, result) in missing.into_iter().zip(results) {
                        match result {
                            Ok(created) => {
                                if created {
                                    tracing::info!(topic, "kafka: created topic");
                                }
                                found.push(topic);
                            }
                            Err(reason) => refused.push((topic, reason)),
                        }
                    }
                }
                Err(reason) => refused.extend(missing.into_iter().map(|t| (t, reason.clone()))),
            }
        }
        self.report(&refused);
        lock(&self.ready).extend(found.iter().cloned());
        found
    }

    /// Creates `topics`; one result per topic, in order: true when created, false when it
    /// existed already (`TopicAlreadyExists`), or why it was refused.
    async fn create(&self, topics: &[String]) -> Result<Vec<Result<bool, String>>, String> {
        let admin = self.admin()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, self.partitions, TopicReplication::Fixed(self.replication_factor)))
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(REQUEST_TIMEOUT))
            .request_timeout(Some(REQUEST_TIMEOUT));
        let results = tokio::time::timeout(
            REQUEST_TIMEOUT + Duration::from_secs(2),
            admin.create_topics(&new, &options),
        )
        .await
        .map_err(|_| format!("no answer to CreateTopics within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
        Ok(topics
            .iter()
            .map(|topic| {
                let result = results.iter().find_map(|r| match r {
                    Ok(name) if name == topic => Some(Ok(())),
                    Err((name, code)) if name == topic => Some(Err(*code)),
                    _ => None,
                });
                match result {
                    Some(Ok(())) => Ok(true),
                    Some(Err(RDKafkaErrorCode::TopicAlreadyExists)) => Ok(false),
                    Some(Err(code)) => Err(refusal(code)),
                    None => Err("no result for the topic".to_owned()),
                }
            })
            .collect())
    }

    fn admin(&self) -> Result<Arc<AdminClient<KafkaContext>>, String> {
        let mut slot = lock(&self.admin);
        if let Some(admin) = slot.as_ref() {
            return Ok(admin.clone());
        }
        let admin: AdminClient<KafkaContext> = self
            .config
            .create_with_context(self.context.clone())
            .map_err(|e| format!("failed to create the Kafka admin client: {e}"))?;
        let admin = Arc::new(admin);
        *slot = Some(admin.clone());
        Ok(admin)
    }

    /// Warns once per topic about the ones that are missing and cannot be created.
    fn report(&self, refused: &[(String, String)]) {
        let new: Vec<&(String, String)> = {
            let mut known = lock(&self.refused);
            refused.iter().filter(|(t, _)| known.insert(t.clone())).collect()
        };
        if new.is_empty() {
            return;
        }
        let topics: Vec<&str> = new.iter().map(|(t, _)| t.as_str()).collect();
        let mut reasons: Vec<&str> = new.iter().map(|(_, r)| r.as_str()).collect();
        reasons.dedup();
        tracing::warn!(
            topics = %topics.join(", "),
            reason = %reasons.join("; "),
            "kafka: topics this client needs do not exist and cannot be created; create them (or \
             allow this client to: CREATE on the topics or the cluster, or auto.create.topics.enable \
             on the brokers). Waiting for them"
        );
    }
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        if let Some(admin) = lock(&self.admin).take() {
            destroy_in_background(admin);
        }
    }
}

/// What a refused creation means, in words.
fn refusal(code: RDKafkaErrorCode) -> String {
    let hint = match code {
        RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed => {
            "not authorized to create topics"
        }
        RDKafkaErrorCode::PolicyViolation => "refused by the brokers' topic policy",
        RDKafkaErrorCode::InvalidReplicationFactor => {
            "replication factor larger than the number of brokers (see topicReplicationFactor)"
        }
        RDKafkaErrorCode::InvalidPartitions => "invalid number of partitions (see topicPartitions)",
        _ => "",
    };
    if hint.is_empty() {
        format!("{code}")
    } else {
        format!("{hint} ({code})")
    }
}

/// Whether `topic` exists, by a metadata request for it alone on the consumer (consumers do
/// not auto-create topics unless `allow.auto.create.topics` says so).
async fn exists(consumer: &Arc<KafkaConsumer>, topic: &str) -> Result<bool, String> {
    let consumer = consumer.clone();
    let name = topic.to_owned();
    let metadata = tokio::task::spawn_blocking(move || consumer.fetch_metadata(Some(&name), REQUEST_TIMEOUT))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(false);
    };
    match found.error() {
        None => Ok(true),
        Some(e) => match RDKafkaErrorCode::from(e) {
            // Being created (e.g. auto-created a moment ago): it exists.
            RDKafkaErrorCode::LeaderNotAvailable => Ok(true),
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => Ok(false),
            other => Err(other.to_string()),
        },
    }
}
