//! The embedded (SQLite) queue, store and rate counters pass the shared adapter behaviour, and
//! are race-safe across separate connections, as two local processes would hold.

mod common;

use std::sync::Arc;

use codebox_submission::embedded::Embedded;

const MAX_RECEIVES: u32 = 3;

fn open(dir: &tempfile::TempDir) -> Embedded {
    Embedded::open(&dir.path().join("codebox.db"), MAX_RECEIVES).unwrap()
}

#[tokio::test]
async fn queue_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir);
    common::redelivers_after_visibility_timeout(&queue).await;
    common::extend_keeps_a_message_hidden(&queue).await;
    common::dead_letters_after_max_receives(&queue, MAX_RECEIVES).await;
    common::long_poll_wakes_on_send(Arc::new(queue.clone())).await;
    common::unknown_receipts_are_refused(&queue).await;
}

#[tokio::test]
async fn store_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    common::creates_and_reads(&store).await;
    common::status_writes_are_conditional(&store).await;
    common::records_round_trip_exactly(&store).await;
    common::expired_records_are_not_found(&store).await;
    common::payloads_round_trip_in_parts(&store).await;
}

#[tokio::test]
async fn rate_counters_on_separate_connections_share_one_limit() {
    let dir = tempfile::tempdir().unwrap();
    common::rate_counters_share_one_limit(&open(&dir), &open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_counters_race_safely() {
    let dir = tempfile::tempdir().unwrap();
    common::rate_limit_holds_under_a_race(vec![
        Arc::new(open(&dir)),
        Arc::new(open(&dir)),
        Arc::new(open(&dir)),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_separate_connections_race_safely() {
    let dir = tempfile::tempdir().unwrap();
    // One connection per writer, as separate processes would have.
    let first = open(&dir);
    common::one_writer_wins_a_race(Arc::new(first)).await;
    let second = open(&dir);
    let third = open(&dir);
    let job = common::job("race");
    use codebox_submission::JobQueue;
    second.send(&job).await.unwrap();
    let (a, b) = tokio::join!(
        second.receive(
            10,
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(30)
        ),
        third.receive(
            10,
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(30)
        ),
    );
    let delivered = a.unwrap().len() + b.unwrap().len();
    assert_eq!(delivered, 1, "one visible message goes to one consumer");
}
