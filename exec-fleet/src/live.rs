//! A room's run, live (Contract 4): the worker opens the run's channel to the edge with the
//! credential the job carries, runs the program interactively, and relays both ways.
//!
//! ```text
//! container stdout/stderr ─> Sandbox::run_live ─> Coalescer (per stream, FLUSH_EVERY)
//!        ─> Utf8Stream (whole characters) ─> FromRun::Output ──ws──> the room's object
//! the room's object ──ws──> ToRun::Line / EndOfInput ─> the program's stdin
//! the run's end ─> the rest of the output, FromRun::Ended(stored result) ─> close
//! ```
//!
//! A run given stdin up front (the stdin panel's text) takes that as its whole input, as a batch
//! run does: its stdin closes after it, and the room is told so. A run given none reads what
//! the room types, line by line, until Ctrl-D.
//!
//! Degrade, never fail: if the channel cannot be opened the job runs as a batch run (and its
//! result arrives by polling, as every result does); if it drops mid-run the program's stdin
//! is closed (nobody can type any more) and the run goes on to its stored result.

use std::pin::pin;
use std::time::{Duration, Instant};

use codebox_live::coalesce::{Coalescer, Flush};
use codebox_live::console::{Utf8Stream, MAX_STREAM_BYTES};
use codebox_live::frame::{FromRun, Stream, ToRun};
use codebox_sandbox::clock::InteractiveLimits;
use codebox_submission::{Job, Program, RunResult};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{info, warn};

use crate::sandbox::{Live, Sandbox};

/// Longest wait for the edge to accept a run's channel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait to hand the edge the run's end before closing anyway.
const END_TIMEOUT: Duration = Duration::from_secs(3);
/// Input lines held for the program while it is not reading.
const INPUT_BACKLOG: usize = 64;

type Channel = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the edge is: its base URL, `http(s)://host[:port]` (the channel goes over ws(s)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeUrl(String);

impl EdgeUrl {
    /// The edge at `base`, or why it cannot be one.
    pub fn parse(base: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        let rest = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(format!("{base:?} is not an http:// or https:// URL"));
        };
        if rest
            .split_once("://")
            .is_some_and(|(_, host)| host.is_empty() || host.contains('/'))
        {
            return Err(format!("{base:?} must be a bare origin (no path)"));
        }
        Ok(EdgeUrl(rest))
    }

    /// The URL of `submission`'s channel into `room`.
    fn channel(&self, room: &str, submission: &str, credential: &str) -> String {
        format!(
            "{}/rooms/{room}/runs/{submission}?credential={credential}",
            self.0
        )
    }
}

/// Runs `job`: live into its room when it carries a credential and the edge is known and
/// answers, else as a batch run.
pub(crate) async fn run(
    sandbox: &Sandbox,
    edge: Option<&EdgeUrl>,
    job: &Job,
    program: &Program,
) -> RunResult {
    match open_channel(edge, job).await {
        Some(channel) => relay(sandbox, job, program, channel).await,
        None => {
            sandbox
                .run(job.language, &program.files, &program.stdin)
                .await
        }
    }
}

/// The run's channel into its room, if the job has one and the edge takes it in time.
async fn open_channel(edge: Option<&EdgeUrl>, job: &Job) -> Option<Channel> {
    let (Some(edge), Some(room), Some(credential)) = (edge, &job.room, &job.run_credential) else {
        return None;
    };
    let url = edge.channel(room, &job.id, credential);
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&url));
    match opened.await {
        Ok(Ok((channel, _))) => {
            info!(submission = %job.id, room, "run channel open");
            Some(channel)
        }
        Ok(Err(error)) => {
            warn!(submission = %job.id, room, %error, "run channel refused; running without it");
            None
        }
        Err(_) => {
            warn!(submission = %job.id, room, "run channel timed out; running without it");
            None
        }
    }
}

/// The channel's sending half, with what it takes to send output as whole characters.
struct Outgoing {
    channel: futures_util::stream::SplitSink<Channel, Message>,
    text: [Utf8Stream; 2],
    up: bool,
}

