//! The container bridge (`crate/src/scripts/bridge.py`) run for real against the Rust
//! endpoint: the other end of the stream protocol's contract, under python3 and, where this
//! machine has one, python3.7 (the oldest Python AI Studio images carry). Also the cell that
//! starts it (`render_bridge`), and the whole container path through real Jupyter servers:
//! the attach client (`render_attach`) in a kernel of each JupyterLab venv the simulator
//! uses, fed over kernel WebSockets by `jupyter_carrier.py` (the extension's stand-in).
#![cfg(not(target_arch = "wasm32"))]
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
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
    echo_server_counted().0
}

/// The same, with how many of its connections are open.
fn echo_server_counted() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, open)
}

/// One link to the bridge: bytes to it through a channel (a thread writes them), bytes from
/// it on another; dropping it closes the link.
struct Link {
    to: Option<Sender<Vec<u8>>>,
    from: Receiver<Vec<u8>>,
    cut: Option<UnixStream>,
    /// The link's own: a frame split across reads stays buffered between two waits.
    decoder: Decoder,
}

impl Link {
    fn new(
        mut reader: impl Read + Send + 'static,
        mut writer: impl Write + Send + 'static,
    ) -> Self {
        let (to, to_rx) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            for bytes in to_rx {
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        let (from_tx, from) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0; 256 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || from_tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Self {
            to: Some(to),
            from,
            cut: None,
            decoder: Decoder::new(),
        }
    }

    /// Waits up to `wait_ms` for bytes from the bridge and hands `ep` every whole frame;
    /// with none, lets `ep`'s timers run. `what` says what was going on if the bridge left.
    fn receive(
        &mut self,
        ep: &mut Endpoint,
        start: Instant,
        wait_ms: u64,
        what: &dyn Fn() -> String,
    ) {
        match self.from.recv_timeout(Duration::from_millis(wait_ms)) {
            Ok(bytes) => {
                self.decoder.push(&bytes);
                while let Some(frame) = self.decoder.next_frame().unwrap() {
                    ep.handle(frame, elapsed_ms(start));
                }
            }
            Err(RecvTimeoutError::Timeout) => ep.handle_timeout(elapsed_ms(start)),
            Err(RecvTimeoutError::Disconnected) => panic!("the bridge closed the link{}", what()),
        }
    }

    /// A new connection to a bridge's `--listen` socket, which it waits for.
    fn unix(path: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the bridge listens on {}: {e}", path.display()),
            }
        };
        let mut link = Self::new(stream.try_clone().unwrap(), stream.try_clone().unwrap());
        link.cut = Some(stream);
        link
    }

    fn send(&self, bytes: Vec<u8>) {
        // A link cut under a write is what the test is about; the endpoint resends.
        let _ = self.to.as_ref().unwrap().send(bytes);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        drop(self.to.take());
        if let Some(stream) = &self.cut {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The bridge as a child process; killed when dropped.
struct Bridge {
    child: Child,
}

impl Bridge {
    /// Its link on stdin/stdout.
    fn stdio(python: &Path, sshd_port: u16) -> (Self, Link) {
        let mut child = Self::command(python, sshd_port)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", python.display()));
        let link = Link::new(child.stdout.take().unwrap(), child.stdin.take().unwrap());
        (Self { child }, link)
    }

    /// Listening for links on a Unix socket.
    fn listening(python: &Path, sshd_port: u16, socket: &Path, extra: &[&str]) -> Self {
        let child = Self::command(python, sshd_port)
            .arg("--listen")
            .arg(socket)
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", python.display()));
        Self { child }
    }

    /// Waits until it listens on `socket`.
    fn listens(self, socket: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::metadata(socket).is_ok_and(|meta| meta.file_type().is_socket()) {
            assert!(Instant::now() < deadline, "the bridge does not listen");
            thread::sleep(Duration::from_millis(20));
        }
        self
    }

    fn command(python: &Path, sshd_port: u16) -> Command {
        let mut command = Command::new(python);
        command
            .arg(bridge_py())
            .args(["--sshd-port", &sshd_port.to_string()])
            .stderr(Stdio::inherit());
        command
    }

    /// Waits for it to exit on its own, its link closed.
    fn finish(mut self) {
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
fn flush(ep: &mut Endpoint, link: &Link, now: u64) {
    let mut out = Vec::new();
    while let Some(frame) = ep.poll_transmit(now) {
        frame.encode(&mut out).unwrap();
    }
    if !out.is_empty() {
        link.send(out);
    }
}

/// Moves [`STREAMS`] streams of random bytes through the bridge to an echo server and back,
/// cutting the link `cuts` times along the way (each time `connect` makes the next one);
/// returns the link when every stream has finished with exactly the bytes it sent. `seed`
/// makes the link id and the bytes.
fn echo_through(seed: u64, mut link: Link, cuts: usize, mut connect: impl FnMut() -> Link) -> Link {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut link_id = [0; 16];
    rng.fill_bytes(&mut link_id);
    let mut ep = Endpoint::initiator(LinkId(link_id), Config::default(), 0);
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
    let mut links_up = 0;
    let mut cuts_done = 0;
    let cut_every = STREAMS * BYTES_EACH_WAY / (cuts + 1);

    while !finished.iter().all(|&f| f) {
        let progress: Vec<usize> = received.iter().map(Vec::len).collect();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stalled: {progress:?}"
        );
        let now = elapsed_ms(start);
        if cuts_done < cuts && progress.iter().sum::<usize>() >= cut_every * (cuts_done + 1) {
            // The link drops mid-transfer: frames in flight either way are lost.
            cuts_done += 1;
            ep.link_lost(now);
            drop(link);
            link = connect();
            ep.link_up(now);
        }
        for (i, &id) in ids.iter().enumerate() {
            if written[i] < BYTES_EACH_WAY {
                written[i] += ep.write(id, &sent[i][written[i]..]).unwrap();
                if written[i] == BYTES_EACH_WAY {
                    ep.close(id).unwrap();
                }
            }
        }
        flush(&mut ep, &link, now);
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
                Event::LinkUp => links_up += 1,
                Event::Reset { .. } | Event::LinkFailed { .. } | Event::LinkSilent => {
                    panic!("{event:?}")
                }
                Event::LinkTimedOut | Event::StreamOpened { .. } | Event::Writable { .. } => {}
            }
        }
        let wait = ep
            .poll_timeout()
            .map_or(5, |at| at.saturating_sub(now).clamp(1, 5));
        link.receive(&mut ep, start, wait, &String::new);
    }
    for i in 0..STREAMS {
        assert!(received[i] == sent[i], "stream {} differs", ids[i]);
    }
    assert_eq!((cuts_done, links_up), (cuts, cuts + 1));
    eprintln!(
        "{STREAMS} streams x {BYTES_EACH_WAY} bytes each way, {cuts} link cuts: {} ms",
        start.elapsed().as_millis()
    );
    link
}

#[test]
fn three_streams_cross_the_real_bridge_both_ways_byte_for_byte() {
    for python in pythons() {
        let (bridge, link) = Bridge::stdio(&python, echo_server());
        eprint!("{}: ", python.display());
        let link = echo_through(14, link, 0, || unreachable!());
        drop(link);
        bridge.finish();
    }
}

#[test]
fn streams_resume_on_the_real_bridge_after_the_link_is_cut() {
    for python in pythons() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bridge.sock");
        let _bridge = Bridge::listening(&python, echo_server(), &socket, &[]);
        eprint!("{}: ", python.display());
        echo_through(14, Link::unix(&socket), 5, || Link::unix(&socket));
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the socket is for its user only");
    }
}

