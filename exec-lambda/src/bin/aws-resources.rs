//! `aws-resources`: makes the job queue, its dead-letter queue and the submissions table for
//! a local or test setup (moto, in `scripts/check-deploy.sh`), with
//! `codebox_submission::aws::create_resources`: the one definition outside `template.yaml`.
//! With `--template FILE` (template.yaml as JSON) it also checks what it made against the
//! template's definition (redrive target and count, key schema, billing, TTL), and takes the
//! receive count from the template's `MaxReceiveCount` default.
//!
//! ```text
//! aws-resources --endpoint-url URL [--template FILE] [--queue NAME] [--dead-letter-queue NAME]
//!               [--table NAME] [--max-receives N]
//! ```
//!
//! Prints one JSON object: `queue_url`, `dead_letter_queue_url`, `table`, `max_receives`.
//! Exits 1 (each difference on stderr) when the resources do not match the template.
//! Credentials and region come from the usual AWS chain.

use anyhow::{bail, Context};
use codebox_submission::aws::{clients_from_env, create_resources, AwsClients, ResourceNames};
use serde_json::{json, Value};

/// The template's logical ids of the three resources.
const TEMPLATE_QUEUE: &str = "JobQueue";
const TEMPLATE_DEAD_LETTER_QUEUE: &str = "DeadLetterQueue";
const TEMPLATE_TABLE: &str = "SubmissionTable";
const TEMPLATE_MAX_RECEIVES: &str = "MaxReceiveCount";
/// Used when no template is given.
const DEFAULT_MAX_RECEIVES: u32 = 3;

struct Args {
    endpoint_url: String,
    template: Option<String>,
    names: ResourceNames,
    max_receives: Option<u32>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        endpoint_url: String::new(),
        template: None,
        names: ResourceNames {
            queue: "codebox-jobs".into(),
            dead_letter_queue: "codebox-dlq".into(),
            table: "codebox-submissions".into(),
        },
        max_receives: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint-url" => args.endpoint_url = value()?,
            "--template" => args.template = Some(value()?),
            "--queue" => args.names.queue = value()?,
            "--dead-letter-queue" => args.names.dead_letter_queue = value()?,
            "--table" => args.names.table = value()?,
            "--max-receives" => {
                args.max_receives = Some(value()?.parse().context("--max-receives")?)
            }
            other => {
                bail!("unknown argument {other} (see the comment at the top of aws-resources.rs)")
            }
        }
    }
    if args.endpoint_url.is_empty() {
        bail!("--endpoint-url is required: this tool is for stand-ins, production resources come from template.yaml");
    }
    Ok(args)
}

/// `template[a][b]...`, or an error naming the path.
fn at<'a>(template: &'a Value, path: &[&str]) -> anyhow::Result<&'a Value> {
    let mut value = template;
    for key in path {
        value = value
            .get(key)
            .with_context(|| format!("template.yaml has no {}", path.join(".")))?;
    }
    Ok(value)
}

/// A number the template may write as a number or a string.
fn number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str()?.parse().ok())
}

/// What the service reports about the resources made: the same shapes as the template's
/// properties, so the two compare directly.
async fn describe(
    clients: &AwsClients,
    queue_url: &str,
    dead_letter_url: &str,
    table: &str,
) -> anyhow::Result<Value> {
    let attribute = |url: &str, name: &'static str| {
        let sqs = clients.sqs.clone();
        let url = url.to_owned();
        async move {
            let out = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(name.into())
                .send()
                .await
                .with_context(|| format!("GetQueueAttributes {name} of {url}"))?;
            let value = out.attributes().and_then(|a| {
                a.iter()
                    .find(|(k, _)| k.as_str() == name)
                    .map(|(_, v)| v.clone())
            });
            anyhow::Ok(value)
        }
    };
    let dead_letter_arn = attribute(dead_letter_url, "QueueArn")
        .await?
        .context("the dead-letter queue has no QueueArn")?;
    let redrive: Value = match attribute(queue_url, "RedrivePolicy").await? {
        Some(text) => {
            serde_json::from_str(&text).context("the queue's RedrivePolicy is not JSON")?
        }
        None => Value::Null,
    };
    let described = clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .context("DescribeTable")?;
    let t = described
        .table()
        .context("DescribeTable returned no table")?;
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .context("DescribeTimeToLive")?;
    let ttl = ttl.time_to_live_description();
    Ok(json!({
        "dead_letter_arn": dead_letter_arn,
        "RedrivePolicy": {
            "deadLetterTargetArn": redrive.get("deadLetterTargetArn"),
            "maxReceiveCount": redrive.get("maxReceiveCount").and_then(number),
        },
        "KeySchema": t.key_schema().iter()
            .map(|k| json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()}))
            .collect::<Vec<_>>(),
        "AttributeDefinitions": t.attribute_definitions().iter()
            .map(|a| json!({"AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str()}))
            .collect::<Vec<_>>(),
        "BillingMode": t.billing_mode_summary().and_then(|b| b.billing_mode()).map(|b| b.as_str()),
        "TimeToLiveSpecification": {
            "AttributeName": ttl.and_then(|d| d.attribute_name()),
            "Enabled": ttl.and_then(|d| d.time_to_live_status())
                .is_some_and(|s| matches!(s.as_str(), "ENABLED" | "ENABLING")),
        },
    }))
}

