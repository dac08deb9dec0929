//! Event store benchmark: `cargo bench -p agenthost-tests --bench store`.
//!
//! Appends 1,000 events to one session and replays them, on SQLite and on
//! PostgreSQL, against a file per event (how OpenHands stores a session's
//! events: one JSON file each, replayed by listing and reading them), all in
//! one run. Then 100 sessions appending at once on PostgreSQL, each
//! append in its own transaction against appends grouped into shared
//! transactions (group commit), side by side. Writes
//! `bench-results/store.json`.

use std::time::{Duration, Instant};

use agenthost::event::{EventBody, Source, ToolCall};
use agenthost::store::Store;
use serde_json::json;

const EVENTS: usize = 1000;

fn body(i: usize) -> EventBody {
    let input = json!({"action": "left_click", "coordinate": [i % 1280, i % 800]});
    EventBody::ToolCall(ToolCall {
        id: format!("toolu_{i:08}"),
        name: "computer".into(),
        input: input.to_string(),
        via: None,
    })
}

async fn store_run(store: &Store) -> (Duration, Duration) {
    let s = store
        .create_session(&format!("bench-{}", std::process::id()), "bench", "p")
        .await
        .unwrap();
    let started = Instant::now();
    for i in 0..EVENTS {
        store
            .append_event(&s.id, Source::Agent, body(i))
            .await
            .unwrap();
    }
    let append = started.elapsed();
    let started = Instant::now();
    let events = store.events_after(&s.id, 0, EVENTS as i64).await.unwrap();
    let replay = started.elapsed();
    assert_eq!(events.len(), EVENTS);
    (append, replay)
}

fn files_run(dir: &std::path::Path) -> (Duration, Duration) {
    let started = Instant::now();
    for i in 0..EVENTS {
        let event =
            json!({"id": i, "kind": "tool_call", "source": "agent", "payload": body(i).payload()});
        std::fs::write(
            dir.join(format!("{i}.json")),
            serde_json::to_vec(&event).unwrap(),
        )
        .unwrap();
    }
    let append = started.elapsed();
    let started = Instant::now();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let events: Vec<serde_json::Value> = names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    let replay = started.elapsed();
    assert_eq!(events.len(), EVENTS);
    (append, replay)
}

/// Sessions appending at once, and events each appends one after another
/// (as a session's event log does).
const SESSIONS: usize = 100;
const PER_SESSION: usize = 20;

/// Events per second with `SESSIONS` sessions appending concurrently.
async fn concurrent_run(store: &Store) -> f64 {
    let mut ids = Vec::new();
    for _ in 0..SESSIONS {
        let s = store
            .create_session(&format!("bench-{}", std::process::id()), "bench", "p")
            .await
            .unwrap();
        ids.push(s.id);
    }
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                for i in 0..PER_SESSION {
                    let e = store
                        .append_event(&id, Source::Agent, body(i))
                        .await
                        .unwrap();
                    assert_eq!(e.seq, i as i64 + 1, "gapless, in order");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (SESSIONS * PER_SESSION) as f64 / started.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!("sqlite:{}", dir.path().join("bench.db").display()))
        .await
        .unwrap();
    let pg_url = std::env::var("AGENTHOST_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://agenthost:agenthost@127.0.0.1:5432/agenthost_test".into());
    let mut pg = Store::open(&pg_url)
        .await
        .expect("PostgreSQL (scripts/setup.sh starts it)");
    // The single-session rows compare storage engines one append at a time.
    pg.group_appends(false);
    let files_dir = dir.path().join("events");
    std::fs::create_dir_all(&files_dir).unwrap();

    let rows = [
        ("SQLite (WAL)", store_run(&sqlite).await),
        ("PostgreSQL", store_run(&pg).await),
        ("a file per event (baseline)", files_run(&files_dir)),
    ];
    println!("| 1,000 events | append total | replay total |");
    println!("|---|---:|---:|");
    for (name, (append, replay)) in &rows {
        println!("| {name} | {:.1} ms | {:.2} ms |", ms(*append), ms(*replay));
    }
    // Alternating, twice each, so neither gets the warmer database.
    let mut grouped = pg.clone();
    grouped.group_appends(true);
    let (mut single, mut group) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        single.push(concurrent_run(&pg).await);
        group.push(concurrent_run(&grouped).await);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "\n| {SESSIONS} sessions x {PER_SESSION} appends, PostgreSQL | events/s (best of 2) |"
    );
    println!("|---|---:|");
    println!(
        "| a transaction per append (baseline) | {:.0} |",
        best(&single)
    );
    println!("| grouped into shared transactions | {:.0} |", best(&group));
    let doc = json!({
        "benchmark": "store", "events": EVENTS,
        "results": rows.iter().map(|(n, (a, r))| json!({"name": n, "append_ms": ms(*a), "replay_ms": ms(*r)})).collect::<Vec<_>>(),
        "concurrent_appends": {
            "sessions": SESSIONS, "appends_per_session": PER_SESSION,
            "one_transaction_per_append_events_per_s": single,
            "grouped_events_per_s": group,
        },
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("store.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    println!("\nwritten to bench-results/store.json");
}
