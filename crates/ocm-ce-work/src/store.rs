//! The work store: an in-memory cache of ManifestWorks in the style of kube-runtime's
//! reflector — a cloneable read handle ([`Store`]) and a [`Writer`] — indexed by
//! namespace/name **and** by UID, with awaitable readiness and a non-blocking watch fan-out.
//!
//! Every write is atomic: [`Writer::update`] runs its closure on the latest object under the
//! write lock, so a read-modify-write can never overwrite a change (such as a deletion) that
//! landed in between. Watch events are sent under the same lock, so every watcher sees the
//! writes in the order they happened. A slow watcher never blocks writers: when it falls more
//! than the channel capacity behind it receives a [`WatchEvent::Relisted`] snapshot instead of
//! the events it missed.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::api::ManifestWork;
use crate::error::Error;
use crate::selector::ListParams;

/// Watch channel capacity per store; a watcher further behind is resynced with a snapshot.
pub const WATCH_CAPACITY: usize = 4096;

/// A change in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A work was added.
    Added(Arc<ManifestWork>),
    /// A work changed.
    Modified(Arc<ManifestWork>),
    /// A work was removed (the last state it had).
    Deleted(Arc<ManifestWork>),
    /// The watcher fell behind; this is the complete current content. Replace what you hold.
    Relisted(Vec<Arc<ManifestWork>>),
}

/// The maps of the work layer (the store's, the outbox's, the clients'), keyed by names and
/// UIDs; read on every event, so hashed with foldhash (seeded per process) rather than SipHash.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct State {
    by_namespace: Map<String, Map<String, Arc<ManifestWork>>>,
    by_uid: Map<String, (String, String)>,
    len: usize,
}

impl State {
    fn get(&self, namespace: &str, name: &str) -> Option<&Arc<ManifestWork>> {
        self.by_namespace.get(namespace)?.get(name)
    }

    fn put(&mut self, work: Arc<ManifestWork>) -> Option<Arc<ManifestWork>> {
        let (ns, name) = (work.namespace_str().to_owned(), work.name().to_owned());
        let old = self
            .by_namespace
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), work.clone());
        if let Some(o) = &old {
            if o.uid_str() != work.uid_str() {
                self.by_uid.remove(o.uid_str());
            }
        } else {
            self.len += 1;
        }
        if !work.uid_str().is_empty() {
            self.by_uid.insert(work.uid_str().to_owned(), (ns, name));
        }
        old
    }

    fn take(&mut self, namespace: &str, name: &str) -> Option<Arc<ManifestWork>> {
        let names = self.by_namespace.get_mut(namespace)?;
        let old = names.remove(name)?;
        if names.is_empty() {
            self.by_namespace.remove(namespace);
        }
        self.by_uid.remove(old.uid_str());
        self.len -= 1;
        Some(old)
    }

    fn all(&self) -> Vec<Arc<ManifestWork>> {
        self.by_namespace.values().flat_map(|m| m.values().cloned()).collect()
    }
}

struct Shared {
    state: RwLock<State>,
    ready: watch::Sender<bool>,
    events: broadcast::Sender<WatchEvent>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn emit(&self, event: WatchEvent) {
        // No watcher is not an error: the event is simply not observed.
        let _ = self.events.send(event);
    }
}

/// A cheap, cloneable read handle of a work store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// The write handle of a work store. Cloneable: every write is atomic on its own.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.len())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("store", &self.store()).finish()
    }
}

/// A new, empty store that is not ready yet ([`Writer::mark_ready`] or
/// [`Writer::replace_all`] make it ready).
pub fn store() -> (Store, Writer) {
    let shared = Arc::new(Shared {
        state: RwLock::default(),
        ready: watch::channel(false).0,
        events: broadcast::channel(WATCH_CAPACITY).0,
    });
    (Store { shared: shared.clone() }, Writer { shared })
}

/// A store holding `works` (e.g. what a restarted source loads from its database), ready.
pub fn store_from(works: impl IntoIterator<Item = ManifestWork>) -> (Store, Writer) {
    let (store, writer) = store();
    writer.replace_all(works);
    (store, writer)
}

impl Store {
    /// The work `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<ManifestWork>> {
        self.shared.read().get(namespace, name).cloned()
    }

    /// The work with this UID (O(1)).
    pub fn get_by_uid(&self, uid: &str) -> Option<Arc<ManifestWork>> {
        let state = self.shared.read();
        let (ns, name) = state.by_uid.get(uid)?;
        state.get(ns, name).cloned()
    }

    /// The works of `namespace` (`""` = all namespaces) matching `params`, sorted by
    /// namespace and name.
    pub fn list(&self, namespace: &str, params: &ListParams) -> Vec<Arc<ManifestWork>> {
        let state = self.shared.read();
        let mut out: Vec<Arc<ManifestWork>> = if namespace.is_empty() {
            state.all()
        } else {
            state
                .by_namespace
                .get(namespace)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        };
        drop(state);
        out.retain(|w| params.matches(w));
        out.sort_by(|a, b| (a.namespace_str(), a.name()).cmp(&(b.namespace_str(), b.name())));
        out
    }

    /// Every work, unsorted.
    pub fn all(&self) -> Vec<Arc<ManifestWork>> {
        self.shared.read().all()
    }

    /// Number of works.
    pub fn len(&self) -> usize {
        self.shared.read().len
    }

    /// True when the store holds no work.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the store was initialised.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Waits until the store was initialised (no polling).
    pub async fn wait_until_ready(&self) {
        let mut rx = self.shared.ready.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = rx.wait_for(|r| *r).await;
    }

    /// A stream of the changes from now on. Independent watchers each get every event; a slow
    /// one is resynced with [`WatchEvent::Relisted`] rather than slowing anybody down.
    pub fn watch(&self) -> WatchStream {
        WatchStream {
            inner: BroadcastStream::new(self.shared.events.subscribe()),
            store: self.clone(),
        }
    }
}

