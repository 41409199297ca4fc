//! A rate-limited work queue in the style of client-go's `workqueue`: an item is queued at most
//! once, an item re-added while it is processed is processed again afterwards (never twice at
//! the same time), and a failed item comes back after a per-item exponential back-off.
//!
//! The garbage collector and the Kubernetes work applier (`ocm-ce-kube`) drive their workers
//! with it: pop items while fewer than N run, report each one [`done`](WorkQueue::done), and
//! poll [`poll_expired`](WorkQueue::poll_expired) to bring back items whose back-off ended.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::task::{Context, Poll};
use std::time::Duration;

use ocm_ce_client::BackoffConfig;
use tokio_util::time::DelayQueue;

/// The queue (see the [module docs](self)). Not synchronised: one owner drives it.
#[derive(Debug)]
pub struct WorkQueue<T> {
    ready: VecDeque<T>,
    /// Items in `ready` or waiting in `delayed`.
    queued: HashSet<T>,
    processing: HashSet<T>,
    /// Items added while they were processed.
    dirty: HashSet<T>,
    delayed: DelayQueue<T>,
    failures: HashMap<T, u32>,
    backoff: BackoffConfig,
}

impl<T: Hash + Eq + Clone> WorkQueue<T> {
    /// An empty queue whose failed items come back after `base_delay * 2^(failures - 1)`,
    /// at most `max_delay`.
    pub fn new(base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            processing: HashSet::new(),
            dirty: HashSet::new(),
            delayed: DelayQueue::new(),
            failures: HashMap::new(),
            backoff: BackoffConfig::exponential(base_delay, max_delay),
        }
    }

    /// Queues `item` unless it is queued already; an item being processed is marked to run again.
    pub fn add(&mut self, item: T) {
        if self.processing.contains(&item) {
            self.dirty.insert(item);
        } else if self.queued.insert(item.clone()) {
            self.ready.push_back(item);
        }
    }

    /// The next item to process; it counts as processing until [`done`](Self::done).
    pub fn pop(&mut self) -> Option<T> {
        let item = self.ready.pop_front()?;
        self.queued.remove(&item);
        self.processing.insert(item.clone());
        Some(item)
    }

    /// Ends processing of `item`. A failed item is queued again after its back-off
    /// (`base * 2^(failures - 1)`, capped); a successful one forgets its failures.
    pub fn done(&mut self, item: T, failed: bool) {
        self.processing.remove(&item);
        if failed {
            let failures = self.failures.entry(item.clone()).or_default();
            *failures = failures.saturating_add(1);
            let delay = self.backoff.delay(*failures);
            self.dirty.remove(&item);
            if self.queued.insert(item.clone()) {
                self.delayed.insert(item, delay);
            }
            return;
        }
        self.failures.remove(&item);
        if self.dirty.remove(&item) {
            self.add(item);
        }
    }

    /// Ends processing of `item` and queues it again after `delay` (client-go's `AddAfter`):
    /// for an item that waits for something rather than failed, so its back-off is neither
    /// used nor grown. An item re-added meanwhile runs at once instead.
    pub fn done_after(&mut self, item: T, delay: Duration) {
        self.processing.remove(&item);
        self.failures.remove(&item);
        if self.dirty.remove(&item) {
            self.add(item);
        } else if self.queued.insert(item.clone()) {
            self.delayed.insert(item, delay);
        }
    }

    /// Moves the next item whose back-off expired to the ready queue.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.delayed.poll_expired(cx) {
            Poll::Ready(Some(expired)) => {
                // Still in `queued`: it only changes lanes.
                self.ready.push_back(expired.into_inner());
                Poll::Ready(())
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// True when an item waits for its back-off.
    pub fn has_delayed(&self) -> bool {
        !self.delayed.is_empty()
    }

    /// Items queued or waiting (not those being processed).
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// True when nothing is queued or waiting (items being processed do not count).
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Duration::from_millis(5), Duration::from_secs(1))
    }

    #[test]
    fn an_item_is_queued_once() {
        let mut q = queue();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some("a"));
        assert_eq!(q.pop(), Some("b"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn an_item_added_while_processed_runs_again_afterwards_not_concurrently() {
        let mut q = queue();
        q.add("a");
        let a = q.pop().unwrap();
        q.add("a");
        assert_eq!(q.pop(), None, "not while it is processed");
        q.done(a, false);
        assert_eq!(q.pop(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_done_after_a_delay_comes_back_after_that_delay_or_at_once_when_re_added() {
        let mut q = queue();
        q.add("a");
        let a = q.pop().unwrap();
        q.done_after(a, Duration::from_millis(500));
        assert_eq!(q.pop(), None);
        assert!(q.has_delayed());
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(poll_fn(|cx| Poll::Ready(q.poll_expired(cx))).await.is_pending());
        tokio::time::advance(Duration::from_millis(2)).await;
        poll_fn(|cx| q.poll_expired(cx)).await;
        assert_eq!(q.pop(), Some("a"));
        // Re-added while processed: it runs again at once, not after the delay.
        q.add("a");
        q.done_after("a", Duration::from_secs(60));
        assert_eq!(q.pop(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_item_comes_back_after_its_back_off_and_success_resets_it() {
        let mut q = queue();
        q.add("a");
        let a = q.pop().unwrap();
        q.done(a, true);
        assert_eq!(q.pop(), None);
        assert!(q.has_delayed());
        let start = tokio::time::Instant::now();
        poll_fn(|cx| q.poll_expired(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        let a = q.pop().unwrap();
        q.done(a, true);
        poll_fn(|cx| q.poll_expired(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(15), "second failure waits 10 ms");
        let a = q.pop().unwrap();
        q.done(a, false);
        q.add("a");
        let a = q.pop().unwrap();
        q.done(a, true);
        let again = tokio::time::Instant::now();
        poll_fn(|cx| q.poll_expired(cx)).await;
        assert_eq!(again.elapsed(), Duration::from_millis(5), "success forgot the failures");
    }
}