impl Outgoing {
    async fn send(&mut self, frame: FromRun) {
        if !self.up {
            return;
        }
        if let Err(error) = self.channel.send(Message::binary(frame.encode())).await {
            warn!(%error, "run channel failed; the run goes on without it");
            self.up = false;
        }
    }

    async fn output(&mut self, flush: Flush) {
        let decoder = &mut self.text[index(flush.stream)];
        let text = decoder.push(&flush.bytes);
        self.text_out(flush.stream, text).await;
    }

    async fn text_out(&mut self, stream: Stream, text: String) {
        for frame in FromRun::output(stream, text.as_bytes()) {
            self.send(frame).await;
        }
    }
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// Runs the job interactively over an open channel; returns its result.
async fn relay(sandbox: &Sandbox, job: &Job, program: &Program, channel: Channel) -> RunResult {
    let (sink, mut incoming) = channel.split();
    let mut out = Outgoing {
        channel: sink,
        text: Default::default(),
        up: true,
    };
    let (lines, input) = mpsc::channel(INPUT_BACKLOG);
    let mut lines = Some(lines);
    if !program.stdin.is_empty() {
        lines = None;
        out.send(FromRun::InputClosed).await;
    }
    let (output, mut produced) = mpsc::unbounded_channel();
    let live = Live {
        input,
        output,
        limits: InteractiveLimits::default(),
    };
    let mut coalescer = Coalescer::new(MAX_STREAM_BYTES);
    let mut run = pin!(sandbox.run_live(job.language, &program.files, &program.stdin, live));
    let result = loop {
        let flush_at = coalescer.deadline();
        tokio::select! {
            result = &mut run => break result,
            Some(frame) = produced.recv() => {
                if let FromRun::Output { stream, bytes } = frame {
                    if let Some(flush) = coalescer.push(stream, &bytes, Instant::now()) {
                        out.output(flush).await;
                    }
                }
            }
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                for flush in coalescer.tick(Instant::now()) {
                    out.output(flush).await;
                }
            }
            message = incoming.next(), if lines.is_some() => match message {
                Some(Ok(Message::Binary(frame))) => match ToRun::decode(&frame) {
                    Ok(typed) => {
                        if let Some(to) = &lines {
                            // The program stopped reading (it ended): the line has nowhere to go.
                            let _ = to.send(typed).await;
                        }
                    }
                    Err(error) => warn!(submission = %job.id, %error, "ignoring a bad input frame"),
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    warn!(submission = %job.id, "run channel closed by the edge; stdin closes");
                    lines = None;
                    out.up = false;
                }
                Some(Ok(_)) => {}
            },
        }
    };
    // What the program wrote last, then its end.
    while let Ok(FromRun::Output { stream, bytes }) = produced.try_recv() {
        if let Some(flush) = coalescer.push(stream, &bytes, Instant::now()) {
            out.output(flush).await;
        }
    }
    let finished = async {
        for flush in coalescer.finish(Instant::now()) {
            out.output(flush).await;
        }
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = out.text[index(stream)].finish();
            out.text_out(stream, rest).await;
        }
        match serde_json::to_string(&result) {
            Ok(json) => out.send(FromRun::Ended(json)).await,
            Err(error) => warn!(submission = %job.id, %error, "the result does not serialise"),
        }
        if out.up {
            let _ = out.channel.close().await;
        }
    };
    if tokio::time::timeout(END_TIMEOUT, finished).await.is_err() {
        warn!(submission = %job.id, "the edge did not take the run's end in time");
    }
    result
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_url_becomes_the_channels() {
        let edge = EdgeUrl::parse("http://127.0.0.1:8787/").unwrap();
        assert_eq!(
            edge.channel("r1", "s1", "C"),
            "ws://127.0.0.1:8787/rooms/r1/runs/s1?credential=C"
        );
        let edge = EdgeUrl::parse("https://codebox.example").unwrap();
        assert_eq!(
            edge.channel("r", "s", "c"),
            "wss://codebox.example/rooms/r/runs/s?credential=c"
        );
        for bad in ["ftp://x", "127.0.0.1:8787", "http://", "https://x/path"] {
            assert!(EdgeUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
