use std::collections::HashMap;

use futures::StreamExt;
use proptest::prelude::*;

use super::*;
use crate::selector::ListParams;

fn work(ns: &str, name: &str, rv: &str) -> ManifestWork {
    let mut w = ManifestWork::new(ns, name, Vec::new());
    w.metadata.uid = Some(format!("uid-{ns}-{name}"));
    w.metadata.resource_version = Some(rv.to_owned());
    w
}

#[test]
fn works_are_found_by_key_and_by_uid() {
    let (store, writer) = store();
    writer.insert(work("c1", "w1", "1")).unwrap();
    writer.insert(work("c2", "w1", "1")).unwrap();
    assert_eq!(store.get("c1", "w1").unwrap().uid_str(), "uid-c1-w1");
    assert_eq!(store.get_by_uid("uid-c2-w1").unwrap().namespace_str(), "c2");
    assert_eq!(store.list("", &ListParams::default()).len(), 2);
    assert_eq!(store.list("c1", &ListParams::default()).len(), 1);
    assert!(matches!(
        writer.insert(work("c1", "w1", "2")),
        Err(Error::AlreadyExists { .. })
    ));
    writer.remove("c1", "w1");
    assert!(store.get_by_uid("uid-c1-w1").is_none());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn readiness_is_awaitable() {
    let (store, writer) = store();
    assert!(!store.is_ready());
    let waiter = tokio::spawn({
        let store = store.clone();
        async move { store.wait_until_ready().await }
    });
    writer.replace_all(vec![work("c1", "w1", "1")]);
    waiter.await.unwrap();
    assert!(store.is_ready());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn every_watcher_sees_every_change_in_order() {
    let (store, writer) = store();
    let (mut a, mut b) = (store.watch(), store.watch());
    writer.insert(work("c1", "w1", "1")).unwrap();
    writer
        .update("c1", "w1", |w| {
            Ok::<_, ()>(Some(ManifestWork {
                status: w.status.clone(),
                ..work("c1", "w1", "2")
            }))
        })
        .unwrap();
    writer.remove("c1", "w1");
    for s in [&mut a, &mut b] {
        assert!(matches!(s.next().await, Some(WatchEvent::Added(w)) if w.resource_version_str() == "1"));
        assert!(matches!(s.next().await, Some(WatchEvent::Modified(w)) if w.resource_version_str() == "2"));
        assert!(matches!(s.next().await, Some(WatchEvent::Deleted(_))));
    }
}

#[tokio::test]
async fn a_slow_watcher_never_blocks_writers_and_is_resynced_with_a_snapshot() {
    let (store, writer) = store();
    let mut slow = store.watch();
    for i in 0..(WATCH_CAPACITY + 10) {
        writer.upsert(work("c1", &format!("w{i}"), "1"));
    }
    match slow.next().await {
        Some(WatchEvent::Relisted(all)) => assert_eq!(all.len(), WATCH_CAPACITY + 10),
        other => panic!("expected a relist, got {other:?}"),
    }
}

#[test]
fn an_update_sees_the_latest_object_so_a_concurrent_deletion_is_never_lost() {
    let (store, writer) = store();
    writer.insert(work("c1", "w1", "1")).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    if t == 0 && i == 250 {
                        writer
                            .update("c1", "w1", |w| {
                                let mut d = w.clone();
                                d.metadata.deletion_timestamp = Some(crate::api::time_from_chrono(chrono::Utc::now()));
                                Ok::<_, ()>(Some(d))
                            })
                            .unwrap();
                    } else {
                        writer
                            .update("c1", "w1", |w| {
                                let mut s = w.clone();
                                s.status.conditions.push(crate::api::condition(
                                    "Applied",
                                    "True",
                                    "r",
                                    format!("{t}-{i}"),
                                    None,
                                ));
                                Ok::<_, ()>(Some(s))
                            })
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let w = store.get("c1", "w1").unwrap();
    assert!(w.is_deleting(), "the deletion survived every concurrent status write");
    assert_eq!(w.status.conditions.len(), 4 * 500 - 1);
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, u8),
    Remove(u8),
    Touch(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..16, 0u8..100).prop_map(|(k, v)| Op::Upsert(k, v)),
        (0u8..16).prop_map(Op::Remove),
        (0u8..16, 0u8..100).prop_map(|(k, v)| Op::Touch(k, v)),
    ]
}

proptest! {
    /// Random writes against a `HashMap` model: the store, its UID index and a watcher that
    /// replays the events all agree with the model.
    #[test]
    fn the_store_and_its_watch_agree_with_a_model(ops in prop::collection::vec(op(), 1..200)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (store, writer) = store();
            let mut watch = store.watch();
            let mut model: HashMap<String, String> = HashMap::new();
            let mut events = 0usize;
            for op in &ops {
                match op {
                    Op::Upsert(k, v) => {
                        writer.upsert(work("c", &format!("w{k}"), &v.to_string()));
                        model.insert(format!("w{k}"), v.to_string());
                        events += 1;
                    }
                    Op::Remove(k) => {
                        if writer.remove("c", &format!("w{k}")).is_some() {
                            events += 1;
                        }
                        model.remove(&format!("w{k}"));
                    }
                    Op::Touch(k, v) => {
                        let r = writer.update("c", &format!("w{k}"), |w| {
                            let mut n = w.clone();
                            n.metadata.resource_version = Some(v.to_string());
                            Ok::<_, ()>(Some(n))
                        }).unwrap();
                        if r.is_some() {
                            model.insert(format!("w{k}"), v.to_string());
                            events += 1;
                        }
                    }
                }
            }
            let mut replay: HashMap<String, String> = HashMap::new();
            for _ in 0..events {
                match watch.next().await.unwrap() {
                    WatchEvent::Added(w) | WatchEvent::Modified(w) => { replay.insert(w.name().to_owned(), w.resource_version_str().to_owned()); }
                    WatchEvent::Deleted(w) => { replay.remove(w.name()); }
                    WatchEvent::Relisted(all) => {
                        replay = all.iter().map(|w| (w.name().to_owned(), w.resource_version_str().to_owned())).collect();
                    }
                }
            }
            prop_assert_eq!(&replay, &model);
            prop_assert_eq!(store.len(), model.len());
            for (name, rv) in &model {
                let w = store.get_by_uid(&format!("uid-c-{name}")).unwrap();
                prop_assert_eq!(w.resource_version_str(), rv.as_str());
            }
            Ok(())
        })?;
    }
}
