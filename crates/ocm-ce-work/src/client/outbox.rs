//! The outbox of a work client: which works still have to be reported (an agent's statuses and
//! deletion acknowledgements, a source's specs and deletions). It holds *keys* (work UIDs), not
//! messages: what is sent is read from the store when it is sent, so a report is state that is
//! retried until the transport acknowledges it, and several changes of one work in a row cost
//! one event.
//!
//! Rules:
//! * a work is sent once at a time (per-resource order); a change while it is in flight sends
//!   it again afterwards;
//! * works are grouped in lanes (a source's clusters, an agent's sources), each with its own
//!   in-flight window, served round-robin: a cluster whose agent stalls (the broker holds its
//!   publishes back) fills its own window only, and the other clusters keep going;
//! * a failed send is retried with back-off, and at once after the next (re)connection;
//! * a send that cannot succeed (the event cannot be encoded or is over the transport's size
//!   limit) is dropped, logged and counted; the work's state stays in the store and its next
//!   change reports it again.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ocm_ce_client::BackoffConfig;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::store::Map;

/// Sends in flight per lane.
pub(crate) const LANE_WINDOW: usize = 32;
/// Sends in flight per client.
pub(crate) const WINDOW: usize = 256;
/// First retry delay of a failed send (doubled per attempt up to [`MAX_RETRY_DELAY`]).
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Largest retry delay.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// What became of one send.
#[derive(Debug)]
pub(crate) enum Sent {
    /// Acknowledged by the transport (or nothing was left to send).
    Done,
    /// Failed for now; try again.
    Retry,
    /// Cannot succeed as it is; give up until the work changes.
    Failed,
}

/// One key the outbox hands out for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Send {
    /// The work's UID.
    pub(crate) uid: String,
    /// The change this send covers.
    pub(crate) version: u64,
    /// True until the work was first sent successfully (a source sends `create_request` then).
    pub(crate) new: bool,
}

#[derive(Debug)]
struct Entry {
    lane: String,
    version: u64,
    new: bool,
    in_flight: bool,
    /// In its lane's ready queue.
    queued: bool,
    attempts: u32,
    retry_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Lane {
    ready: VecDeque<String>,
    in_flight: usize,
    /// In the round-robin queue.
    in_turn: bool,
}

impl Lane {
    fn wants_turn(&self) -> bool {
        !self.in_turn && !self.ready.is_empty() && self.in_flight < LANE_WINDOW
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Map<String, Entry>,
    lanes: Map<String, Lane>,
    /// Lanes with queued keys and room in their window, in round-robin order.
    turn: VecDeque<String>,
    retries: BTreeSet<(Instant, String)>,
    in_flight: usize,
}

impl State {
    fn enqueue(&mut self, uid: &str) {
        let Some(entry) = self.entries.get_mut(uid) else {
            return;
        };
        if entry.queued || entry.in_flight {
            return;
        }
        entry.queued = true;
        if let Some(at) = entry.retry_at.take() {
            self.retries.remove(&(at, uid.to_owned()));
        }
        let name = entry.lane.clone();
        let lane = self.lanes.entry(name.clone()).or_default();
        lane.ready.push_back(uid.to_owned());
        self.give_turn(&name);
    }

    /// Puts `name` in the round-robin queue when it has something to send and room for it.
    fn give_turn(&mut self, name: &str) {
        if let Some(lane) = self.lanes.get_mut(name)
            && lane.wants_turn()
        {
            lane.in_turn = true;
            self.turn.push_back(name.to_owned());
        }
    }
}

/// The outbox (see the module docs). Shared by a client's handles and its driver task.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    changed: Notify,
    emptied: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that work `uid` (in `lane`) has to be reported; `new` marks a work that was
    /// never sent.
    pub(crate) fn mark(&self, uid: &str, lane: &str, new: bool) {
        let mut state = self.lock();
        let entry = state.entries.entry(uid.to_owned()).or_insert_with(|| Entry {
            lane: lane.to_owned(),
            version: 0,
            new: false,
            in_flight: false,
            queued: false,
            attempts: 0,
            retry_at: None,
        });
        entry.version += 1;
        entry.new |= new;
        entry.attempts = 0;
        state.enqueue(uid);
        drop(state);
        self.changed.notify_one();
    }

    /// Hands out what may be sent now, within the windows.
    pub(crate) fn take_ready(&self) -> Vec<Send> {
        let mut state = self.lock();
        let mut out = Vec::new();
        while state.in_flight < WINDOW {
            let Some(name) = state.turn.pop_front() else {
                break;
            };
            let Some(lane) = state.lanes.get_mut(&name) else {
                continue;
            };
            lane.in_turn = false;
            let Some(uid) = lane.ready.pop_front() else {
                continue;
            };
            lane.in_flight += 1;
            state.in_flight += 1;
            state.give_turn(&name);
            if let Some(entry) = state.entries.get_mut(&uid) {
                entry.queued = false;
                entry.in_flight = true;
                out.push(Send {
                    uid,
                    version: entry.version,
                    new: entry.new,
                });
            }
        }
        out
    }

