//! The container bridge (`crate/src/scripts/bridge.py`) run for real against the Rust
//! endpoint: the other end of the stream protocol's contract, under python3 and, where this
//! machine has one, python3.7 (the oldest Python AI Studio images carry).
#![cfg(not(target_arch = "wasm32"))]
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use aistudio_ssh::stream::{
    Ack, Config, Decoder, Endpoint, ErrorCode, Event, Frame, Hello, LinkId, ResetCode, StreamId,
    TARGET_SSH, VERSION,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STREAMS: usize = 3;
const BYTES_EACH_WAY: usize = 2 * 1024 * 1024;

fn bridge_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/bridge.py")
}

/// python3, and a pyenv python3.7 when this machine has one.
fn pythons() -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("python3")];
    let roots = [std::env::var("HOME").unwrap_or_default(), "/root".into()];
    let old = roots.iter().find_map(|home| {
        let versions = Path::new(home).join(".pyenv/versions");
        let mut names: Vec<String> = std::fs::read_dir(versions)
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("3.7."))
            .collect();
        names.sort();
        let python = Path::new(home)
            .join(".pyenv/versions")
            .join(names.pop()?)
            .join("bin/python3.7");
        python.exists().then_some(python)
    });
    match old {
        Some(python) => found.push(python),
        None => eprintln!("note: no pyenv python3.7 here; the bridge runs under python3 only"),
    }
    found
}

/// A TCP server that echoes every byte and half-closes after its peer does: sshd's stand-in.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// The bridge as a child process with its link on stdin/stdout: bytes to it through a
/// channel (dropping the sender closes its stdin), bytes from it on another.
struct Bridge {
    child: Child,
    to: Option<Sender<Vec<u8>>>,
    from: Receiver<Vec<u8>>,
}

impl Bridge {
    fn start(python: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(python)
            .arg(bridge_py())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", python.display()));
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (to, to_rx) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            for bytes in to_rx {
                if stdin.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        let (from_tx, from) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0; 256 * 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || from_tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            to: Some(to),
            from,
        }
    }

    fn send(&self, bytes: Vec<u8>) {
        self.to.as_ref().unwrap().send(bytes).unwrap();
    }

