//! The fleet's reader of the supervisor protocol, black-box: markers, framing, END on
//! both streams, the output cap, whatever the chunking.

use codebox_sandbox::protocol::{End, Event, ProtocolError, Session, MAX_COMPILE_OUTPUT, MAX_LINE};

const TOKEN: &str = "00112233445566778899aabbccddeeff";

fn feed_all(session: &mut Session, stdout: &[u8]) -> Vec<Event> {
    session.on_stdout(stdout).expect("valid protocol")
}

const OK_RUN: &[u8] =
    b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 5 5\nwarn\nCODEBOX/3 RUN\nhello\n";

#[test]
fn a_whole_run_in_one_chunk() {
    let mut s = Session::new(1024, TOKEN.into());
    let events = feed_all(&mut s, OK_RUN);
    assert_eq!(
        events,
        vec![
            Event::Ready,
            Event::CompileStarted,
            Event::Compiled { status: 0 },
            Event::ProgramStarted
        ]
    );
    assert_eq!(s.compiled().unwrap().output, b"warn\n");
    assert_eq!(s.stdout().bytes(), b"hello\n");
    assert!(s.program_started());
}

#[test]
fn any_chunking_gives_the_same_result() {
    for split in 1..OK_RUN.len() {
        let mut s = Session::new(1024, TOKEN.into());
        let mut events = feed_all(&mut s, &OK_RUN[..split]);
        events.extend(feed_all(&mut s, &OK_RUN[split..]));
        assert_eq!(events.len(), 4, "split at {split}");
        assert_eq!(s.compiled().unwrap().output, b"warn\n", "split at {split}");
        assert_eq!(s.stdout().bytes(), b"hello\n", "split at {split}");
    }
    let mut s = Session::new(1024, TOKEN.into());
    for byte in OK_RUN {
        feed_all(&mut s, std::slice::from_ref(byte));
    }
    assert_eq!(s.stdout().bytes(), b"hello\n");
}

#[test]
fn program_output_that_looks_like_markers_is_just_output() {
    let mut s = Session::new(1024, TOKEN.into());
    let mut stream =
        b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 0 0\nCODEBOX/3 RUN\n".to_vec();
    stream.extend_from_slice(b"CODEBOX/3 FAIL x\nCODEBOX/3 COMPILED 1 0 0\n");
    feed_all(&mut s, &stream);
    assert_eq!(s.failure(), None);
    assert_eq!(s.compiled().unwrap().status, 0);
    assert_eq!(
        s.stdout().bytes(),
        b"CODEBOX/3 FAIL x\nCODEBOX/3 COMPILED 1 0 0\n"
    );
}

#[test]
fn compile_output_is_framed_and_can_hold_marker_lookalikes() {
    let output = b"main.c:1: error\nCODEBOX/3 RUN\n";
    let mut stream = format!(
        "CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 1 {} 900\n",
        output.len()
    )
    .into_bytes();
    stream.extend_from_slice(output);
    let mut s = Session::new(1024, TOKEN.into());
    let events = feed_all(&mut s, &stream);
    assert_eq!(events.last(), Some(&Event::Compiled { status: 1 }));
    let compiled = s.compiled().unwrap();
    assert_eq!(compiled.output, output);
    assert_eq!(compiled.total, 900);
    assert!(!s.program_started());
    assert!(
        s.on_stdout(b"x\n").is_err(),
        "nothing but END may follow a failed compile"
    );
}

#[test]
fn supervisor_failure_is_reported() {
    let mut s = Session::new(1024, TOKEN.into());
    let events = feed_all(
        &mut s,
        b"CODEBOX/3 READY\nCODEBOX/3 FAIL short source: 3 of 9 bytes\n",
    );
    assert_eq!(
        events.last(),
        Some(&Event::SupervisorFailed(
            "short source: 3 of 9 bytes".into()
        ))
    );
    assert_eq!(s.failure(), Some("short source: 3 of 9 bytes"));
}