#[test]
fn two_links_share_one_bridge_each_resuming_its_own_streams() {
    for python in pythons() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bridge.sock");
        let _bridge = Bridge::listening(&python, echo_server(), &socket, &[]);
        eprintln!("{}: two links at once", python.display());
        // Two tabs' links through one bridge at once, each cut now and then: every new
        // connection's Hello finds its own link's streams.
        thread::scope(|scope| {
            for (seed, cuts) in [(21, 3), (22, 4)] {
                let socket = &socket;
                scope.spawn(move || {
                    echo_through(seed, Link::unix(socket), cuts, || Link::unix(socket));
                });
            }
        });
    }
}

#[test]
fn a_newer_connection_for_a_link_replaces_the_older_one() {
    for python in pythons() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bridge.sock");
        let (port, open) = echo_server_counted();
        let _bridge = Bridge::listening(&python, port, &socket, &[]);
        let start = Instant::now();
        let mut ep = Endpoint::initiator(LinkId([3; 16]), Config::default(), 0);
        ep.link_up(0);
        let mut old = Link::unix(&socket);
        let id = ep.open_stream(TARGET_SSH);
        echo_once(&mut ep, &mut old, start, id, b"first");

        // The page reloads: a new connection comes while the old one still looks open.
        ep.link_lost(elapsed_ms(start));
        let mut new = Link::unix(&socket);
        ep.link_up(elapsed_ms(start));
        echo_once(&mut ep, &mut new, start, id, b"second");
        assert_eq!(open.load(Ordering::SeqCst), 1, "the same sshd connection");
        // The bridge closed the old connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match old.from.recv_timeout(Duration::from_millis(50)) {
                Err(RecvTimeoutError::Disconnected) => break,
                _ => assert!(Instant::now() < deadline, "the old link stays open"),
            }
        }

        // Another link id meanwhile gets streams of its own, not this link's.
        let mut other = Endpoint::initiator(LinkId([4; 16]), Config::default(), 0);
        other.link_up(0);
        let mut third = Link::unix(&socket);
        let other_id = other.open_stream(TARGET_SSH);
        assert_eq!(other_id, id, "both links number their streams alike");
        echo_once(&mut other, &mut third, start, other_id, b"other");
        assert_eq!(open.load(Ordering::SeqCst), 2);
        echo_once(&mut ep, &mut new, start, id, b"third");
    }
}