impl Writer {
    /// A read handle of the same store.
    pub fn store(&self) -> Store {
        Store {
            shared: self.shared.clone(),
        }
    }

    /// Marks the store initialised.
    pub fn mark_ready(&self) {
        self.shared.ready.send_replace(true);
    }

    /// Replaces the whole content atomically (watchers get one `Relisted`) and marks the store
    /// ready.
    pub fn replace_all(&self, works: impl IntoIterator<Item = ManifestWork>) {
        let mut state = self.shared.write();
        *state = State::default();
        for w in works {
            state.put(Arc::new(w));
        }
        self.shared.emit(WatchEvent::Relisted(state.all()));
        drop(state);
        self.mark_ready();
    }

    /// Adds a work; fails when `namespace/name` exists.
    pub fn insert(&self, work: ManifestWork) -> Result<Arc<ManifestWork>, Error> {
        let mut state = self.shared.write();
        if state.get(work.namespace_str(), work.name()).is_some() {
            return Err(Error::AlreadyExists {
                namespace: work.namespace_str().to_owned(),
                name: work.name().to_owned(),
            });
        }
        let work = Arc::new(work);
        state.put(work.clone());
        self.shared.emit(WatchEvent::Added(work.clone()));
        Ok(work)
    }

    /// Adds or replaces a work.
    pub fn upsert(&self, work: ManifestWork) -> Arc<ManifestWork> {
        let mut state = self.shared.write();
        let work = Arc::new(work);
        let event = match state.put(work.clone()) {
            Some(_) => WatchEvent::Modified(work.clone()),
            None => WatchEvent::Added(work.clone()),
        };
        self.shared.emit(event);
        work
    }

    /// Removes `namespace/name`, returning what it was.
    pub fn remove(&self, namespace: &str, name: &str) -> Option<Arc<ManifestWork>> {
        let mut state = self.shared.write();
        let old = state.take(namespace, name)?;
        self.shared.emit(WatchEvent::Deleted(old.clone()));
        Some(old)
    }

    /// Atomic read-modify-write of `namespace/name`: `f` gets the latest work and returns the
    /// new one (`Ok(None)` = leave it). Runs under the write lock, so keep `f` short and free
    /// of I/O. `Ok(None)` when the work does not exist.
    pub fn update<E>(
        &self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&ManifestWork) -> Result<Option<ManifestWork>, E>,
    ) -> Result<Option<Arc<ManifestWork>>, E> {
        let mut state = self.shared.write();
        let Some(current) = state.get(namespace, name) else {
            return Ok(None);
        };
        let Some(new) = f(current)? else {
            return Ok(Some(current.clone()));
        };
        let new = Arc::new(new);
        if new.namespace_str() != namespace || new.name() != name {
            if let Some(old) = state.take(namespace, name) {
                self.shared.emit(WatchEvent::Deleted(old));
            }
            state.put(new.clone());
            self.shared.emit(WatchEvent::Added(new.clone()));
        } else {
            state.put(new.clone());
            self.shared.emit(WatchEvent::Modified(new.clone()));
        }
        Ok(Some(new))
    }

    /// [`update`](Self::update) addressed by UID.
    pub fn update_by_uid<E>(
        &self,
        uid: &str,
        f: impl FnOnce(&ManifestWork) -> Result<Option<ManifestWork>, E>,
    ) -> Result<Option<Arc<ManifestWork>>, E> {
        let Some((ns, name)) = self.shared.read().by_uid.get(uid).cloned() else {
            return Ok(None);
        };
        // Between the lookup and the update the work may be renamed or removed; `update`
        // re-reads under the write lock, and a vanished work is reported as absent.
        self.update(&ns, &name, |w| if w.uid_str() == uid { f(w) } else { Ok(None) })
    }

    /// Removes the work with this UID.
    pub fn remove_by_uid(&self, uid: &str) -> Option<Arc<ManifestWork>> {
        let mut state = self.shared.write();
        let (ns, name) = state.by_uid.get(uid).cloned()?;
        let old = state.take(&ns, &name)?;
        self.shared.emit(WatchEvent::Deleted(old.clone()));
        Some(old)
    }
}

/// The stream returned by [`Store::watch`].
pub struct WatchStream {
    inner: BroadcastStream<WatchEvent>,
    store: Store,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl Stream for WatchStream {
    type Item = WatchEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(ev))) => Poll::Ready(Some(ev)),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                Poll::Ready(Some(WatchEvent::Relisted(self.store.all())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
