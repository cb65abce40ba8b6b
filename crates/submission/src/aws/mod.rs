//! The AWS adapters: [`SqsQueue`] (the job queue on SQS, with a dead-letter queue) and
//! [`DynamoStore`] (the submission records in DynamoDB, TTL on `expires_at`).
//!
//! The binaries build their clients with [`clients_from_env`] (credentials from the usual AWS
//! chain, region from the environment, `us-east-1` when none is set; an endpoint URL points
//! them at a stand-in such as moto). Local and test setups make the queue, its dead-letter
//! queue and the table with [`create_resources`]; in production they come from the template.

mod item;
mod queue;
mod store;

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::create_queue::CreateQueueError;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::QueueAttributeName;

pub use queue::SqsQueue;
pub use store::DynamoStore;

/// The region used when the environment names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The SQS and DynamoDB clients, built from one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl AwsClients {
    /// Both clients from a loaded configuration.
    pub fn from_config(config: &SdkConfig) -> Self {
        AwsClients {
            sqs: aws_sdk_sqs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
        }
    }
}

/// Builds the clients from the environment: credentials from the default AWS chain, region
/// from `AWS_REGION`/the profile (else [`DEFAULT_REGION`]), and every request sent to
/// `endpoint_url` when one is given (a local stand-in such as moto).
pub async fn clients_from_env(endpoint_url: Option<&str>) -> AwsClients {
    let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    AwsClients::from_config(&loader.load().await)
}

/// The names of the resources [`create_resources`] makes.
#[derive(Debug, Clone)]
pub struct ResourceNames {
    /// The job queue.
    pub queue: String,
    /// Its dead-letter queue.
    pub dead_letter_queue: String,
    /// The submissions table.
    pub table: String,
}

/// A failed call to SQS or DynamoDB: the call, what the service said when it answered, and
/// the SDK's error as the source.
#[derive(Debug, thiserror::Error)]
pub struct AwsError {
    /// The call, e.g. `DynamoDB GetItem`.
    pub operation: &'static str,
    /// The service's error code, when the service answered (e.g. `ResourceNotFoundException`).
    pub code: Option<String>,
    /// The service's message, when the service answered.
    pub message: Option<String>,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl AwsError {
    /// The error of `operation`, which failed with `error`.
    pub(crate) fn new<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let service = error.as_service_error();
        AwsError {
            operation,
            code: service.and_then(|e| e.code()).map(str::to_owned),
            message: service.and_then(|e| e.message()).map(str::to_owned),
            source: Box::new(error),
        }
    }
}

impl std::fmt::Display for AwsError {
    /// A readable line: the service's message and code when the service answered, else the
    /// chain of causes (connection refused, timeout, ...).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let operation = self.operation;
        if self.code.is_some() || self.message.is_some() {
            let message = self.message.as_deref().unwrap_or("no message");
            let code = self.code.as_deref().unwrap_or("unknown error");
            return write!(f, "{operation} failed: {message} ({code})");
        }
        // e.g. "dispatch failure: io error: ... Connection refused".
        write!(f, "{operation} failed: {}", self.source)?;
        let mut cause = self.source.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// A failure while creating resources.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A call failed.
    #[error("creating AWS resources: {0}")]
    Call(#[from] AwsError),
    /// A request could not be built (a schema this crate writes; a bug if it happens).
    #[error("creating AWS resources: {0}")]
    Request(#[from] aws_sdk_dynamodb::error::BuildError),
    /// A call succeeded but its answer lacks what it should carry.
    #[error("creating AWS resources: {operation} returned no {missing}")]
    Incomplete {
        /// The call.
        operation: &'static str,
        /// What its answer lacked.
        missing: &'static str,
    },
    /// The table did not become active in time.
    #[error("creating AWS resources: table {table} is not active after {waited:?}")]
    TableNotActive {
        /// The table.
        table: String,
        /// How long it was waited for.
        waited: Duration,
    },
}

/// How long [`create_resources`] waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates (or finds) the job queue, its dead-letter queue, with a redrive policy that moves a
/// message there once it was received `max_receives` times, and the submissions table
/// (hash key `id`, on-demand billing, TTL on `expires_at`), then returns the adapters over
/// them. Idempotent: existing resources with the same settings are reused. For local and test
/// setups; production resources come from the deployment template.
pub async fn create_resources(
    clients: &AwsClients,
    names: &ResourceNames,
    max_receives: u32,
) -> Result<(SqsQueue, DynamoStore), SetupError> {
    let sqs = &clients.sqs;
    let create_failed = |e: SdkError<CreateQueueError, _>| AwsError::new("SQS CreateQueue", e);
    let dead_letter_url = sqs
        .create_queue()
        .queue_name(&names.dead_letter_queue)
        .send()
        .await
        .map_err(create_failed)?
        .queue_url
        .ok_or(SetupError::Incomplete {
            operation: "SQS CreateQueue (dead letters)",
            missing: "QueueUrl",
        })?;
    let dead_letter_arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e: SdkError<GetQueueAttributesError, _>| {
            AwsError::new("SQS GetQueueAttributes", e)
        })?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or(SetupError::Incomplete {
            operation: "SQS GetQueueAttributes (dead letters)",
            missing: "QueueArn",
        })?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": max_receives.to_string(),
    });
    let queue_url = sqs
        .create_queue()
        .queue_name(&names.queue)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(create_failed)?
        .queue_url
        .ok_or(SetupError::Incomplete {
            operation: "SQS CreateQueue",
            missing: "QueueUrl",
        })?;

    create_table(&clients.dynamodb, &names.table).await?;

    Ok((
        SqsQueue::new(sqs.clone(), queue_url, dead_letter_url),
        DynamoStore::new(clients.dynamodb.clone(), names.table.clone()),
    ))
}

/// Creates the table unless it exists, waits until it is active, and enables TTL.
async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), SetupError> {
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(store::ID)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(store::ID)
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(AwsError::new("DynamoDB CreateTable", e).into()),
    }

    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| AwsError::new("DynamoDB DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SetupError::TableNotActive {
                table: table.to_owned(),
                waited: TABLE_ACTIVE_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // UpdateTimeToLive refuses to enable TTL twice, so look first.
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AwsError::new("DynamoDB DescribeTimeToLive", e))?;
    let status = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if !matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(store::EXPIRES_AT)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| AwsError::new("DynamoDB UpdateTimeToLive", e))?;
    }
    Ok(())
}
