//! [`JobQueue`] on SQS: a standard queue with a redrive policy, and its dead-letter queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client;

use super::AwsError;
use crate::error::ServiceError;
use crate::job::Job;
use crate::queue::{Delivery, JobQueue, QueueError};

/// SQS's longest long poll (`WaitTimeSeconds`).
const MAX_WAIT_SECONDS: i32 = 20;
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECONDS: i32 = 43_200;
/// SQS's most messages per receive.
const MAX_MESSAGES: usize = 10;
/// How long a dead-letter message stays hidden after it is received (as the embedded queue).
const DEAD_VISIBILITY: Duration = Duration::from_secs(30);

/// The job queue on SQS. Messages move to the dead-letter queue through the queue's redrive
/// policy (its `maxReceiveCount` is the `max_receives` of the semantics in [`crate::queue`]).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    /// The SQS client.
    pub client: Client,
    /// URL of the job queue.
    pub queue_url: String,
    /// URL of its dead-letter queue.
    pub dead_letter_url: String,
}

impl SqsQueue {
    /// The adapter over existing queues.
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }

    async fn receive_from(
        &self,
        queue_url: &str,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.clamp(1, MAX_MESSAGES) as i32)
            .wait_time_seconds(whole_seconds(wait, MAX_WAIT_SECONDS))
            .visibility_timeout(whole_seconds(visibility, MAX_VISIBILITY_SECONDS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| AwsError::new("SQS ReceiveMessage", e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(delivery)
            .collect())
    }

    async fn delete_from(&self, queue_url: &str, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| receipt_error("SQS DeleteMessage", e))
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, job: &Job) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(job.to_message()?)
            .send()
            .await
            .map_err(|e| AwsError::new("SQS SendMessage", e))?;
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.receive_from(&self.queue_url, max, wait, visibility)
            .await
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete_from(&self.queue_url, receipt).await
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(whole_seconds(visibility, MAX_VISIBILITY_SECONDS))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| receipt_error("SQS ChangeMessageVisibility", e))
    }

    async fn receive_dead(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.receive_from(&self.dead_letter_url, max, wait, DEAD_VISIBILITY)
            .await
    }

    async fn delete_dead(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete_from(&self.dead_letter_url, receipt).await
    }
}

/// A received message as a [`Delivery`]; `None` for one without a receipt handle, which SQS
/// never sends and which could not be deleted anyway.
fn delivery(message: Message) -> Option<Delivery> {
    let receive_count = message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let receipt = message.receipt_handle?;
    let body = message.body.unwrap_or_default();
    Some(Delivery {
        job: Job::from_message(&body),
        body,
        receipt,
        receive_count,
    })
}

/// A duration as SQS's whole seconds: rounded up (a caller asking for 300 ms of visibility
/// gets 1 s, never 0), and capped at `max`.
fn whole_seconds(duration: Duration, max: i32) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.min(max as u64) as i32
}

/// The error of a call that names a receipt handle: [`QueueError::UnknownReceipt`] when SQS
/// says the handle is invalid, expired or its message is no longer in flight.
fn receipt_error<E, R>(operation: &'static str, error: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let error = AwsError::new(operation, error);
    if is_unknown_receipt(error.code.as_deref(), error.message.as_deref()) {
        QueueError::UnknownReceipt
    } else {
        error.into()
    }
}

/// Whether SQS's error `code` and `message` say a receipt handle is unknown or expired.
fn is_unknown_receipt(code: Option<&str>, message: Option<&str>) -> bool {
    // SQS's JSON protocol reports the short code; its query-compatible header the long one
    // (`AWS.SimpleQueueService.MessageNotInflight`).
    let code = code.map(|c| c.rsplit('.').next().unwrap_or(c));
    let message = message.unwrap_or_default().to_ascii_lowercase();
    match code {
        Some("ReceiptHandleIsInvalid" | "InvalidIdFormat" | "MessageNotInflight") => true,
        // An expired handle: "Value ... for parameter ReceiptHandle is invalid. Reason: The
        // receipt handle has expired."
        Some("InvalidParameterValue") => {
            message.contains("receipthandle") || message.contains("receipt handle")
        }
        _ => false,
    }
}

impl From<AwsError> for QueueError {
    fn from(error: AwsError) -> Self {
        QueueError::Unavailable(ServiceError::from(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_errors_are_told_apart_from_failures() {
        let unknown = |code, message| is_unknown_receipt(Some(code), Some(message));
        assert!(unknown("ReceiptHandleIsInvalid", ""));
        assert!(unknown("AWS.SimpleQueueService.MessageNotInflight", ""));
        assert!(unknown(
            "InvalidParameterValue",
            "Value x for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
        ));
        assert!(!unknown(
            "InvalidParameterValue",
            "VisibilityTimeout is invalid"
        ));
        assert!(!unknown("AWS.SimpleQueueService.NonExistentQueue", ""));
        assert!(!is_unknown_receipt(None, None), "no answer is a failure");
    }

    #[test]
    fn durations_round_up_to_whole_seconds_within_limits() {
        assert_eq!(whole_seconds(Duration::ZERO, MAX_WAIT_SECONDS), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1), MAX_WAIT_SECONDS), 1);
        assert_eq!(
            whole_seconds(Duration::from_millis(1000), MAX_WAIT_SECONDS),
            1
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(1001), MAX_WAIT_SECONDS),
            2
        );
        assert_eq!(whole_seconds(Duration::from_secs(60), MAX_WAIT_SECONDS), 20);
        assert_eq!(
            whole_seconds(Duration::from_secs(u64::MAX), MAX_VISIBILITY_SECONDS),
            43_200
        );
    }
}
