//! The channel's frames: binary WebSocket messages, one frame each, a tag byte first.
//!
//! ```text
//! run -> room   0x01 <bytes>   the program's stdout, as it wrote it (any bytes, 1..=MAX_CHUNK)
//!               0x02 <bytes>   its stderr
//!               0x03 <json>    the run ended: the stored result (Contract 2's record), UTF-8 JSON
//!               0x04           the program's stdin is closed: it takes no typed input (it was
//!                              given the stdin panel's text, which ends its input)
//! room -> run   0x10 <bytes>   a line of input, with its newline (1..=MAX_LINE bytes)
//!               0x11           the end of input (Ctrl-D)
//! ```
//!
//! Nothing else is a frame: an empty message, an unknown tag, a chunk over its limit or an
//! output frame sent towards the run are refused with a [`FrameError`], which the receiver
//! answers by closing the channel (the run itself goes on, and its result arrives by polling).

use thiserror::Error;

/// The largest output chunk in one frame.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The largest line of input in one frame.
pub const MAX_LINE: usize = 4 * 1024;
/// The largest end frame (a result holds at most two 64 KiB streams and the compile output,
/// escaped).
pub const MAX_END: usize = 1024 * 1024;

const STDOUT: u8 = 0x01;
const STDERR: u8 = 0x02;
const ENDED: u8 = 0x03;
const INPUT_CLOSED: u8 = 0x04;
const LINE: u8 = 0x10;
const END_OF_INPUT: u8 = 0x11;

/// One of the program's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Its stdout.
    Stdout,
    /// Its stderr.
    Stderr,
}

/// A frame from the run to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromRun {
    /// Output, in the order the program wrote it on that stream.
    Output {
        /// Which stream.
        stream: Stream,
        /// The bytes (not necessarily valid UTF-8, nor whole lines).
        bytes: Vec<u8>,
    },
    /// The run ended; its stored result, as JSON.
    Ended(String),
    /// The program's stdin is closed: the room stops taking input for it.
    InputClosed,
}

/// A frame from the room to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRun {
    /// A line for the program's stdin, with its newline.
    Line(Vec<u8>),
    /// Close the program's stdin.
    EndOfInput,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// An empty message.
    #[error("an empty frame")]
    Empty,
    /// A tag this side does not take.
    #[error("frame tag {0:#04x} is not one this side accepts")]
    UnknownTag(u8),
    /// A frame whose body is empty, over its limit, or (for an end) not UTF-8.
    #[error("a malformed {what} frame of {len} bytes")]
    Malformed {
        /// The kind of frame.
        what: &'static str,
        /// Its body's length.
        len: usize,
    },
}

fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1 + body.len());
    frame.push(tag);
    frame.extend_from_slice(body);
    frame
}

fn check(what: &'static str, body: &[u8], max: usize) -> Result<(), FrameError> {
    if body.is_empty() || body.len() > max {
        return Err(FrameError::Malformed {
            what,
            len: body.len(),
        });
    }
    Ok(())
}

impl FromRun {
    /// The frame's bytes. Output longer than [`MAX_CHUNK`] must be split by the sender
    /// ([`FromRun::output`] does).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            FromRun::Output { stream, bytes } => tagged(
                match stream {
                    Stream::Stdout => STDOUT,
                    Stream::Stderr => STDERR,
                },
                bytes,
            ),
            FromRun::Ended(json) => tagged(ENDED, json.as_bytes()),
            FromRun::InputClosed => vec![INPUT_CLOSED],
        }
    }

    /// Output frames for `bytes`, split at [`MAX_CHUNK`].
    pub fn output(stream: Stream, bytes: &[u8]) -> Vec<FromRun> {
        bytes
            .chunks(MAX_CHUNK)
            .map(|chunk| FromRun::Output {
                stream,
                bytes: chunk.to_vec(),
            })
            .collect()
    }

    /// Reads a frame the room received.
    pub fn decode(frame: &[u8]) -> Result<FromRun, FrameError> {
        let (&tag, body) = frame.split_first().ok_or(FrameError::Empty)?;
        match tag {
            STDOUT | STDERR => {
                check("output", body, MAX_CHUNK)?;
                let stream = if tag == STDOUT {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                Ok(FromRun::Output {
                    stream,
                    bytes: body.to_vec(),
                })
            }
            ENDED => {
                check("end", body, MAX_END)?;
                let json = std::str::from_utf8(body).map_err(|_| FrameError::Malformed {
                    what: "end",
                    len: body.len(),
                })?;
                Ok(FromRun::Ended(json.to_owned()))
            }
            INPUT_CLOSED if body.is_empty() => Ok(FromRun::InputClosed),
            INPUT_CLOSED => Err(FrameError::Malformed {
                what: "input closed",
                len: body.len(),
            }),
            other => Err(FrameError::UnknownTag(other)),
        }
    }
}

