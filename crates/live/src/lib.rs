//! The live run channel (Contract 4), without I/O: how the fleet worker running a room's
//! submission and the room's Durable Object talk, and how the room turns a run's output into
//! document edits without letting a printing loop flood it.
//!
//! ```text
//! fleet worker ── wss /rooms/{room}/runs/{submission}?credential=C ──> Room Durable Object
//!   container stdout/stderr ──> frame::FromRun::Output ──> coalesce::Coalescer ──> doc edits
//!   the run's end           ──> frame::FromRun::Ended  ──> the entry's final state
//!   stdin <── frame::ToRun::Line / EndOfInput <── a participant's console (edit rights)
//! ```
//!
//! Modules:
//! - [`frame`]: the binary frames both ways, and every way a frame is refused.
//! - [`coalesce`]: output buffered per stream, flushed at most once per interval, capped.
//! - [`console`]: a run's console in the room's document (the layout, explained once), and the
//!   UTF-8 decoding of output that arrives in chunks.

pub mod coalesce;
pub mod console;
pub mod frame;
