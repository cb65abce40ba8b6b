//! Behaviour every queue and store adapter must show, run against each adapter by its own
//! test file (`embedded.rs`, `aws.rs`). SQS visibility timeouts are whole seconds, so the
//! timing here is in seconds too.

#![allow(dead_code)] // each test file uses the part its adapter supports

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use codebox_access::RateLimit;
use codebox_submission::{
    Job, JobQueue, Language, Payload, PayloadStore, Program, QueueError, RateCounter, RateHit,
    RunResult, Status, StoreError, Submission, SubmissionStore, Transition, PAYLOAD_PART_BYTES,
};

/// A job with a unique id.
pub(crate) fn job(tag: &str) -> Job {
    Job {
        id: format!("{tag}-{}", uuid::Uuid::new_v4()),
        language: Language::Python,
        payload: Payload::Inline(Program {
            stdin: "in\u{0}put".into(),
            ..Program::single(Language::Python, format!("print('{tag}')"), String::new())
        }),
        room: Some(tag.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
        run_credential: None,
    }
}

const SHORT: Duration = Duration::from_millis(300);
const VISIBILITY: Duration = Duration::from_secs(1);

/// Waits out a visibility timeout.
async fn wait_visibility() {
    tokio::time::sleep(VISIBILITY + Duration::from_millis(300)).await;
}

/// Receives until `want` arrives or `tries` long polls found nothing for it.
async fn receive_job(
    queue: &dyn JobQueue,
    want: &Job,
    visibility: Duration,
) -> codebox_submission::Delivery {
    for _ in 0..10 {
        for delivery in queue
            .receive(10, Duration::from_secs(1), visibility)
            .await
            .expect("receive")
        {
            if delivery.job.as_ref().is_ok_and(|j| j == want) {
                return delivery;
            }
        }
    }
    panic!("job {} never arrived", want.id);
}

/// Asserts that a short receive does not return `sent` (it is hidden, deleted or dead-lettered).
async fn assert_not_visible(queue: &dyn JobQueue, sent: &Job) {
    let visible = queue.receive(10, SHORT, VISIBILITY).await.unwrap();
    assert!(
        visible.iter().all(|d| d.job.as_ref().ok() != Some(sent)),
        "job {} is visible",
        sent.id
    );
}

/// send, receive, hidden while in flight, redelivered after the timeout, deleted for good.
pub(crate) async fn redelivers_after_visibility_timeout(queue: &dyn JobQueue) {
    let sent = job("redeliver");
    queue.send(&sent).await.unwrap();
    let first = receive_job(queue, &sent, VISIBILITY).await;
    assert_eq!(first.receive_count, 1);
    assert_not_visible(queue, &sent).await;
    wait_visibility().await;
    let second = receive_job(queue, &sent, VISIBILITY).await;
    assert_eq!(second.receive_count, 2);
    queue.delete(&second.receipt).await.unwrap();
    wait_visibility().await;
    assert_not_visible(queue, &sent).await;
}

/// A worker that extends visibility keeps its message hidden past the first timeout.
pub(crate) async fn extend_keeps_a_message_hidden(queue: &dyn JobQueue) {
    let sent = job("extend");
    queue.send(&sent).await.unwrap();
    let delivery = receive_job(queue, &sent, VISIBILITY).await;
    queue
        .extend(&delivery.receipt, Duration::from_secs(5))
        .await
        .unwrap();
    wait_visibility().await;
    assert_not_visible(queue, &sent).await;
    queue.delete(&delivery.receipt).await.unwrap();
}

/// After `max_receives` receives without a delete the message is dead-lettered.
pub(crate) async fn dead_letters_after_max_receives(queue: &dyn JobQueue, max_receives: u32) {
    let sent = job("dlq");
    queue.send(&sent).await.unwrap();
    for attempt in 1..=max_receives {
        let delivery = receive_job(queue, &sent, VISIBILITY).await;
        assert_eq!(delivery.receive_count, attempt);
        wait_visibility().await;
    }
    assert_not_visible(queue, &sent).await;
    let mut dead = None;
    for _ in 0..10 {
        dead = queue
            .receive_dead(10, Duration::from_secs(1))
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.job.as_ref().ok() == Some(&sent));
        if dead.is_some() {
            break;
        }
    }
    let dead = dead.expect("the job reaches the dead-letter queue");
    queue.delete_dead(&dead.receipt).await.unwrap();
}