/// Runs the endpoint over `link` until `done` says so; `done` sees each event, and `None`
/// once per turn. Returns the events seen.
fn pump_until(
    ep: &mut Endpoint,
    link: &mut Link,
    start: Instant,
    mut done: impl FnMut(&mut Endpoint, Option<&Event>) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited in vain: {seen:?}"
        );
        let now = elapsed_ms(start);
        flush(ep, link, now);
        while let Some(event) = ep.poll_event() {
            let stop = done(ep, Some(&event));
            seen.push(event);
            if stop {
                return seen;
            }
        }
        if done(ep, None) {
            return seen;
        }
        link.receive(ep, start, 5, &|| format!(": {seen:?}"));
    }
}

/// Writes `bytes` and waits for their echo.
fn echo_once(ep: &mut Endpoint, link: &mut Link, start: Instant, id: StreamId, bytes: &[u8]) {
    ep.write(id, bytes).unwrap();
    let mut got = Vec::new();
    pump_until(ep, link, start, |ep, _| {
        ep.read(id, &mut got).unwrap();
        got.len() >= bytes.len()
    });
    assert_eq!(got, bytes);
}

fn reset_code(events: &[Event], id: StreamId) -> Option<ResetCode> {
    events.iter().find_map(|event| match event {
        Event::Reset { stream, code, .. } if *stream == id => Some(*code),
        _ => None,
    })
}

#[test]
fn the_bridge_refuses_other_targets_and_an_absent_sshd() {
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for python in pythons() {
        let (bridge, mut link) = Bridge::stdio(&python, closed);
        let start = Instant::now();
        let mut ep = Endpoint::initiator(LinkId([1; 16]), Config::default(), 0);
        ep.link_up(0);
        let ssh = ep.open_stream(TARGET_SSH);
        let http = ep.open_stream("http");
        let mut resets = 0;
        let events = pump_until(&mut ep, &mut link, start, |_, event| {
            resets += usize::from(matches!(event, Some(Event::Reset { .. })));
            resets == 2
        });
        assert_eq!(
            reset_code(&events, ssh),
            Some(ResetCode::REFUSED),
            "{events:?}"
        );
        assert_eq!(
            reset_code(&events, http),
            Some(ResetCode::REFUSED),
            "{events:?}"
        );
        drop(link);
        bridge.finish();
    }
}