    /// Records the outcome of a send handed out by [`take_ready`](Self::take_ready).
    pub(crate) fn done(&self, send: &Send, outcome: &Sent) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        let Some(entry) = state.entries.get_mut(&send.uid) else {
            return;
        };
        entry.in_flight = false;
        let lane_name = entry.lane.clone();
        let changed = entry.version != send.version;
        match outcome {
            Sent::Done => {
                entry.new = false;
                entry.attempts = 0;
            }
            Sent::Retry => entry.attempts += 1,
            Sent::Failed => {}
        }
        let attempts = entry.attempts;
        if let Some(lane) = state.lanes.get_mut(&lane_name) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
        state.give_turn(&lane_name);
        if changed {
            state.enqueue(&send.uid);
        } else {
            match outcome {
                Sent::Done | Sent::Failed => {
                    state.entries.remove(&send.uid);
                }
                Sent::Retry => {
                    let delay = retry_delay(attempts);
                    let at = Instant::now() + delay;
                    if let Some(entry) = state.entries.get_mut(&send.uid) {
                        entry.retry_at = Some(at);
                    }
                    state.retries.insert((at, send.uid.clone()));
                }
            }
        }
        if let Some(lane) = state.lanes.get(&lane_name)
            && lane.in_flight == 0
            && lane.ready.is_empty()
            && !lane.in_turn
        {
            state.lanes.remove(&lane_name);
        }
        let empty = state.entries.is_empty();
        drop(state);
        self.changed.notify_one();
        if empty {
            self.emptied.notify_waiters();
        }
    }

    /// Makes every waiting retry due now (after a (re)connection).
    pub(crate) fn retry_now(&self) {
        let mut state = self.lock();
        let due: Vec<String> = std::mem::take(&mut state.retries)
            .into_iter()
            .map(|(_, uid)| uid)
            .collect();
        for uid in &due {
            if let Some(e) = state.entries.get_mut(uid) {
                e.retry_at = None;
            }
            state.enqueue(uid);
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Queues the retries that are due.
    pub(crate) fn promote_due(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        while let Some((at, uid)) = state.retries.first().cloned() {
            if at > now {
                break;
            }
            state.retries.remove(&(at, uid.clone()));
            if let Some(e) = state.entries.get_mut(&uid) {
                e.retry_at = None;
            }
            state.enqueue(&uid);
        }
    }

    /// When the next retry is due.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.lock().retries.first().map(|(at, _)| *at)
    }

    /// Resolves when something was marked or a send completed.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// How many works wait to be reported (queued, in flight or retrying).
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when work `uid` waits to be reported.
    pub(crate) fn contains(&self, uid: &str) -> bool {
        self.lock().entries.contains_key(uid)
    }

    /// Waits until nothing waits to be reported, at most `timeout`; true when empty.
    pub(crate) async fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.len() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, emptied).await.is_err() {
                return self.len() == 0;
            }
        }
    }
}

fn retry_delay(attempts: u32) -> Duration {
    BackoffConfig::exponential(FIRST_RETRY_DELAY, MAX_RETRY_DELAY)
        .with_jitter(0.5)
        .delay(attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(sends: &[Send]) -> Vec<&str> {
        sends.iter().map(|s| s.uid.as_str()).collect()
    }

    #[test]
    fn a_work_is_sent_once_at_a_time_and_again_after_a_change_in_flight() {
        let o = Outbox::default();
        o.mark("w1", "c1", true);
        let first = o.take_ready();
        assert_eq!(uids(&first), ["w1"]);
        assert!(first[0].new);
        o.mark("w1", "c1", false);
        assert!(o.take_ready().is_empty(), "not twice in flight");
        o.done(&first[0], &Sent::Done);
        let second = o.take_ready();
        assert_eq!(uids(&second), ["w1"]);
        assert!(!second[0].new, "the create was acknowledged");
        o.done(&second[0], &Sent::Done);
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn a_full_lane_does_not_hold_back_the_others() {
        let o = Outbox::default();
        for i in 0..LANE_WINDOW + 5 {
            o.mark(&format!("stalled-{i}"), "stalled", false);
        }
        for i in 0..3 {
            o.mark(&format!("ok-{i}"), "ok", false);
        }
        let sent = o.take_ready();
        let stalled = sent.iter().filter(|s| s.uid.starts_with("stalled")).count();
        assert_eq!(stalled, LANE_WINDOW);
        assert_eq!(sent.len(), LANE_WINDOW + 3, "the other lane got all of its works out");
        // Nothing more while the stalled lane's window is full.
        assert!(o.take_ready().is_empty());
        o.done(&sent[0], &Sent::Done);
        assert_eq!(o.take_ready().len(), 1);
    }

    #[test]
    fn lanes_take_turns() {
        let o = Outbox::default();
        for i in 0..3 {
            o.mark(&format!("a{i}"), "a", false);
            o.mark(&format!("b{i}"), "b", false);
        }
        let sent = o.take_ready();
        assert_eq!(uids(&sent), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_send_is_retried_with_back_off_or_at_once_after_a_reconnection() {
        let o = Outbox::default();
        o.mark("w1", "c1", false);
        let s = o.take_ready().remove(0);
        o.done(&s, &Sent::Retry);
        assert!(o.take_ready().is_empty(), "waits for its back-off");
        let at = o.next_retry().unwrap();
        assert!(at > Instant::now());
        tokio::time::sleep_until(at).await;
        o.promote_due();
        let s = o.take_ready().remove(0);
        o.done(&s, &Sent::Retry);
        assert!(o.take_ready().is_empty());
        o.retry_now();
        assert_eq!(uids(&o.take_ready()), ["w1"]);
    }

    #[test]
    fn a_send_that_cannot_succeed_is_given_up() {
        let o = Outbox::default();
        o.mark("w1", "c1", false);
        let s = o.take_ready().remove(0);
        o.done(&s, &Sent::Failed);
        assert_eq!(o.len(), 0);
        assert!(o.next_retry().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_an_empty_outbox_ends_when_the_last_send_completes() {
        let o = std::sync::Arc::new(Outbox::default());
        o.mark("w1", "c1", false);
        assert!(!o.wait_empty(Duration::from_millis(10)).await);
        let s = o.take_ready().remove(0);
        let waiter = tokio::spawn({
            let o = o.clone();
            async move { o.wait_empty(Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        o.done(&s, &Sent::Done);
        assert!(waiter.await.unwrap());
    }
}
