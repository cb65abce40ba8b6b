//! The AWS adapters (SQS queue, DynamoDB store and rate counters) pass the shared adapter
//! behaviour against moto server, which speaks both services over HTTP.
//!
//! Needs `--features aws` and `CODEBOX_MOTO_SERVER`, the path of a `moto_server` executable
//! (`scripts/setup.sh python` installs one and prints it; `scripts/test.sh` sets the variable).
//! Each test starts its own moto on a free port, makes its own queue, dead-letter queue and
//! table, and stops moto when it ends.
//!
//! Not run here: `common::one_writer_wins_a_race` and `common::rate_limit_holds_under_a_race`.
//! moto is not race-safe for conditional writes (it has let two concurrent writers both win),
//! and the design does not depend on that race: a redelivered job is re-run only while its
//! record is not terminal, and `finish` is conditional, so the worst a non-atomic stand-in can
//! show is the case already measured race-safe on the embedded adapter (`tests/embedded.rs`)
//! and guaranteed in production by DynamoDB's conditional writes. Rate counters are the same
//! single conditional `UpdateItem`: here two stores alternate hits, sequentially.

mod common;

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, TimeToLiveStatus};
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use codebox_submission::aws::{
    clients_from_env, create_resources, AwsClients, DynamoStore, ResourceNames, SqsQueue,
};
use codebox_submission::{
    JobQueue, QueueError, RateCounter, RateHit, RunResult, Status, StoreError, Submission,
    SubmissionStore, Transition,
};

