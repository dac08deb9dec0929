//! The store on SQLite and on PostgreSQL: one suite, run against both.
//! PostgreSQL comes from scripts/setup.sh; if it is not reachable the tests
//! fail (they never skip).

use std::collections::BTreeSet;
use std::sync::Arc;

use agenthost::event::{EventBody, Source};
use agenthost::store::{Backend, SessionStatus, Store, StoreError};
use serde_json::json;

fn postgres_url() -> String {
    std::env::var("AGENTHOST_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://agenthost:agenthost@127.0.0.1:5432/agenthost_test".into())
}

/// A fresh SQLite store and the shared PostgreSQL test database. Users are
/// unique per test, so tests sharing PostgreSQL never see each other's rows.
async fn stores() -> Vec<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!(
        "sqlite:{}",
        dir.path().join("agenthost.db").display()
    ))
    .await
    .unwrap();
    let pg = Store::open(&postgres_url()).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running for these tests (scripts/setup.sh starts it): {e}")
    });
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    assert_eq!(pg.backend(), Backend::Postgres);
    vec![(sqlite, dir), (pg, tempfile::tempdir().unwrap())]
}

fn user(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "user-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_belong_to_their_user() {
    for (store, _dir) in stores().await {
        let (alice, bob) = (user("alice"), user("bob"));
        let s = store
            .create_session(&alice, "weather in Dubai", "scripted-policy")
            .await
            .unwrap();
        assert_eq!(s.status, SessionStatus::Idle);
        assert_eq!(store.session(&alice, &s.id).await.unwrap(), s);
        assert!(
            matches!(store.session(&bob, &s.id).await, Err(StoreError::NotFound)),
            "{:?}",
            store.backend()
        );
        assert!(matches!(
            store.delete_session(&bob, &s.id).await,
            Err(StoreError::NotFound)
        ));

        store.rename(&alice, &s.id, "renamed").await.unwrap();
        store
            .set_status(&alice, &s.id, SessionStatus::Running)
            .await
            .unwrap();
        store
            .set_policy(&alice, &s.id, "anthropic-policy")
            .await
            .unwrap();
        let got = store.session(&alice, &s.id).await.unwrap();
        assert_eq!(
            (got.title.as_str(), got.status, got.policy.as_str()),
            ("renamed", SessionStatus::Running, "anthropic-policy")
        );
        assert!(store
            .sessions_in_status(SessionStatus::Running)
            .await
            .unwrap()
            .iter()
            .any(|r| r.id == s.id));

        for i in 0..4 {
            store
                .create_session(&alice, &format!("s{i}"), "p")
                .await
                .unwrap();
        }
        let page1 = store.sessions(&alice, 3, 0).await.unwrap();
        let page2 = store.sessions(&alice, 3, 3).await.unwrap();
        assert_eq!((page1.len(), page2.len()), (3, 2));
        let all: BTreeSet<_> = page1.iter().chain(&page2).map(|s| s.id.clone()).collect();
        assert_eq!(all.len(), 5, "pages do not overlap");
        assert!(store.sessions(&bob, 10, 0).await.unwrap().is_empty());

        store
            .append_event(
                &s.id,
                Source::User,
                EventBody::parse("user_message", json!({"text": "hi"})),
            )
            .await
            .unwrap();
        store.delete_session(&alice, &s.id).await.unwrap();
        assert!(matches!(
            store.session(&alice, &s.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(
            store.events_after(&s.id, 0, 10).await.unwrap().is_empty(),
            "events go with their session"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_numbered_without_gaps_and_replay_after_a_cursor() {
    for (store, _dir) in stores().await {
        let s = store.create_session(&user("ev"), "t", "p").await.unwrap();
        for i in 1..=5 {
            let e = store
                .append_event(
                    &s.id,
                    Source::Agent,
                    EventBody::parse("tool_call", json!({"n": i, "text": "ünïcode ✓"})),
                )
                .await
                .unwrap();
            assert_eq!(e.seq, i);
        }
        let after2 = store.events_after(&s.id, 2, 100).await.unwrap();
        assert_eq!(after2.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(
            after2[0].body.payload(),
            json!({"n": 3, "text": "ünïcode ✓"})
        );
        assert_eq!(
            store.events_after(&s.id, 0, 2).await.unwrap().len(),
            2,
            "limit holds"
        );
        assert!(store.events_after(&s.id, 5, 100).await.unwrap().is_empty());
        let missing = store
            .append_event("ses_nope", Source::Host, EventBody::parse("x", json!({})))
            .await;
        assert!(matches!(missing, Err(StoreError::NotFound)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_stay_gapless() {
    for (store, _dir) in stores().await {
        let s = store.create_session(&user("conc"), "t", "p").await.unwrap();
        let store = Arc::new(store);
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (store, id) = (store.clone(), s.id.clone());
                tokio::spawn(async move {
                    for i in 0..25 {
                        store
                            .append_event(
                                &id,
                                Source::Agent,
                                EventBody::parse("delta", json!({"w": w, "i": i})),
                            )
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let seqs: Vec<i64> = store
            .events_after(&s.id, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "{:?}", store.backend());
    }
}

/// Many sessions appending at once share transactions on PostgreSQL:
/// every session's numbers stay gapless and in its own order, and an
/// append to a session that is gone fails alone.
#[tokio::test(flavor = "multi_thread")]
async fn grouped_appends_keep_each_sessions_order_and_fail_alone() {
    for (store, _dir) in stores().await {
        let mut ids = Vec::new();
        for _ in 0..30 {
            ids.push(
                store
                    .create_session(&user("grp"), "t", "p")
                    .await
                    .unwrap()
                    .id,
            );
        }
        let store = Arc::new(store);
        let mut tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    for i in 0..15 {
                        let e = store
                            .append_event(
                                &id,
                                Source::Agent,
                                EventBody::parse("delta", json!({"i": i})),
                            )
                            .await
                            .unwrap();
                        assert_eq!(e.seq, i + 1);
                    }
                })
            })
            .collect();
        let gone = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    let e = store
                        .append_event(
                            "ses_gone",
                            Source::Agent,
                            EventBody::parse("delta", json!({})),
                        )
                        .await;
                    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
                }
            })
        };
        tasks.push(gone);
        for t in tasks {
            t.await.unwrap();
        }
        for id in &ids {
            let events = store.events_after(id, 0, 100).await.unwrap();
            let order: Vec<i64> = events
                .iter()
                .map(|e| e.body.payload()["i"].as_i64().unwrap())
                .collect();
            assert_eq!(order, (0..15).collect::<Vec<_>>(), "{:?}", store.backend());
            let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=15).collect::<Vec<_>>());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_stored_once_by_content() {
    for (store, _dir) in stores().await {
        let bytes: Vec<u8> = format!("png bytes {}", user("img")).into_bytes();
        let (alice, bob) = (user("alice"), user("bob"));
        let s1 = store.create_session(&alice, "", "p").await.unwrap();
        let s2 = store.create_session(&alice, "", "p").await.unwrap();
        let other = store.create_session(&bob, "", "p").await.unwrap();
        let before = store.image_count().await.unwrap();
        let a = store
            .put_image(&s1.id, &bytes, "image/png", 1280, 800)
            .await
            .unwrap();
        let b = store
            .put_image(&s2.id, &bytes, "image/png", 1280, 800)
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(store.image_count().await.unwrap(), before + 1);
        let image = store.image(&s1.id, &a).await.unwrap();
        assert_eq!(
            (image.bytes, image.width, image.media_type.as_str()),
            (bytes, 1280, "image/png")
        );
        assert!(matches!(
            store.image(&s1.id, "0000").await,
            Err(StoreError::NotFound)
        ));
        // Knowing the hash is not enough: only the sessions that stored it.
        assert!(matches!(
            store.image(&other.id, &a).await,
            Err(StoreError::NotFound)
        ));
        // Deleted with the last session that stored it.
        store.delete_session(&alice, &s1.id).await.unwrap();
        store.image(&s2.id, &a).await.unwrap();
        assert_eq!(store.image_count().await.unwrap(), before + 1);
        store.delete_session(&alice, &s2.id).await.unwrap();
        assert_eq!(store.image_count().await.unwrap(), before);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_verify_and_expire() {
    for (store, _dir) in stores().await {
        let u = user("tok");
        let token = store.create_token(&u, "laptop", None, false).await.unwrap();
        assert_eq!(store.verify_token(&token).await.unwrap().user_id, u);
        assert!(matches!(
            store.verify_token("aht_wrong").await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.verify_token("").await,
            Err(StoreError::NotFound)
        ));
        let expired = store.create_token(&u, "old", Some(1), false).await.unwrap();
        assert!(matches!(
            store.verify_token(&expired).await,
            Err(StoreError::NotFound)
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_data_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("a.db").display());
    let (u, id) = {
        let store = Store::open(&url).await.unwrap();
        let u = user("reopen");
        let s = store.create_session(&u, "t", "p").await.unwrap();
        store
            .append_event(
                &s.id,
                Source::User,
                EventBody::parse("user_message", json!({"text": "hello"})),
            )
            .await
            .unwrap();
        store
            .set_status(&u, &s.id, SessionStatus::Running)
            .await
            .unwrap();
        store.close().await;
        (u, s.id)
    };
    let store = Store::open(&url).await.unwrap(); // migrations are idempotent
    assert_eq!(store.session(&u, &id).await.unwrap().last_seq, 1);
    assert_eq!(
        store.events_after(&id, 0, 10).await.unwrap()[0]
            .body
            .payload(),
        json!({"text": "hello"})
    );
    assert!(matches!(
        Store::open("mysql://nope").await,
        Err(StoreError::BadUrl(_))
    ));
}