#[test]
fn the_bridge_answers_pings_and_ends_streams_after_the_grace_period() {
    for python in pythons() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bridge.sock");
        let (port, open) = echo_server_counted();
        let _bridge = Bridge::listening(&python, port, &socket, &["--grace-ms", "400"]);
        let start = Instant::now();
        let config = Config {
            ping_interval_ms: 30,
            ..Config::default()
        };
        let mut ep = Endpoint::initiator(LinkId([2; 16]), config, 0);
        ep.link_up(0);
        let mut link = Link::unix(&socket);
        let id = ep.open_stream(TARGET_SSH);
        echo_once(&mut ep, &mut link, start, id, b"hello");
        pump_until(&mut ep, &mut link, start, |ep, _| ep.rtt_ms().is_some());

        // A cut shorter than the grace period: the stream goes on.
        ep.link_lost(elapsed_ms(start));
        drop(link);
        let mut link = Link::unix(&socket);
        ep.link_up(elapsed_ms(start));
        echo_once(&mut ep, &mut link, start, id, b"again");
        assert_eq!(open.load(Ordering::SeqCst), 1);

        // A longer one: the bridge drops the stream and its sshd connection.
        ep.link_lost(elapsed_ms(start));
        drop(link);
        let cut = Instant::now();
        while open.load(Ordering::SeqCst) > 0 {
            assert!(
                cut.elapsed() < Duration::from_secs(5),
                "sshd connection stays open"
            );
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            cut.elapsed() >= Duration::from_millis(300),
            "not before the grace period"
        );
        let mut link = Link::unix(&socket);
        ep.link_up(elapsed_ms(start));
        let events = pump_until(&mut ep, &mut link, start, |_, event| {
            matches!(event, Some(Event::Reset { .. }))
        });
        let code = reset_code(&events, id);
        assert!(
            code == Some(ResetCode::GONE) || code == Some(ResetCode::LINK_TIMEOUT),
            "{events:?}"
        );
    }
}

/// Runs the rendered bridge cell (its state directory moved to `state`) with `args`.
fn bridge_cell(cell: &Path, state: &Path, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(cell)
        .args(args)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bridge.sh {args:?}: {text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(state.join("bridge.log")).unwrap_or_default()
    );
    text
}

