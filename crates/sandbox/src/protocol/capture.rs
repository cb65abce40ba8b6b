//! The pieces a session reads streams with: a capped capture of one output stream, and a
//! scanner that finds a marker however the chunks cut it.

/// One output stream of the program, kept up to a cap.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    limit: usize,
    bytes: Vec<u8>,
    total: u64,
}

impl Capture {
    pub(super) fn new(limit: usize) -> Self {
        Capture {
            limit,
            bytes: Vec::new(),
            total: 0,
        }
    }

    /// Keeps what fits; true when this push is the one that passed the cap.
    pub(super) fn push(&mut self, data: &[u8]) -> bool {
        let was_over = self.exceeded();
        self.total += data.len() as u64;
        let room = self.limit.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..room.min(data.len())]);
        !was_over && self.exceeded()
    }

    /// More than `limit` bytes arrived.
    pub fn exceeded(&self) -> bool {
        self.total > self.limit as u64
    }

    /// The bytes kept (at most the cap).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes seen, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Finds a marker in a stream that arrives in chunks, which may cut the marker anywhere.
#[derive(Debug)]
pub(super) struct MarkerScan {
    marker: Vec<u8>,
    /// The tail of what came so far that could be the marker's start: not yet output.
    held: Vec<u8>,
}

/// What one chunk held: output before the marker and, once it is complete, what followed.
pub(super) struct Scanned {
    pub(super) before: Vec<u8>,
    pub(super) after: Option<Vec<u8>>,
}

impl MarkerScan {
    pub(super) fn new(marker: Vec<u8>) -> Self {
        MarkerScan {
            marker,
            held: Vec::new(),
        }
    }

    /// What was held back as a possible start of the marker (the stream ended).
    pub(super) fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    pub(super) fn feed(&mut self, data: &[u8]) -> Scanned {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        let marker = &self.marker;
        if let Some(at) = buf
            .windows(marker.len())
            .position(|w| w == marker.as_slice())
        {
            let after = buf.split_off(at + marker.len());
            buf.truncate(at);
            return Scanned {
                before: buf,
                after: Some(after),
            };
        }
        let keep = (1..marker.len().min(buf.len() + 1))
            .rev()
            .find(|&k| buf.ends_with(&marker[..k]))
            .unwrap_or(0);
        self.held = buf.split_off(buf.len() - keep);
        Scanned {
            before: buf,
            after: None,
        }
    }
}