const MAX_RECEIVES: u32 = 3;
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto server of this test's own, killed when dropped (also when the test panics).
struct Moto {
    child: Child,
    endpoint: String,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    fn start() -> Moto {
        let program = match std::env::var_os("CODEBOX_MOTO_SERVER") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => panic!(
                "CODEBOX_MOTO_SERVER is not set: these tests need moto server. Run \
                 `export CODEBOX_MOTO_SERVER=$(scripts/setup.sh python)` (scripts/test.sh does this)"
            ),
        };
        assert!(
            program.is_file(),
            "CODEBOX_MOTO_SERVER={} does not exist: run `scripts/setup.sh python` and export the path it prints",
            program.display()
        );
        let log = tempfile::NamedTempFile::new().expect("moto log file");
        let port = free_port();
        let mut child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("moto log"))
            .stderr(log.reopen().expect("moto log"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            let exited = child.try_wait().expect("moto status");
            if exited.is_some() || started.elapsed() > MOTO_START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                let mut output = String::new();
                let _ = File::open(log.path()).and_then(|mut f| f.read_to_string(&mut output));
                panic!("moto server did not start on port {port} ({exited:?}):\n{output}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            endpoint: format!("http://{address}"),
            _log: log,
        }
    }

    /// Clients for this server: dummy credentials, region us-east-1.
    async fn clients(&self) -> AwsClients {
        clients_at(&self.endpoint).await
    }

    /// A fresh queue, dead-letter queue and table.
    async fn resources(&self) -> (AwsClients, SqsQueue, DynamoStore) {
        let clients = self.clients().await;
        let (queue, store) = create_resources(&clients, &fresh_names(), MAX_RECEIVES)
            .await
            .expect("create resources");
        (clients, queue, store)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn clients_at(endpoint: &str) -> AwsClients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "codebox-test",
            "codebox-test",
            None,
            None,
            "tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await;
    AwsClients::from_config(&config)
}

fn fresh_names() -> ResourceNames {
    let tag = uuid::Uuid::new_v4().simple();
    ResourceNames {
        queue: format!("codebox-jobs-{tag}"),
        dead_letter_queue: format!("codebox-jobs-dead-{tag}"),
        table: format!("codebox-submissions-{tag}"),
    }
}

#[tokio::test]
async fn queue_behaviour() {
    let moto = Moto::start();
    let (_, queue, _) = moto.resources().await;
    common::redelivers_after_visibility_timeout(&queue).await;
    common::extend_keeps_a_message_hidden(&queue).await;
    common::dead_letters_after_max_receives(&queue, MAX_RECEIVES).await;
    common::long_poll_wakes_on_send(Arc::new(queue.clone())).await;
    common::unknown_receipts_are_refused(&queue).await;
}

#[tokio::test]
async fn store_behaviour() {
    let moto = Moto::start();
    let (_, _, store) = moto.resources().await;
    common::creates_and_reads(&store).await;
    common::status_writes_are_conditional(&store).await;
    common::records_round_trip_exactly(&store).await;
    common::expired_records_are_not_found(&store).await;
    common::payloads_round_trip_in_parts(&store).await;
}

/// Two stores with clients of their own (two API instances) over one table share one limit.
#[tokio::test]
async fn rate_counters_of_two_instances_share_one_limit() {
    let moto = Moto::start();
    let (_, _, first) = moto.resources().await;
    let second = DynamoStore::new(moto.clients().await.dynamodb, first.table.clone());
    common::rate_counters_share_one_limit(&first, &second).await;
}

/// A rate counter's item: its id, hits and TTL, in the submissions table.
#[tokio::test]
async fn rate_counter_items_have_the_documented_shape() {
    let moto = Moto::start();
    let names = fresh_names();
    let clients = moto.clients().await;
    let (_, store) = create_resources(&clients, &names, MAX_RECEIVES)
        .await
        .unwrap();
    let client = common::fresh_client();
    let hit = RateHit::new("runs", &client, common::RATE, Utc::now().timestamp() as u64);
    assert!(store.count(&hit).await.unwrap());
    assert!(store.count(&hit).await.unwrap());
    let id = format!("rate#runs:{client}:{}", hit.window.index);
    let item = raw_item(&clients, &names.table, &id).await;
    assert_eq!(item["hits"], AttributeValue::N("2".into()));
    let expires_at: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(
        expires_at > hit.window.ends_at,
        "TTL {expires_at} falls inside the window ending {}",
        hit.window.ends_at
    );
    assert_eq!(item.len(), 3, "{item:?}");
    // The reason the API reads submission ids only: a counter is no record.
    assert!(matches!(
        store.get(&id, Utc::now()).await,
        Err(StoreError::Corrupt { .. })
    ));
}

/// The item layout documented in `aws/store.rs`, the TTL and billing settings, and the
/// redrive policy, as the services report them.
#[tokio::test]
async fn resources_and_items_have_the_documented_shape() {
    let moto = Moto::start();
    let names = fresh_names();
    let clients = moto.clients().await;
    let (queue, store) = create_resources(&clients, &names, MAX_RECEIVES)
        .await
        .unwrap();

    let id = format!("shape-{}", uuid::Uuid::new_v4());
    let record = Submission::queued(id, codebox_submission::Language::Cpp, Utc::now());
    store.create(&record).await.unwrap();
    let item = raw_item(&clients, &names.table, &record.id).await;
    assert_eq!(item["id"], AttributeValue::S(record.id.clone()));
    assert_eq!(item["language"], AttributeValue::S("cpp".into()));
    assert_eq!(item["status"], AttributeValue::S("queued".into()));
    assert_eq!(
        item["expires_at"],
        AttributeValue::N(record.expires_at.to_string())
    );
    assert_eq!(item["stdout"], AttributeValue::S(String::new()));
    assert_eq!(item["stdout_truncated"], AttributeValue::Bool(false));
    for absent in [
        "exit_code",
        "signal",
        "compile_output",
        "time_ms",
        "started_at",
        "finished_at",
    ] {
        assert_eq!(item[absent], AttributeValue::Null(true), "{absent}");
    }
    let created_at = item["created_at"].as_s().expect("created_at is a string");
    assert_eq!(
        DateTime::parse_from_rfc3339(created_at).unwrap(),
        record.created_at
    );

    let finished = RunResult {
        status: Status::MemoryLimitExceeded,
        exit_code: Some(137),
        signal: None,
        stdout: "out".into(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        compile_output: Some("cc1plus".into()),
        time_ms: Some(42),
        time_limit: None,
        tests: None,
        finished_at: Utc::now(),
    };
    assert_eq!(
        store.finish(&record.id, &finished).await.unwrap(),
        Transition::Applied
    );
    let item = raw_item(&clients, &names.table, &record.id).await;
    assert_eq!(
        item["status"],
        AttributeValue::S("memory_limit_exceeded".into())
    );
    assert_eq!(item["exit_code"], AttributeValue::N("137".into()));
    assert_eq!(item["time_ms"], AttributeValue::N("42".into()));
    assert_eq!(item["signal"], AttributeValue::Null(true));
    assert!(item["finished_at"]
        .as_s()
        .is_ok_and(|t| DateTime::parse_from_rfc3339(t).is_ok()));

    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().expect("TTL description");
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    let table = clients
        .dynamodb
        .describe_table()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    let billing = table
        .table()
        .and_then(|t| t.billing_mode_summary())
        .and_then(|b| b.billing_mode());
    assert_eq!(billing, Some(&BillingMode::PayPerRequest));

    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&queue.queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap();
    let redrive = &attributes.attributes().expect("attributes")[&QueueAttributeName::RedrivePolicy];
    let redrive: serde_json::Value = serde_json::from_str(redrive).unwrap();
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        MAX_RECEIVES.to_string()
    );
    assert!(redrive["deadLetterTargetArn"]
        .as_str()
        .is_some_and(|arn| arn.ends_with(&names.dead_letter_queue)));
}

async fn raw_item(
    clients: &AwsClients,
    table: &str,
    id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    clients
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item")
}

/// Local setups run `create_resources` on every start: the second run finds what the first made.
#[tokio::test]
async fn create_resources_is_idempotent() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let names = fresh_names();
    let (first_queue, _) = create_resources(&clients, &names, MAX_RECEIVES)
        .await
        .unwrap();
    let (second_queue, store) = create_resources(&clients, &names, MAX_RECEIVES)
        .await
        .unwrap();
    assert_eq!(first_queue.queue_url, second_queue.queue_url);
    assert_eq!(first_queue.dead_letter_url, second_queue.dead_letter_url);
    let job = common::job("idempotent");
    first_queue.send(&job).await.unwrap();
    let got = second_queue
        .receive(10, Duration::from_secs(2), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.as_ref().unwrap(), &job);
    assert!(store
        .get("nothing-yet", Utc::now())
        .await
        .unwrap()
        .is_none());
}