#[test]
fn the_bridge_cell_starts_one_supervised_bridge_and_stops_it() {
    use aistudio_ssh::render::{self, BRIDGE_SOCKET};
    use aistudio_ssh::settings::SettingsInput;
    let (port, open) = echo_server_counted();
    let settings = SettingsInput::from_json(&format!(
        r#"{{"project": "7892508", "containerSshdPort": {port}, "relay": {{"host": "relay.example.com",
          "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm relay"}}}}"#
    ))
    .unwrap()
    .validate()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_dir = Path::new(BRIDGE_SOCKET).parent().unwrap().to_str().unwrap();
    let cell = render::render_bridge(&settings).replace(
        &format!("\nstate_dir='{state_dir}'\n"),
        &format!("\nstate_dir='{}'\n", state.display()),
    );
    let path = dir.path().join("bridge.sh");
    std::fs::write(&path, cell).unwrap();
    let socket = state.join("bridge.sock");
    let stop = || bridge_cell(&path, &state, &["stop"]);

    let started = bridge_cell(&path, &state, &[]);
    let result = std::panic::catch_unwind(|| {
        assert!(started.contains("state=up"), "{started}");
        let again = bridge_cell(&path, &state, &[]);
        assert!(again.contains("bridge already running"), "{again}");
        assert!(!again.contains("older version"), "{again}");
        // Another version runs: it is named, not replaced.
        let program = state.join("bridge.py");
        let mut older = std::fs::read_to_string(&program).unwrap();
        older.push_str("# older\n");
        std::fs::write(&program, &older).unwrap();
        let again = bridge_cell(&path, &state, &[]);
        assert!(again.contains("an older version"), "{again}");
        assert_eq!(std::fs::read_to_string(&program).unwrap(), older);
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        let start = Instant::now();
        let mut ep = Endpoint::initiator(LinkId([5; 16]), Config::default(), 0);
        ep.link_up(0);
        let mut link = Link::unix(&socket);
        let id = ep.open_stream(TARGET_SSH);
        echo_once(&mut ep, &mut link, start, id, b"through the cell's bridge");
        assert_eq!(open.load(Ordering::SeqCst), 1);

        // bridge.py dies: the supervisor starts it again (its streams are gone with it).
        // Only the supervisor's own child is killed (-P).
        let pid = std::fs::read_to_string(state.join("bridge.pid")).unwrap();
        assert!(Command::new("pkill")
            .args(["-KILL", "-P", pid.trim(), "-f", "bridge.py"])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = bridge_cell(&path, &state, &["status"]);
            // A socket that takes a connection is a new bridge's (the old one's is refused).
            if status.contains("state=up") && UnixStream::connect(&socket).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "not restarted: {status}");
            thread::sleep(Duration::from_millis(100));
        }
        let mut ep = Endpoint::initiator(LinkId([6; 16]), Config::default(), 0);
        ep.link_up(elapsed_ms(start));
        let mut link = Link::unix(&socket);
        let id = ep.open_stream(TARGET_SSH);
        echo_once(&mut ep, &mut link, start, id, b"after a restart");

        let stopped = stop();
        assert!(stopped.contains("bridge stopped"), "{stopped}");
        let status = bridge_cell(&path, &state, &["status"]);
        assert!(status.contains("state=stopped"), "{status}");
        assert!(!socket.exists(), "the socket stays after stop");
    });
    if result.is_err() {
        stop();
    }
    result.unwrap();
}

#[test]
fn the_core_embeds_the_bridge_it_tests() {
    let on_disk = std::fs::read_to_string(bridge_py()).unwrap();
    assert_eq!(aistudio_ssh::render::BRIDGE_PY, on_disk);
}

/// The JupyterLab venvs the simulator runs (`npm test` makes them before the cargo tests;
/// `AISTUDIO_SSH_CACHE`, else `/var/cache/aistudio-ssh` as root, else
/// `~/.cache/aistudio-ssh`, as project.mjs says).
fn jupyter_venvs() -> Vec<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    let caches: Vec<PathBuf> = match std::env::var_os("AISTUDIO_SSH_CACHE") {
        Some(dir) => vec![dir.into()],
        None => vec![
            "/var/cache/aistudio-ssh".into(),
            std::env::var_os("XDG_CACHE_HOME")
                .map_or_else(|| Path::new(&home).join(".cache"), PathBuf::from)
                .join("aistudio-ssh"),
        ],
    };
    for cache in caches {
        let Ok(entries) = std::fs::read_dir(&cache) else {
            continue;
        };
        let mut venvs: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("venv-jupyterlab-"))
                    && path.join("bin/jupyter").exists()
            })
            .collect();
        venvs.sort();
        if !venvs.is_empty() {
            return venvs;
        }
    }
    venvs_missing();
    Vec::new()
}

fn venvs_missing() {
    eprintln!(
        "skipped: no JupyterLab venvs (venv-jupyterlab-*) in AISTUDIO_SSH_CACHE, \
         /var/cache/aistudio-ssh or ~/.cache/aistudio-ssh; `npm test` makes them"
    );
}

/// A Python whose own ipykernel runs the kernels instead of the venv's (to try ipykernel 4
/// or 5 on Python 3.7 by hand; `AISTUDIO_SSH_CACHE` may name a folder of other
/// `venv-jupyterlab-*` venvs, such as jupyter_server 1.24).
const KERNEL_PYTHON: &str = "AISTUDIO_SSH_KERNEL_PYTHON";