    /// Closes its stdin and waits for it to exit on its own.
    fn finish(mut self) {
        drop(self.to.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the bridge exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the bridge outlived its link");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every frame type, with the limits and odd values a codec gets wrong.
fn sample_frames() -> Vec<Frame> {
    let ack = |stream, received, window, fin| Ack {
        stream: StreamId(stream),
        received,
        window,
        fin,
    };
    vec![
        Frame::Hello(Hello {
            version: VERSION,
            link_id: LinkId([0xa5; 16]),
            resume: vec![
                ack(1, 10, 20, false),
                ack(u32::MAX, u64::MAX, u32::MAX, true),
            ],
        }),
        Frame::Hello(Hello {
            version: VERSION,
            link_id: LinkId([0; 16]),
            resume: vec![],
        }),
        Frame::Error {
            code: ErrorCode::LINK_MISMATCH,
            reason: "é".repeat(512),
        },
        Frame::Open {
            stream: StreamId(3),
            target: TARGET_SSH.into(),
        },
        Frame::Data {
            stream: StreamId(5),
            offset: u64::MAX - 3,
            bytes: vec![0xff; 3],
        },
        Frame::Data {
            stream: StreamId(7),
            offset: 0,
            bytes: vec![],
        },
        Frame::Ack(ack(9, 1 << 40, 4 << 20, true)),
        Frame::Close {
            stream: StreamId(11),
            final_offset: 12345,
        },
        Frame::Reset {
            stream: StreamId(2),
            code: ResetCode::GONE,
            reason: "gone".into(),
        },
        Frame::Ping { nonce: u64::MAX },
        Frame::Pong { nonce: 0 },
    ]
}

#[test]
fn the_bridge_codec_decodes_and_encodes_every_frame_byte_for_byte() {
    let mut wire = Vec::new();
    for frame in sample_frames() {
        frame.encode(&mut wire).unwrap();
    }
    // Decoded one byte at a time (every split point), then encoded again.
    let program = "import sys; sys.path.insert(0, sys.argv[1]); import bridge\n\
        d = bridge.Decoder(); out = []\n\
        for b in sys.stdin.buffer.read(): d.push(bytes([b])); f = d.next_frame(); f is not None and out.append(f)\n\
        sys.stdout.buffer.write(b''.join(bridge.encode(f) for f in out))";
    for python in pythons() {
        let mut child = Command::new(&python)
            .args(["-c", program])
            .arg(bridge_py().parent().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&wire).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", python.display());
        assert_eq!(output.stdout, wire, "{}", python.display());
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Sends what the endpoint has to send, as one write.
fn flush(ep: &mut Endpoint, bridge: &Bridge, now: u64) {
    let mut out = Vec::new();
    while let Some(frame) = ep.poll_transmit(now) {
        frame.encode(&mut out).unwrap();
    }
    if !out.is_empty() {
        bridge.send(out);
    }
}

fn streams_through_the_bridge(python: &Path) {
    let port = echo_server();
    let bridge = Bridge::start(python, &["--sshd-port", &port.to_string()]);
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut link = [0; 16];
    rng.fill_bytes(&mut link);
    let mut ep = Endpoint::initiator(LinkId(link), Config::default(), 0);
    ep.link_up(0);

    let mut sent = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..STREAMS {
        let mut bytes = vec![0; BYTES_EACH_WAY];
        rng.fill_bytes(&mut bytes);
        sent.push(bytes);
        ids.push(ep.open_stream(TARGET_SSH));
    }
    let mut written = [0; STREAMS];
    let mut received = vec![Vec::new(); STREAMS];
    let mut finished = [false; STREAMS];
    let mut decoder = Decoder::new();

    while !finished.iter().all(|&f| f) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stalled: {received:?}",
            received = received.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let now = elapsed_ms(start);
        for (i, &id) in ids.iter().enumerate() {
            if written[i] < BYTES_EACH_WAY {
                written[i] += ep.write(id, &sent[i][written[i]..]).unwrap();
                if written[i] == BYTES_EACH_WAY {
                    ep.close(id).unwrap();
                }
            }
        }
        flush(&mut ep, &bridge, now);
        while let Some(event) = ep.poll_event() {
            match event {
                Event::Readable { stream } | Event::Closed { stream } => {
                    let i = ids.iter().position(|&id| id == stream).unwrap();
                    // A stream finished in this same batch was read to its end already.
                    let _ = ep.read(stream, &mut received[i]);
                }
                Event::Finished { stream } => {
                    finished[ids.iter().position(|&id| id == stream).unwrap()] = true;
                }
                Event::Reset { .. } | Event::LinkFailed { .. } | Event::LinkSilent => {
                    panic!("{event:?}")
                }
                Event::LinkUp
                | Event::LinkTimedOut
                | Event::StreamOpened { .. }
                | Event::Writable { .. } => {}
            }
        }
        let wait = ep
            .poll_timeout()
            .map_or(5, |at| at.saturating_sub(now).clamp(1, 5));
        match bridge.from.recv_timeout(Duration::from_millis(wait)) {
            Ok(bytes) => {
                decoder.push(&bytes);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    ep.handle(frame, elapsed_ms(start));
                }
            }
            Err(RecvTimeoutError::Timeout) => ep.handle_timeout(elapsed_ms(start)),
            Err(RecvTimeoutError::Disconnected) => panic!("the bridge closed its stdout"),
        }
    }
    for i in 0..STREAMS {
        assert!(received[i] == sent[i], "stream {} differs", ids[i]);
    }
    bridge.finish();
    eprintln!(
        "{}: {STREAMS} streams x {BYTES_EACH_WAY} bytes each way in {} ms",
        python.display(),
        start.elapsed().as_millis()
    );
}

#[test]
fn three_streams_cross_the_real_bridge_both_ways_byte_for_byte() {
    for python in pythons() {
        streams_through_the_bridge(&python);
    }
}

#[test]
fn the_core_embeds_the_bridge_it_tests() {
    let on_disk = std::fs::read_to_string(bridge_py()).unwrap();
    assert_eq!(aistudio_ssh::render::BRIDGE_PY, on_disk);
}