/// A long poll returns as soon as a message arrives.
pub(crate) async fn long_poll_wakes_on_send(queue: Arc<dyn JobQueue>) {
    let sent = job("longpoll");
    let sender = {
        let (queue, sent) = (queue.clone(), sent.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            queue.send(&sent).await.unwrap();
        })
    };
    let got = receive_job(&*queue, &sent, VISIBILITY).await;
    queue.delete(&got.receipt).await.unwrap();
    sender.await.unwrap();
}

/// A receipt that was never issued is refused.
pub(crate) async fn unknown_receipts_are_refused(queue: &dyn JobQueue) {
    assert!(matches!(
        queue.delete("no-such-receipt").await,
        Err(QueueError::UnknownReceipt)
    ));
    let extended = queue.extend("no-such-receipt", VISIBILITY).await;
    assert!(
        matches!(extended, Err(QueueError::UnknownReceipt)),
        "{extended:?}"
    );
    assert!(matches!(
        queue.delete_dead("no-such-receipt").await,
        Err(QueueError::UnknownReceipt)
    ));
}

fn record(tag: &str) -> Submission {
    Submission::queued(
        format!("{tag}-{}", uuid::Uuid::new_v4()),
        Language::C,
        Utc::now(),
    )
}

fn result(status: Status, stdout: &str) -> RunResult {
    RunResult {
        status,
        exit_code: Some(0),
        signal: None,
        stdout: stdout.into(),
        stderr: "\u{fffd}".into(),
        stdout_truncated: false,
        stderr_truncated: true,
        compile_output: Some("warning: x".into()),
        time_ms: Some(12),
        time_limit: None,
        tests: None,
        finished_at: Utc::now(),
    }
}