/// `crate/tests/jupyter_carrier.py` in a venv: a Jupyter server with a kernel running the
/// attach client, and a Unix socket whose every connection is a leg through a new kernel
/// WebSocket and a new comm. Stopped (its server with it) when dropped.
struct Carrier {
    child: Child,
    socket: PathBuf,
    /// What the attach code printed, run twice.
    printed: String,
}

impl Carrier {
    fn start(venv: &Path, work: &Path, bridge_socket: &Path, rerun_every: u32) -> Self {
        let attach = work.join("attach.py");
        let default_line = format!(
            "bridge_socket = {}\n",
            serde_json::to_string(aistudio_ssh::render::BRIDGE_SOCKET).unwrap()
        );
        let rendered = aistudio_ssh::render::render_attach();
        assert_eq!(rendered.matches(&default_line).count(), 1);
        let code = rendered.replace(
            &default_line,
            &format!(
                "bridge_socket = {}\n",
                serde_json::to_string(bridge_socket.to_str().unwrap()).unwrap()
            ),
        );
        std::fs::write(&attach, code).unwrap();
        let socket = work.join("carrier.sock");
        let mut child = Command::new(venv.join("bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jupyter_carrier.py"))
            .arg("--venv")
            .arg(venv)
            .arg("--work")
            .arg(work)
            .arg("--attach")
            .arg(&attach)
            .args(["--target", aistudio_ssh::render::ATTACH_COMM_TARGET])
            .arg("--listen")
            .arg(&socket)
            .args(["--rerun-every", &rerun_every.to_string()])
            .args(
                std::env::var_os(KERNEL_PYTHON)
                    .map(|python| vec!["--kernel-python".into(), python])
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let printed = line
            .strip_prefix("ready ")
            .map(|json| serde_json::from_str::<String>(json.trim()).unwrap());
        let Some(printed) = printed else {
            let log = std::fs::read_to_string(work.join("jupyter.log")).unwrap_or_default();
            panic!("the carrier did not start: {line:?}\n{log}");
        };
        Self {
            child,
            socket,
            printed,
        }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        // Its stdin closing stops it and its Jupyter server.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
    }
}

/// sshd's stand-in for measuring: a connection's first 9 bytes are `u` or `d` and a length
/// n (u64, little-endian). `u`: it reads n bytes, then answers n (8 bytes). `d`: it sends n
/// bytes. Then it closes.
fn one_way_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut header = [0; 9];
                conn.read_exact(&mut header).unwrap();
                let n = u64::from_le_bytes(header[1..].try_into().unwrap());
                let mut buf = vec![0x5a; 256 * 1024];
                let mut done = 0;
                while done < n {
                    let want = buf.len().min((n - done) as usize);
                    done += match header[0] {
                        b'u' => conn.read(&mut buf[..want]).unwrap() as u64,
                        _ => {
                            conn.write_all(&buf[..want]).unwrap();
                            want as u64
                        }
                    };
                }
                if header[0] == b'u' {
                    conn.write_all(&n.to_le_bytes()).unwrap();
                }
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// Moves `n` bytes one way through `link` (`upload`: to the server) and returns MB/s.
fn one_way(ep: &mut Endpoint, link: &mut Link, upload: bool, n: usize) -> f64 {
    let start = Instant::now();
    let id = ep.open_stream(TARGET_SSH);
    let mut header = vec![if upload { b'u' } else { b'd' }];
    header.extend((n as u64).to_le_bytes());
    assert_eq!(ep.write(id, &header).unwrap(), header.len());
    let chunk = vec![0xa5; 256 * 1024];
    let (mut written, mut received) = (0, 0);
    let wanted = if upload { 8 } else { n };
    pump_until(ep, link, start, |ep, _| {
        while upload && written < n {
            let k = ep
                .write(id, &chunk[..chunk.len().min(n - written)])
                .unwrap();
            if k == 0 {
                break;
            }
            written += k;
        }
        let mut got = Vec::new();
        let _ = ep.read(id, &mut got);
        received += got.len();
        received >= wanted
    });
    n as f64 / start.elapsed().as_secs_f64() / 1e6
}

#[test]
fn links_resume_through_the_attach_client_in_real_jupyter_servers() {
    let venvs = jupyter_venvs();
    for venv in venvs {
        let name = venv.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        let bridge_socket = dir.path().join("bridge.sock");
        let python = PathBuf::from("python3");
        let _bridge =
            Bridge::listening(&python, echo_server(), &bridge_socket, &[]).listens(&bridge_socket);
        let carrier = Carrier::start(&venv, dir.path(), &bridge_socket, 2);
        let line = format!(
            "aistudio-ssh: attach client ready on comm target {} (bridge at {})",
            aistudio_ssh::render::ATTACH_COMM_TARGET,
            bridge_socket.display()
        );
        assert_eq!(
            carrier.printed.lines().collect::<Vec<_>>(),
            [line.as_str(), line.as_str()],
            "{name}"
        );
        eprint!("{name}: ");
        // Every leg a new WebSocket and comm (every second one after the attach code ran
        // again): the bytes of each stream arrive once and in order.
        echo_through(31, Link::unix(&carrier.socket), 4, || {
            Link::unix(&carrier.socket)
        });
    }
}

/// Waits for the carrier to end the connection `link` (the kernel closed its comm) and
/// returns the last comm close's data.
fn comm_closed(link: Link, work: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match link.from.recv_timeout(Duration::from_millis(50)) {
            Err(RecvTimeoutError::Disconnected) => break,
            _ => assert!(Instant::now() < deadline, "the comm stays open"),
        }
    }
    let closes = std::fs::read_to_string(work.join("comm-closes.jsonl")).unwrap();
    serde_json::from_str(closes.lines().last().unwrap()).unwrap()
}