/// The differences between what was made (`made`, from [`describe`]) and the template.
fn differences(template: &Value, made: &Value, max_receives: u32) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    fn expect(found: &mut Vec<String>, what: &str, template_value: Value, made_value: &Value) {
        if &template_value != made_value {
            found.push(format!(
                "{what}: template.yaml says {template_value}, the resources have {made_value}"
            ));
        }
    }

    let redrive = at(
        template,
        &["Resources", TEMPLATE_QUEUE, "Properties", "RedrivePolicy"],
    )?;
    // `!GetAtt DeadLetterQueue.Arn`, in either of its decoded forms.
    let target = redrive
        .get("deadLetterTargetArn")
        .and_then(|t| t.get("Fn::GetAtt"));
    let target_ok = match target {
        Some(Value::Array(parts)) => parts == &[json!(TEMPLATE_DEAD_LETTER_QUEUE), json!("Arn")],
        Some(Value::String(s)) => s == &format!("{TEMPLATE_DEAD_LETTER_QUEUE}.Arn"),
        _ => false,
    };
    if !target_ok {
        found.push(format!("template.yaml: {TEMPLATE_QUEUE}'s dead-letter target is not {TEMPLATE_DEAD_LETTER_QUEUE}.Arn"));
    }
    expect(
        &mut found,
        "the dead-letter target",
        made["dead_letter_arn"].clone(),
        &made["RedrivePolicy"]["deadLetterTargetArn"],
    );
    if redrive.get("maxReceiveCount") != Some(&json!({"Ref": TEMPLATE_MAX_RECEIVES})) {
        found.push(format!(
            "template.yaml: {TEMPLATE_QUEUE}'s maxReceiveCount is not !Ref {TEMPLATE_MAX_RECEIVES}"
        ));
    }
    expect(
        &mut found,
        "the receive count before dead-lettering",
        json!(max_receives),
        &made["RedrivePolicy"]["maxReceiveCount"],
    );

    let table = at(template, &["Resources", TEMPLATE_TABLE, "Properties"])?;
    for property in ["KeySchema", "AttributeDefinitions", "BillingMode"] {
        expect(
            &mut found,
            &format!("{TEMPLATE_TABLE} {property}"),
            at(table, &[property])?.clone(),
            &made[property],
        );
    }
    let ttl = at(table, &["TimeToLiveSpecification"])?;
    let ttl = json!({
        "AttributeName": ttl.get("AttributeName"),
        "Enabled": ttl.get("Enabled").is_some_and(|e| e == &json!(true) || e == &json!("true")),
    });
    expect(
        &mut found,
        &format!("{TEMPLATE_TABLE} TimeToLiveSpecification"),
        ttl,
        &made["TimeToLiveSpecification"],
    );
    Ok(found)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let template: Option<Value> = match &args.template {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?)
        }
        None => None,
    };
    let max_receives = match (args.max_receives, &template) {
        (Some(n), _) => n,
        (None, Some(t)) => {
            let default = at(t, &["Parameters", TEMPLATE_MAX_RECEIVES, "Default"])?;
            u32::try_from(number(default).context("MaxReceiveCount's default is not a number")?)?
        }
        (None, None) => DEFAULT_MAX_RECEIVES,
    };

    let clients = clients_from_env(Some(&args.endpoint_url)).await;
    let (queue, store) = create_resources(&clients, &args.names, max_receives).await?;
    drop(store);
    if let Some(template) = &template {
        let made = describe(
            &clients,
            &queue.queue_url,
            &queue.dead_letter_url,
            &args.names.table,
        )
        .await?;
        let found = differences(template, &made, max_receives)?;
        if !found.is_empty() {
            for difference in &found {
                eprintln!("aws-resources: {difference}");
            }
            bail!(
                "the resources differ from template.yaml in {} place(s)",
                found.len()
            );
        }
    }
    println!(
        "{}",
        json!({
            "queue_url": queue.queue_url,
            "dead_letter_queue_url": queue.dead_letter_url,
            "table": args.names.table,
            "max_receives": max_receives,
        })
    );
    Ok(())
}
