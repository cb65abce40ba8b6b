//! A run's output on its way into the room's document: each stream is written at once when it
//! has been quiet, and otherwise at most once per [`FLUSH_EVERY`], so a printing loop makes a
//! bounded number of edits (and stored rows); each stream is capped as the stored result is.

use std::time::{Duration, Instant};

use crate::frame::Stream;

/// The shortest time between two writes of one stream into the document.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Output to write into the document now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flush {
    /// Which stream.
    pub stream: Stream,
    /// The bytes to append.
    pub bytes: Vec<u8>,
    /// The stream passed its cap with this write: later output is dropped.
    pub truncated: bool,
}

#[derive(Debug, Default)]
struct Buffer {
    pending: Vec<u8>,
    /// Bytes taken so far (pending included), at most the cap.
    taken: usize,
    over_cap: bool,
    truncation_reported: bool,
    last_flush: Option<Instant>,
}

/// Both streams of one run.
#[derive(Debug)]
pub struct Coalescer {
    cap: usize,
    stdout: Buffer,
    stderr: Buffer,
}

impl Coalescer {
    /// A run's coalescer; `cap`: the bytes kept per stream (the result's output limit).
    pub fn new(cap: usize) -> Coalescer {
        Coalescer {
            cap,
            stdout: Buffer::default(),
            stderr: Buffer::default(),
        }
    }

    fn buffer(&mut self, stream: Stream) -> &mut Buffer {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// Output arrived at `now`: what to write at once (nothing if the stream was written
    /// less than [`FLUSH_EVERY`] ago; see [`Coalescer::deadline`]).
    pub fn push(&mut self, stream: Stream, bytes: &[u8], now: Instant) -> Option<Flush> {
        let cap = self.cap;
        let buffer = self.buffer(stream);
        let room = cap - buffer.taken;
        let kept = room.min(bytes.len());
        buffer.pending.extend_from_slice(&bytes[..kept]);
        buffer.taken += kept;
        buffer.over_cap |= kept < bytes.len();
        let due = buffer
            .last_flush
            .is_none_or(|last| now >= last + FLUSH_EVERY);
        if due {
            self.flush(stream, now)
        } else {
            None
        }
    }

    /// When held output must be written (`None`: nothing is held).
    pub fn deadline(&self) -> Option<Instant> {
        [&self.stdout, &self.stderr]
            .into_iter()
            .filter(|b| !b.pending.is_empty() || (b.over_cap && !b.truncation_reported))
            .filter_map(|b| b.last_flush.map(|last| last + FLUSH_EVERY))
            .min()
    }

    /// What is due at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Flush> {
        let mut due = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buffer = self.buffer(stream);
            if buffer
                .last_flush
                .is_some_and(|last| now >= last + FLUSH_EVERY)
            {
                due.extend(self.flush(stream, now));
            }
        }
        due
    }

    /// The run ended: everything held, at once.
    pub fn finish(&mut self, now: Instant) -> Vec<Flush> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|stream| self.flush(stream, now))
            .collect()
    }

    fn flush(&mut self, stream: Stream, now: Instant) -> Option<Flush> {
        let buffer = self.buffer(stream);
        let truncated = buffer.over_cap && !buffer.truncation_reported;
        if buffer.pending.is_empty() && !truncated {
            return None;
        }
        buffer.truncation_reported |= truncated;
        buffer.last_flush = Some(now);
        Some(Flush {
            stream,
            bytes: std::mem::take(&mut buffer.pending),
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_quiet_stream_is_written_at_once_and_a_busy_one_every_interval() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(1024);
        let first = c.push(Stream::Stdout, b"a", t0).unwrap();
        assert_eq!(
            (first.bytes.as_slice(), first.truncated),
            (&b"a"[..], false)
        );
        assert_eq!(c.push(Stream::Stdout, b"b", t0 + ms(10)), None);
        assert_eq!(c.push(Stream::Stdout, b"c", t0 + ms(20)), None);
        assert_eq!(c.deadline(), Some(t0 + ms(50)));
        // The other stream has its own interval.
        assert!(c.push(Stream::Stderr, b"e", t0 + ms(20)).is_some());
        assert_eq!(c.tick(t0 + ms(49)), vec![]);
        let due = c.tick(t0 + ms(50));
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].stream, due[0].bytes.as_slice()),
            (Stream::Stdout, &b"bc"[..])
        );
        assert_eq!(c.deadline(), None);
        assert!(
            c.push(Stream::Stdout, b"d", t0 + ms(200)).is_some(),
            "quiet again"
        );
    }

    #[test]
    fn output_past_the_cap_is_dropped_and_said_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(4);
        assert_eq!(c.push(Stream::Stderr, b"abc", t0).unwrap().bytes, b"abc");
        assert_eq!(c.push(Stream::Stderr, b"defg", t0 + ms(1)), None);
        let flushed = c.finish(t0 + ms(2));
        assert_eq!(flushed.len(), 1);
        assert_eq!(
            (flushed[0].bytes.as_slice(), flushed[0].truncated),
            (&b"d"[..], true)
        );
        assert_eq!(c.push(Stream::Stderr, b"more", t0 + ms(500)), None);
        assert_eq!(c.finish(t0 + ms(600)), vec![]);
    }

    proptest! {
        /// Whatever arrives when, the writes add up to the output up to the cap, and a stream
        /// is written at most once per interval.
        #[test]
        fn writes_add_up_and_are_spaced(
            chunks in proptest::collection::vec((0u64..120, proptest::collection::vec(any::<u8>(), 0..300)), 0..60),
            cap in 1usize..4_000,
        ) {
            let t0 = Instant::now();
            let mut c = Coalescer::new(cap);
            let (mut now, mut written, mut sent) = (t0, Vec::new(), Vec::new());
            let mut times = Vec::new();
            let take = |flushes: Vec<Flush>, at: Instant, written: &mut Vec<u8>, times: &mut Vec<Instant>| {
                for f in flushes {
                    written.extend(f.bytes);
                    times.push(at);
                }
            };
            for (gap, bytes) in chunks {
                let next = now + ms(gap);
                while let Some(deadline) = c.deadline().filter(|d| *d <= next) {
                    let due = c.tick(deadline);
                    take(due, deadline, &mut written, &mut times);
                }
                now = next;
                sent.extend_from_slice(&bytes);
                let flushed = c.push(Stream::Stdout, &bytes, now);
                take(flushed.into_iter().collect(), now, &mut written, &mut times);
            }
            let end = now + ms(1);
            take(c.finish(end), end, &mut written, &mut times);
            sent.truncate(cap);
            prop_assert_eq!(written, sent);
            for pair in times.windows(2) {
                prop_assert!(pair[1] >= pair[0] + FLUSH_EVERY || pair[1] == end, "{pair:?}");
            }
        }
    }
}