#[test]
fn the_attach_client_closes_the_comm_saying_why() {
    let Some(venv) = jupyter_venvs().pop() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bridge_socket = dir.path().join("bridge.sock");
    // The attach client runs before any bridge: it says so, and waits for one.
    std::fs::write(&bridge_socket, "").unwrap();
    let carrier = Carrier::start(&venv, dir.path(), &bridge_socket, 0);
    assert!(
        carrier.printed.contains("bridge.sock is not a socket"),
        "{}",
        carrier.printed
    );
    std::fs::remove_file(&bridge_socket).unwrap();
    let error = comm_closed(Link::unix(&carrier.socket), dir.path());
    let reason = error["error"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "cannot reach the bridge at {}: ",
            bridge_socket.display()
        )),
        "{error}"
    );

    // A bridge now: the next comm reaches it.
    let bridge = Bridge::listening(Path::new("python3"), echo_server(), &bridge_socket, &[])
        .listens(&bridge_socket);
    let start = Instant::now();
    let mut ep = Endpoint::initiator(LinkId([8; 16]), Config::default(), 0);
    ep.link_up(0);
    let mut link = Link::unix(&carrier.socket);
    let id = ep.open_stream(TARGET_SSH);
    echo_once(&mut ep, &mut link, start, id, b"the bridge came");

    // The bridge goes: the kernel closes the comm.
    drop(bridge);
    assert_eq!(
        comm_closed(link, dir.path()),
        serde_json::json!({"error": "bridge closed"})
    );
}

#[test]
fn the_comm_carries_64_mib_each_way_through_real_jupyter_servers() {
    const N: usize = 64 * 1024 * 1024;
    for venv in jupyter_venvs() {
        let name = venv.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        let bridge_socket = dir.path().join("bridge.sock");
        let _bridge =
            Bridge::listening(Path::new("python3"), one_way_server(), &bridge_socket, &[])
                .listens(&bridge_socket);
        let carrier = Carrier::start(&venv, dir.path(), &bridge_socket, 0);
        let mut ep = Endpoint::initiator(LinkId([7; 16]), Config::default(), 0);
        ep.link_up(0);
        let mut link = Link::unix(&carrier.socket);
        let up = one_way(&mut ep, &mut link, true, N);
        let down = one_way(&mut ep, &mut link, false, N);
        eprintln!(
            "{name}: 64 MiB through the comm: to the container {up:.1} MB/s, \
             from it {down:.1} MB/s"
        );
    }
}