#[test]
fn rejects_garbage_and_out_of_order_markers() {
    assert!(Session::new(8, TOKEN.into()).on_stdout(b"hello\n").is_err());
    assert!(Session::new(8, TOKEN.into())
        .on_stdout(b"CODEBOX/3 RUN\n")
        .is_err());
    assert!(Session::new(8, TOKEN.into())
        .on_stdout(b"CODEBOX/3 READY\nCODEBOX/3 RUN\n")
        .is_err());
    assert!(Session::new(8, TOKEN.into())
        .on_stdout(b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED x 0 0\n")
        .is_err());
    let huge = format!(
        "CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 1 {} 99999999\n",
        MAX_COMPILE_OUTPUT + 1
    );
    assert!(Session::new(8, TOKEN.into())
        .on_stdout(huge.as_bytes())
        .is_err());
    assert!(matches!(
        Session::new(8, TOKEN.into()).on_stdout(&[b'C'; MAX_LINE + 1]),
        Err(ProtocolError::LineTooLong(_))
    ));
}

#[test]
fn output_cap_fires_once_per_stream_and_keeps_the_cap() {
    let mut s = Session::new(4, TOKEN.into());
    feed_all(
        &mut s,
        b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 0 0\nCODEBOX/3 RUN\n",
    );
    assert_eq!(feed_all(&mut s, b"abcd"), vec![], "exactly the cap is fine");
    assert_eq!(feed_all(&mut s, b"e"), vec![Event::OutputExceeded]);
    assert_eq!(feed_all(&mut s, b"fgh"), vec![]);
    assert_eq!(s.stdout().bytes(), b"abcd");
    assert!(s.stdout().exceeded());
    assert_eq!(s.stdout().total(), 8);
    assert_eq!(s.on_stderr(b"12345"), vec![Event::OutputExceeded]);
    assert_eq!(s.stderr().bytes(), b"1234");
}

#[test]
fn stderr_means_the_program_started_even_before_run_arrives() {
    let mut s = Session::new(64, TOKEN.into());
    feed_all(
        &mut s,
        b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 0 0\n",
    );
    assert_eq!(s.on_stderr(b"oops"), vec![Event::ProgramStarted]);
    assert_eq!(
        feed_all(&mut s, b"CODEBOX/3 RUN\nout"),
        vec![],
        "no second start"
    );
    assert_eq!(s.stdout().bytes(), b"out");
    assert_eq!(s.stderr().bytes(), b"oops");
}

fn end_out(status: i64, ooms: &str) -> Vec<u8> {
    format!("CODEBOX/3 END {TOKEN} {status} {ooms}\n").into_bytes()
}

fn end_err() -> Vec<u8> {
    format!("CODEBOX/3 END {TOKEN}\n").into_bytes()
}

const STARTED: &[u8] =
    b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 0 0\nCODEBOX/3 RUN\n";

#[test]
fn end_on_both_streams_ends_the_run_with_every_byte_in() {
    let mut s = Session::new(1024, TOKEN.into());
    feed_all(&mut s, STARTED);
    let mut out = b"no newline at the end".to_vec();
    out.extend(end_out(3, "0"));
    out.extend_from_slice(b"a leftover child's output");
    assert_eq!(feed_all(&mut s, &out), vec![], "stderr has not ended yet");
    assert_eq!(s.end(), None);
    let mut err = b"warning".to_vec();
    err.extend(end_err());
    err.extend_from_slice(b"late");
    let end = End {
        status: 3,
        ooms: Some(0),
    };
    assert_eq!(s.on_stderr(&err), vec![Event::Ended(end)]);
    assert_eq!(s.end(), Some(end));
    assert!(end.is_conclusive());
    assert_eq!(s.stdout().bytes(), b"no newline at the end");
    assert_eq!(s.stderr().bytes(), b"warning");
    assert_eq!(feed_all(&mut s, b"more leftovers"), vec![]);
    assert_eq!(s.on_stderr(b"more"), vec![]);
    assert_eq!(s.stderr().bytes(), b"warning");
}

#[test]
fn end_cut_anywhere_is_still_found() {
    let mut out = STARTED.to_vec();
    out.extend_from_slice(b"CODEBOX/3 END 0011 lookalike\nhi");
    out.extend(end_out(0, "0"));
    let mut err = b"CODEBOX/3 EN".to_vec();
    err.extend(end_err());
    for split in 1..out.len() {
        let mut s = Session::new(1024, TOKEN.into());
        feed_all(&mut s, &out[..split]);
        feed_all(&mut s, &out[split..]);
        let e = split.min(err.len() - 1);
        s.on_stderr(&err[..e]);
        let events = s.on_stderr(&err[e..]);
        assert!(
            matches!(events.last(), Some(Event::Ended(_))),
            "split at {split}"
        );
        assert_eq!(
            s.stdout().bytes(),
            b"CODEBOX/3 END 0011 lookalike\nhi",
            "split at {split}"
        );
        assert_eq!(s.stderr().bytes(), b"CODEBOX/3 EN", "split at {split}");
    }
}

#[test]
fn end_with_another_token_is_output() {
    let mut s = Session::new(1024, TOKEN.into());
    feed_all(&mut s, STARTED);
    let forged = b"CODEBOX/3 END ffffffffffffffffffffffffffffffff 0 0\n";
    feed_all(&mut s, forged);
    s.on_stderr(b"CODEBOX/3 END ffffffffffffffffffffffffffffffff\n");
    assert_eq!(s.end(), None);
    assert_eq!(s.stdout().bytes(), forged);
}

#[test]
fn bytes_held_back_as_a_possible_end_are_output_if_the_stream_just_stops() {
    let mut s = Session::new(1024, TOKEN.into());
    feed_all(&mut s, STARTED);
    feed_all(&mut s, b"out CODEBOX/3 END 00");
    s.on_stderr(b"err CODEBOX/");
    assert_eq!(s.stdout().bytes(), b"out ");
    assert_eq!(s.stderr().bytes(), b"err ");
    s.close_streams();
    assert_eq!(s.stdout().bytes(), b"out CODEBOX/3 END 00");
    assert_eq!(s.stderr().bytes(), b"err CODEBOX/");
}

#[test]
fn a_failed_compile_ends_with_end_and_no_program() {
    let mut s = Session::new(1024, TOKEN.into());
    let mut out = b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 1 3 3\nbad".to_vec();
    out.extend(end_out(1, "-"));
    feed_all(&mut s, &out);
    let events = s.on_stderr(&end_err());
    let end = End {
        status: 1,
        ooms: None,
    };
    assert_eq!(events, vec![Event::Ended(end)]);
    assert!(!s.program_started(), "END on stderr is not program output");
    assert!(!end.is_conclusive(), "unknown OOM kills: ask the engine");
    assert!(Session::new(8, TOKEN.into())
        .on_stdout(b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 1 0 0\nCODEBOX/3 END 0011 1 0\n")
        .is_err(), "END with another token after a failed compile");
}

#[test]
fn only_a_plain_exit_without_oom_kills_is_conclusive() {
    let end = |status, ooms| End { status, ooms };
    assert!(end(0, Some(0)).is_conclusive());
    assert!(
        end(139, Some(0)).is_conclusive(),
        "SIGSEGV is the program's"
    );
    assert!(
        !end(137, Some(0)).is_conclusive(),
        "SIGKILL may be the OOM killer"
    );
    assert!(!end(1, Some(1)).is_conclusive());
    assert!(!end(0, None).is_conclusive());
    let mut s = Session::new(8, TOKEN.into());
    feed_all(&mut s, STARTED);
    assert!(s.on_stdout(&end_out(0, "many")).is_err());
}

#[test]
fn oom_kills_count_from_stdouts_end_alone() {
    let oom_after = |ooms: &str| {
        let mut s = Session::new(64, TOKEN.into());
        feed_all(&mut s, STARTED);
        s.on_stdout(&end_out(137, ooms)).unwrap();
        s.oom_reported()
    };
    assert!(oom_after("1"));
    assert!(!oom_after("0"));
    assert!(!oom_after("-"), "unknown is not an OOM kill");
    let mut s = Session::new(64, TOKEN.into());
    feed_all(&mut s, STARTED);
    assert!(!s.oom_reported(), "no END yet");
}
