//! `tracing` for the Worker: one JSON object per line on the Workers console, which Workers
//! Logs indexes by field (room, conn, ...).

use std::io;
use std::sync::Once;

use tracing_subscriber::fmt::MakeWriter;

/// Installs the subscriber once per isolate.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            // wasm32 has no system clock for the formatter; Workers stamps each line itself.
            .without_time()
            .with_writer(Console)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// A writer that hands each formatted line to `console.log`.
#[derive(Clone, Copy)]
struct Console;

/// Buffers one event's output and logs it when dropped.
struct ConsoleLine(Vec<u8>);

impl io::Write for ConsoleLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        worker::console_log!("{}", line.trim_end());
    }
}

impl<'a> MakeWriter<'a> for Console {
    type Writer = ConsoleLine;

    fn make_writer(&'a self) -> Self::Writer {
        ConsoleLine(Vec::new())
    }
}