impl ToRun {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ToRun::Line(line) => tagged(LINE, line),
            ToRun::EndOfInput => vec![END_OF_INPUT],
        }
    }

    /// Reads a frame the run received.
    pub fn decode(frame: &[u8]) -> Result<ToRun, FrameError> {
        let (&tag, body) = frame.split_first().ok_or(FrameError::Empty)?;
        match tag {
            LINE => {
                check("line", body, MAX_LINE)?;
                Ok(ToRun::Line(body.to_vec()))
            }
            END_OF_INPUT if body.is_empty() => Ok(ToRun::EndOfInput),
            END_OF_INPUT => Err(FrameError::Malformed {
                what: "end of input",
                len: body.len(),
            }),
            other => Err(FrameError::UnknownTag(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_side_takes_only_its_own_frames() {
        let output = FromRun::Output {
            stream: Stream::Stderr,
            bytes: b"oops\xff".to_vec(),
        };
        assert_eq!(FromRun::decode(&output.encode()), Ok(output.clone()));
        let ended = FromRun::Ended(r#"{"status":"ok"}"#.into());
        assert_eq!(FromRun::decode(&ended.encode()), Ok(ended));
        assert_eq!(
            FromRun::decode(&FromRun::InputClosed.encode()),
            Ok(FromRun::InputClosed)
        );
        assert!(matches!(
            FromRun::decode(&[INPUT_CLOSED, 0]),
            Err(FrameError::Malformed { .. })
        ));
        assert_eq!(
            ToRun::decode(&ToRun::EndOfInput.encode()),
            Ok(ToRun::EndOfInput)
        );
        // A browser or a confused peer cannot pass one side's frame as the other's.
        assert_eq!(
            ToRun::decode(&output.encode()),
            Err(FrameError::UnknownTag(0x02))
        );
        assert_eq!(
            FromRun::decode(&ToRun::Line(b"x\n".to_vec()).encode()),
            Err(FrameError::UnknownTag(0x10))
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert_eq!(FromRun::decode(&[]), Err(FrameError::Empty));
        assert_eq!(ToRun::decode(&[]), Err(FrameError::Empty));
        assert!(matches!(
            FromRun::decode(&[STDOUT]),
            Err(FrameError::Malformed { .. })
        ));
        let huge = tagged(STDOUT, &vec![b'a'; MAX_CHUNK + 1]);
        assert!(
            matches!(FromRun::decode(&huge), Err(FrameError::Malformed { len, .. }) if len == MAX_CHUNK + 1)
        );
        assert!(matches!(
            FromRun::decode(&[ENDED, 0xff]),
            Err(FrameError::Malformed { what: "end", .. })
        ));
        let long_line = tagged(LINE, &vec![b'a'; MAX_LINE + 1]);
        assert!(matches!(
            ToRun::decode(&long_line),
            Err(FrameError::Malformed { .. })
        ));
        assert!(matches!(
            ToRun::decode(&[END_OF_INPUT, 0]),
            Err(FrameError::Malformed { .. })
        ));
        assert_eq!(
            FromRun::decode(&[0x7f, 1]),
            Err(FrameError::UnknownTag(0x7f))
        );
    }

    proptest! {
        #[test]
        fn output_of_any_size_splits_into_frames_that_decode_back_to_it(
            bytes in proptest::collection::vec(any::<u8>(), 1..200_000),
        ) {
            let frames = FromRun::output(Stream::Stdout, &bytes);
            let mut joined = Vec::new();
            for frame in &frames {
                match FromRun::decode(&frame.encode()) {
                    Ok(FromRun::Output { stream: Stream::Stdout, bytes }) => joined.extend(bytes),
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            prop_assert_eq!(joined, bytes);
        }
    }
}