/// Failures of the services come back as `Unavailable`, with a message a person can act on.
#[tokio::test]
async fn failures_are_unavailable_and_readable() {
    let moto = Moto::start();
    let clients = moto.clients().await;

    // A queue and a table that do not exist: the service's own code and message.
    let queue = SqsQueue::new(
        clients.sqs.clone(),
        format!("{}/123456789012/no-such-queue", moto.endpoint),
        "unused",
    );
    let error = queue.send(&common::job("nowhere")).await.unwrap_err();
    eprintln!("missing queue: {error}");
    let readable = |m: &str| m.contains("SendMessage") && m.contains("does not exist");
    assert!(
        matches!(&error, QueueError::Unavailable(_)) && readable(&error.to_string()),
        "{error}"
    );
    let store = DynamoStore::new(clients.dynamodb.clone(), "no-such-table");
    let error = store.get("x", Utc::now()).await.unwrap_err();
    eprintln!("missing table: {error}");
    let readable = |m: &str| m.contains("GetItem") && m.contains("ResourceNotFound");
    assert!(
        matches!(&error, StoreError::Unavailable(_)) && readable(&error.to_string()),
        "{error}"
    );

    // Nothing listening: the connection error, not a bare "dispatch failure".
    let closed = clients_at(&format!("http://127.0.0.1:{}", free_port())).await;
    let queue = SqsQueue::new(
        closed.sqs.clone(),
        "http://127.0.0.1:1/123456789012/q",
        "unused",
    );
    let error = queue
        .receive(1, Duration::ZERO, Duration::from_secs(1))
        .await
        .unwrap_err();
    eprintln!("no server: {error}");
    let readable = |m: &str| m.contains("ReceiveMessage") && m.contains("Connection refused");
    assert!(
        matches!(&error, QueueError::Unavailable(_)) && readable(&error.to_string()),
        "{error}"
    );
    let store = DynamoStore::new(closed.dynamodb.clone(), "t");
    let error = store.mark_running("x", Utc::now()).await.unwrap_err();
    eprintln!("no server: {error}");
    let readable = |m: &str| m.contains("UpdateItem") && m.contains("Connection refused");
    assert!(
        matches!(&error, StoreError::Unavailable(_)) && readable(&error.to_string()),
        "{error}"
    );
}

/// The binaries' helper always settles on a region (us-east-1 unless the environment or a
/// profile names one) without making a request.
#[tokio::test]
async fn clients_from_env_always_have_a_region() {
    let clients = clients_from_env(Some("http://127.0.0.1:1")).await;
    let region = clients.sqs.config().region().map(|r| r.to_string());
    assert!(
        region.as_deref().is_some_and(|r| !r.is_empty()),
        "{region:?}"
    );
    assert_eq!(
        clients.dynamodb.config().region().map(|r| r.to_string()),
        region
    );
}