/// create, get, no duplicate ids, unknown and expired ids read as absent.
pub(crate) async fn creates_and_reads(store: &dyn SubmissionStore) {
    let created = record("create");
    store.create(&created).await.unwrap();
    let read = store
        .get(&created.id, Utc::now())
        .await
        .unwrap()
        .expect("record");
    assert_eq!(read.id, created.id);
    assert_eq!(read.status, Status::Queued);
    assert_eq!(read.expires_at, created.expires_at);
    assert!(store.create(&created).await.is_err(), "ids are unique");
    assert!(store.get("no-such-id", Utc::now()).await.unwrap().is_none());
    assert!(
        store
            .get(&created.id, Utc::now() + Span::hours(25))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
}

/// queued -> running once; a terminal result once; a terminal status never changes.
pub(crate) async fn status_writes_are_conditional(store: &dyn SubmissionStore) {
    let created = record("transition");
    store.create(&created).await.unwrap();
    assert_eq!(
        store.mark_running(&created.id, Utc::now()).await.unwrap(),
        Transition::Applied
    );
    assert_eq!(
        store.mark_running(&created.id, Utc::now()).await.unwrap(),
        Transition::Refused(Status::Running)
    );
    let first = result(Status::Ok, "first");
    assert_eq!(
        store.finish(&created.id, &first).await.unwrap(),
        Transition::Applied
    );
    let second = result(Status::RuntimeError, "second");
    assert_eq!(
        store.finish(&created.id, &second).await.unwrap(),
        Transition::Refused(Status::Ok)
    );
    let read = store.get(&created.id, Utc::now()).await.unwrap().unwrap();
    assert_eq!(read.status, Status::Ok);
    assert_eq!(read.stdout, "first");
    assert!(read.started_at.is_some() && read.finished_at.is_some());
    assert_eq!(read.compile_output.as_deref(), Some("warning: x"));
    assert!(read.stderr_truncated);
    assert_eq!(
        store.mark_running("no-such-id", Utc::now()).await.unwrap(),
        Transition::NotFound
    );
    // A dead-lettered job is finished straight from queued.
    let stuck = record("stuck");
    store.create(&stuck).await.unwrap();
    assert_eq!(
        store
            .finish(&stuck.id, &result(Status::InternalError, ""))
            .await
            .unwrap(),
        Transition::Applied
    );
}

/// What is read back is what was written, field for field (timestamps to the nanosecond,
/// empty strings, `None`s), when queued, running and finished.
pub(crate) async fn records_round_trip_exactly(store: &dyn SubmissionStore) {
    let mut expected = record("roundtrip");
    store.create(&expected).await.unwrap();
    assert_eq!(
        store.get(&expected.id, Utc::now()).await.unwrap().as_ref(),
        Some(&expected)
    );
    let started = Utc::now();
    assert_eq!(
        store.mark_running(&expected.id, started).await.unwrap(),
        Transition::Applied
    );
    expected.status = Status::Running;
    expected.started_at = Some(started);
    assert_eq!(
        store.get(&expected.id, Utc::now()).await.unwrap().as_ref(),
        Some(&expected)
    );
    let ran = RunResult {
        status: Status::TimeLimitExceeded,
        exit_code: None,
        signal: Some(9),
        stdout: String::new(),
        stderr: "\u{0}é\n".repeat(1000),
        stdout_truncated: true,
        stderr_truncated: false,
        compile_output: None,
        time_ms: Some(5_000),
        time_limit: Some(codebox_submission::TimeLimit::Run),
        // A tests run's list of tests is stored and read back whole (nested maps).
        tests: Some(vec![
            codebox_submission::judge::TestResult {
                status: Status::Accepted,
                time_ms: Some(3),
                exit_code: Some(0),
                signal: None,
                stdout: "4\n".into(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                time_limit: None,
            },
            codebox_submission::judge::TestResult {
                status: Status::TimeLimitExceeded,
                time_ms: Some(5_000),
                exit_code: None,
                signal: Some(9),
                stdout: "é".repeat(10),
                stderr: "x".into(),
                stdout_truncated: true,
                stderr_truncated: false,
                time_limit: Some(codebox_submission::TimeLimit::Run),
            },
        ]),
        finished_at: Utc::now(),
    };
    assert_eq!(
        store.finish(&expected.id, &ran).await.unwrap(),
        Transition::Applied
    );
    expected.finish(&ran);
    assert_eq!(
        store.get(&expected.id, Utc::now()).await.unwrap().as_ref(),
        Some(&expected)
    );
}

/// A record past its expiry takes no status writes (its row or item may linger: DynamoDB
/// deletes expired items lazily), and neither does an unknown id.
pub(crate) async fn expired_records_are_not_found(store: &dyn SubmissionStore) {
    let old = Submission::queued(
        format!("old-{}", uuid::Uuid::new_v4()),
        Language::Go,
        Utc::now() - Span::hours(25),
    );
    store.create(&old).await.unwrap();
    assert!(store.get(&old.id, Utc::now()).await.unwrap().is_none());
    assert_eq!(
        store.mark_running(&old.id, Utc::now()).await.unwrap(),
        Transition::NotFound
    );
    assert_eq!(
        store
            .finish(&old.id, &result(Status::Ok, "late"))
            .await
            .unwrap(),
        Transition::NotFound
    );
    assert_eq!(
        store
            .finish("no-such-id", &result(Status::Ok, ""))
            .await
            .unwrap(),
        Transition::NotFound
    );
}

/// Many writers race to finish one record: exactly one wins. Only for race-safe backends.
pub(crate) async fn one_writer_wins_a_race(store: Arc<dyn SubmissionStore>) {
    let created = record("race");
    store.create(&created).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (store.clone(), created.id.clone());
            tokio::spawn(async move {
                store
                    .finish(&id, &result(Status::Ok, &format!("writer {i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut applied = 0;
    for writer in writers {
        if writer.await.unwrap() == Transition::Applied {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
}

/// The rate limit of the counter tests.
pub(crate) const RATE: RateLimit = RateLimit {
    limit: 3,
    window_s: 60,
};

/// A client no other test counts against.
pub(crate) fn fresh_client() -> String {
    format!("client-{}", uuid::Uuid::new_v4().simple())
}

/// Hits alternating between two handles on one store (separate connections or clients, as
/// two API instances hold) share one limit: exactly `limit` are counted. Other clients,
/// scopes and windows have counters of their own.
pub(crate) async fn rate_counters_share_one_limit(
    first: &dyn RateCounter,
    second: &dyn RateCounter,
) {
    let now = Utc::now().timestamp() as u64;
    let client = fresh_client();
    let hit = RateHit::new("runs", &client, RATE, now);
    let mut counted = Vec::new();
    for i in 0..8 {
        let counter = if i % 2 == 0 { first } else { second };
        counted.push(counter.count(&hit).await.unwrap());
    }
    assert_eq!(
        counted,
        [true, true, true, false, false, false, false, false]
    );
    let other_client = RateHit::new("runs", &fresh_client(), RATE, now);
    assert!(second.count(&other_client).await.unwrap());
    let other_scope = RateHit::new("rooms", &client, RATE, now);
    assert!(first.count(&other_scope).await.unwrap());
    let next_window = RateHit::new("runs", &client, RATE, hit.window.ends_at);
    assert!(second.count(&next_window).await.unwrap());
    let closed = RateLimit { limit: 0, ..RATE };
    let refused = RateHit::new("runs", &fresh_client(), closed, now);
    assert!(!first.count(&refused).await.unwrap(), "a zero limit");

    // A weighed hit (a submission's tests) counts for its weight, all or nothing.
    let client = fresh_client();
    let one = RateHit::new("runs", &client, RATE, now);
    let two = one.clone().weighing(2);
    assert!(first.count(&two).await.unwrap());
    assert!(!second.count(&two).await.unwrap(), "2 + 2 is over 3");
    assert!(second.count(&one).await.unwrap(), "2 + 1 is not");
    assert!(!first.count(&one).await.unwrap(), "the counter is full");
    let heavy = RateHit::new("runs", &fresh_client(), RATE, now).weighing(RATE.limit + 1);
    assert!(
        !first.count(&heavy).await.unwrap(),
        "heavier than the limit"
    );
    let whole = RateHit::new("runs", &fresh_client(), RATE, now).weighing(RATE.limit);
    assert!(second.count(&whole).await.unwrap(), "exactly the limit");
    assert_eq!(RateHit::new("runs", "c", RATE, now).weighing(0).weight, 1);
}

/// Many hits at once, spread over the handles: exactly `limit` are counted. Only for
/// race-safe backends.
pub(crate) async fn rate_limit_holds_under_a_race(counters: Vec<Arc<dyn RateCounter>>) {
    let hit = RateHit::new("runs", &fresh_client(), RATE, Utc::now().timestamp() as u64);
    let hits: Vec<_> = (0..16)
        .map(|i| {
            let (counter, hit) = (counters[i % counters.len()].clone(), hit.clone());
            tokio::spawn(async move { counter.count(&hit).await.unwrap() })
        })
        .collect();
    let mut counted = 0;
    for hit in hits {
        if hit.await.unwrap() {
            counted += 1;
        }
    }
    assert_eq!(counted, RATE.limit);
}

/// A payload of several parts comes back byte for byte (and writing it again replaces it); an
/// empty one takes no part; a part that is not there is an error naming it.
pub(crate) async fn payloads_round_trip_in_parts(store: &dyn PayloadStore) {
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = Utc::now().timestamp() + 3600;
    let payload: Vec<u8> = (0..PAYLOAD_PART_BYTES * 2 + 1234)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let parts = store.put_payload(&id, &payload, expires_at).await.unwrap();
    assert_eq!(parts, 3);
    assert_eq!(store.payload(&id, parts).await.unwrap(), payload);
    assert_eq!(
        store.put_payload(&id, &payload, expires_at).await.unwrap(),
        3
    );
    assert_eq!(store.payload(&id, 3).await.unwrap(), payload);
    assert_eq!(store.put_payload(&id, b"", expires_at).await.unwrap(), 0);
    assert_eq!(store.payload(&id, 0).await.unwrap(), b"");
    match store.payload(&id, 4).await {
        Err(StoreError::MissingPayload { part: 3, .. }) => {}
        other => panic!("expected part 3 missing, got {other:?}"),
    }
    match store.payload("no-such-submission", 1).await {
        Err(StoreError::MissingPayload { part: 0, .. }) => {}
        other => panic!("expected part 0 missing, got {other:?}"),
    }
}
