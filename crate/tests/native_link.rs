//! Direct mode from `ssh`'s `ProxyCommand` to sshd, every program real except the browser:
//! the built `aistudio-ssh native-host` and `aistudio-ssh proxy`, `bridge.py` under python3,
//! and a TCP echo server standing in for sshd. The test plays the extension: it answers
//! `want`, and carries `bytes` between the host's stdio and the bridge.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aistudio_ssh::native_host::{lane, read_message, write_message};
use base64ct::{Base64, Encoding};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::{Message, WebSocket};

const BINARY: &str = env!("CARGO_BIN_EXE_aistudio-ssh");
const PROJECT: &str = "7892508";
const SIZE: usize = 8 * 1024 * 1024;

fn bridge_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/bridge.py")
}

/// sshd's stand-in: echoes every byte, half-closes after its peer does.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// A child killed and reaped when dropped, whatever the test did.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One path from the extension to the bridge.
struct Carrier {
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
    /// Cut both ways when the carrier is dropped.
    socket: Option<UnixStream>,
    /// A stdio bridge, which lives as long as its one link.
    _child: Option<Reaped>,
}

impl Drop for Carrier {
    fn drop(&mut self) {
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// A bridge of its own per link, on stdin/stdout.
fn stdio_bridge(sshd_port: u16) -> impl FnMut() -> Carrier + Send {
    move || {
        let mut child = Command::new("python3")
            .arg(bridge_py())
            .args(["--sshd-port", &sshd_port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        Carrier {
            reader: Box::new(child.stdout.take().unwrap()),
            writer: Box::new(child.stdin.take().unwrap()),
            socket: None,
            _child: Some(Reaped(child)),
        }
    }
}

/// The bridge listening on `socket`, in front of an echo server: it outlives its links.
fn listening_bridge(socket: &Path) -> Reaped {
    Reaped(
        Command::new("python3")
            .arg(bridge_py())
            .args(["--sshd-port", &echo_server().to_string()])
            .arg("--listen")
            .arg(socket)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 runs"),
    )
}

/// Links to one bridge listening on a Unix socket: each connection resumes the last.
fn socket_bridge(path: PathBuf) -> impl FnMut() -> Carrier + Send {
    move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let socket = loop {
            match UnixStream::connect(&path) {
                Ok(socket) => break socket,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("the bridge listens on {}: {e}", path.display()),
            }
        };
        Carrier {
            reader: Box::new(socket.try_clone().unwrap()),
            writer: Box::new(socket.try_clone().unwrap()),
            socket: Some(socket),
            _child: None,
        }
    }
}

/// How the test's extension answers `want`.
enum Answer {
    Link(Box<dyn FnMut() -> Carrier + Send>),
    NoLink(String),
}

/// The host's stdin and which carrier may write to it: an old carrier's reader stops the
/// moment the link is taken down.
struct HostInput {
    /// `None` once the browser is gone.
    stdin: Option<ChildStdin>,
    generation: u64,
}

impl HostInput {
    fn send(&mut self, message: Value) {
        if let Some(stdin) = &mut self.stdin {
            // The host gone is for the test to notice, not this writer.
            let _ = write_message(stdin, &message);
        }
    }
}

enum ExtensionInput {
    FromHost(Value),
    Cut,
}

/// What the test's extension saw.
#[derive(Default)]
struct Seen {
    hellos: usize,
    wants: usize,
    drops: usize,
    statuses: Vec<Value>,
    /// Host messages of a link already taken down, not forwarded.
    stale: usize,
    /// The lane's address from the last `hello`.
    lane: Option<String>,
}

/// The host process and the test's extension driving it.
struct Host {
    child: Reaped,
    input: Arc<Mutex<HostInput>>,
    to_extension: Sender<ExtensionInput>,
    seen: Arc<Mutex<Seen>>,
    extension: thread::JoinHandle<()>,
    /// Shared by hosts that compete for one socket.
    runtime: Arc<tempfile::TempDir>,
}

impl Host {
    fn start(answer: Answer) -> Self {
        Self::start_in(answer, Arc::new(tempfile::tempdir().unwrap()))
    }

    fn start_in(answer: Answer, runtime: Arc<tempfile::TempDir>) -> Self {
        // A process group of its own, as some browsers start hosts: see `kill_group`.
        let mut child = Command::new(BINARY)
            .arg("native-host")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let input = Arc::new(Mutex::new(HostInput {
            stdin: child.stdin.take(),
            generation: 0,
        }));
        let (to_extension, from) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let forward = to_extension.clone();
        thread::spawn(move || read_host(stdout, forward));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (input2, seen2) = (input.clone(), seen.clone());
        let extension = thread::spawn(move || extension(from, input2, answer, seen2));
        let host = Self {
            child: Reaped(child),
            input,
            to_extension,
            seen,
            extension,
            runtime,
        };
        // Its hello answered: its socket is there (it listens before it reads stdin).
        host.input.lock().unwrap().send(json!({"kind": "hello"}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while host.seen.lock().unwrap().hellos == 0 {
            assert!(Instant::now() < deadline, "the host answers hello");
            thread::sleep(Duration::from_millis(10));
        }
        host
    }

    /// The keeper's pid, from the file it writes next to its socket.
    fn keeper_pid(&self) -> u32 {
        let file = self.runtime.path().join("aistudio-ssh/keeper.pid");
        std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The browser goes away: the host (the pipe) ends; the test's extension ends with it,
    /// and its bridge process with that. The keeper stays while proxies need it.
    fn close(mut self) {
        {
            let mut input = self.input.lock().unwrap();
            input.generation = u64::MAX;
            input.stdin = None;
        }
        let status = wait_exit(&mut self.child.0, Duration::from_secs(5));
        assert!(status.success(), "{status}");
        drop(self.to_extension);
        self.extension.join().unwrap();
    }
}

/// The keeper leaves by itself once no extension and no proxy needs it, and takes its
/// socket and pid file with it.
fn keeper_leaves(runtime: &Path, pid: u32) {
    let folder = runtime.join("aistudio-ssh");
    let deadline = Instant::now() + Duration::from_secs(5);
    // A zombie until someone reaps it: gone is "not running".
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    while running() || folder.join("helper.sock").exists() || folder.join("keeper.pid").exists() {
        assert!(Instant::now() < deadline, "the keeper leaves within 5 s");
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "exits within {limit:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn read_host(mut stdout: ChildStdout, to: Sender<ExtensionInput>) {
    while let Ok(Some(message)) = read_message(&mut stdout) {
        if to.send(ExtensionInput::FromHost(message)).is_err() {
            return;
        }
    }
}

/// The test's extension: answers `want`, carries `bytes`, remakes the link on `drop` or
/// when the test cuts it.
fn extension(
    from: mpsc::Receiver<ExtensionInput>,
    input: Arc<Mutex<HostInput>>,
    mut answer: Answer,
    seen: Arc<Mutex<Seen>>,
) {
    let mut carrier: Option<Carrier> = None;
    // After a linkUp, the host's messages of the old link may still be on their way: each
    // names the linkUp it follows.
    let open = |carrier: &mut Option<Carrier>, connect: &mut Box<dyn FnMut() -> Carrier + Send>| {
        drop(carrier.take());
        let mut next = connect();
        let mut reader = std::mem::replace(&mut next.reader, Box::new(std::io::empty()));
        let generation = {
            let mut host = input.lock().unwrap();
            host.generation += 1;
            let generation = host.generation;
            host.send(json!({"kind": "linkUp", "project": PROJECT, "link": generation}));
            generation
        };
        let input = input.clone();
        thread::spawn(move || {
            let mut buf = vec![0; 100_000];
            while let Ok(n) = reader.read(&mut buf) {
                let mut host = input.lock().unwrap();
                if n == 0 || host.generation != generation {
                    return;
                }
                // Any split: here whatever one read gave.
                let data = Base64::encode_string(&buf[..n]);
                host.send(json!({"kind": "bytes", "project": PROJECT, "data": data}));
            }
        });
        *carrier = Some(next);
    };
    for message in from {
        let message = match message {
            ExtensionInput::FromHost(message) => message,
            ExtensionInput::Cut => {
                let Answer::Link(connect) = &mut answer else {
                    continue;
                };
                if carrier.is_none() {
                    continue;
                }
                {
                    let mut host = input.lock().unwrap();
                    host.generation += 1;
                    host.send(json!({"kind": "linkDown", "project": PROJECT, "reason": "cut by the test"}));
                }
                open(&mut carrier, connect);
                continue;
            }
        };
        if message["kind"] == "hello" {
            let mut seen = seen.lock().unwrap();
            seen.hellos += 1;
            seen.lane = message["lane"].as_str().map(str::to_owned);
            continue;
        }
        assert_eq!(message["project"], PROJECT, "{message}");
        match message["kind"].as_str().unwrap() {
            "want" => {
                seen.lock().unwrap().wants += 1;
                match &mut answer {
                    Answer::NoLink(reason) => input
                        .lock()
                        .unwrap()
                        .send(json!({"kind": "noLink", "project": PROJECT, "reason": reason})),
                    Answer::Link(connect) => {
                        if carrier.is_none() {
                            open(&mut carrier, connect);
                        }
                    }
                }
            }
            "bytes" => {
                let bytes = Base64::decode_vec(message["data"].as_str().unwrap()).unwrap();
                if message["link"] != input.lock().unwrap().generation {
                    seen.lock().unwrap().stale += 1;
                    continue;
                }
                if let Some(carrier) = &mut carrier {
                    // A carrier cut under this write is what the drop test is about.
                    let _ = carrier.writer.write_all(&bytes);
                }
            }
            "drop" => {
                seen.lock().unwrap().drops += 1;
                let Answer::Link(connect) = &mut answer else {
                    continue;
                };
                {
                    let mut host = input.lock().unwrap();
                    host.generation += 1;
                    let reason = message["reason"].clone();
                    host.send(json!({"kind": "linkDown", "project": PROJECT, "reason": reason}));
                }
                open(&mut carrier, connect);
            }
            "status" => seen.lock().unwrap().statuses.push(message),
            other => panic!("the host sent {other}: {message}"),
        }
    }
}

fn proxy(runtime: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(["proxy", &format!("aistudio-{PROJECT}")])
        .env("XDG_RUNTIME_DIR", runtime);
    command
}

/// Pushes `size` random bytes through `aistudio-ssh proxy` and checks the echo; `progress`
/// counts what came back. Returns the time it took.
fn echo_through_proxy(runtime: &Path, size: usize, progress: Arc<AtomicUsize>) -> Duration {
    let mut sent = vec![0; size];
    ChaCha8Rng::seed_from_u64(size as u64).fill_bytes(&mut sent);
    let start = Instant::now();
    let mut child = Reaped(
        proxy(runtime)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let to_send = sent.clone();
    thread::spawn(move || {
        let _ = stdin.write_all(&to_send);
        // Dropped: ssh's stdin ends.
    });
    let mut stdout = child.0.stdout.take().unwrap();
    let (done, received) = mpsc::channel();
    thread::spawn(move || {
        let mut got = Vec::with_capacity(size);
        let mut buf = vec![0; 256 * 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            progress.store(got.len(), Ordering::SeqCst);
        }
        let _ = done.send(got);
    });
    let got = received
        .recv_timeout(Duration::from_secs(60))
        .expect("the echo comes back within 60 s");
    let took = start.elapsed();
    assert_eq!(got.len(), size);
    assert!(got == sent, "the echo differs from what was sent");
    let status = wait_exit(&mut child.0, Duration::from_secs(5));
    assert!(status.success(), "{status}");
    took
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

#[test]
fn eight_mib_cross_proxy_host_and_bridge_and_come_back_equal() {
    let host = Host::start(Answer::Link(Box::new(stdio_bridge(echo_server()))));
    let took = echo_through_proxy(host.runtime.path(), SIZE, Arc::default());
    eprintln!(
        "8 MiB each way through proxy -> host -> bridge -> echo: {} ms, {:.1} MB/s each way",
        took.as_millis(),
        mb_per_s(SIZE, took)
    );
    // A second ssh on the same link, and then three at once.
    echo_through_proxy(host.runtime.path(), SIZE, Arc::default());
    let runtime = host.runtime.clone();
    let parallel: Vec<_> = (1..=3)
        .map(|i| {
            let runtime = runtime.clone();
            thread::spawn(move || {
                echo_through_proxy(runtime.path(), i * 1024 * 1024, Arc::default())
            })
        })
        .collect();
    for ssh in parallel {
        ssh.join().unwrap();
    }
    {
        let seen = host.seen.lock().unwrap();
        assert_eq!(seen.wants, 1, "the link stays up for the next proxy");
        assert_eq!(seen.drops, 0);
    }
    // The popup's counters catch up within a second (they go out at most once a second).
    let deadline = Instant::now() + Duration::from_secs(3);
    let expected = json!({
        "kind": "status", "project": PROJECT, "streams": 0,
        "bytesUp": 2 * SIZE + 6 * 1024 * 1024, "bytesDown": 2 * SIZE + 6 * 1024 * 1024,
        "linkUp": true,
    });
    while host.seen.lock().unwrap().statuses.last() != Some(&expected) {
        let last = host.seen.lock().unwrap().statuses.last().cloned();
        assert!(Instant::now() < deadline, "last status: {last:?}");
        thread::sleep(Duration::from_millis(20));
    }
    let (runtime, keeper) = (host.runtime.clone(), host.keeper_pid());
    host.close();
    keeper_leaves(runtime.path(), keeper);
}

#[test]
fn a_transfer_survives_the_link_dropping_twice() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bridge.sock");
    let _bridge = listening_bridge(&socket);
    let host = Host::start(Answer::Link(Box::new(socket_bridge(socket))));
    let progress = Arc::new(AtomicUsize::new(0));
    let cutter = {
        let (progress, to_extension) = (progress.clone(), host.to_extension.clone());
        thread::spawn(move || {
            let start = Instant::now();
            for at in [SIZE / 4, SIZE / 2] {
                while progress.load(Ordering::SeqCst) < at {
                    if start.elapsed() > Duration::from_secs(60) {
                        return 0;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                to_extension.send(ExtensionInput::Cut).unwrap();
            }
            2
        })
    };
    let took = echo_through_proxy(host.runtime.path(), SIZE, progress);
    assert_eq!(cutter.join().unwrap(), 2, "both cuts happened mid-transfer");
    {
        let seen = host.seen.lock().unwrap();
        eprintln!(
            "8 MiB each way with 2 link cuts: {} ms; {} stale host messages dropped",
            took.as_millis(),
            seen.stale
        );
        assert_eq!(seen.wants, 1);
    }
    host.close();
}

/// A proxy with nothing on stdin against `host`: it exits 255 within `limit` (never a hang).
fn proxy_failing_within(host: &Host, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    let out = proxy(host.runtime.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.elapsed() < limit, "{:?}", start.elapsed());
    assert_eq!(out.status.code(), Some(255));
    out
}

#[test]
fn no_link_fails_the_proxy_at_once_with_the_extensions_reason() {
    let reason = format!("no notebook tab of project {PROJECT} is open");
    let host = Host::start(Answer::NoLink(reason.clone()));
    let out = proxy_failing_within(&host, Duration::from_secs(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("aistudio-ssh: {reason}\n")
    );
    assert!(out.stdout.is_empty());
    host.close();
}

#[test]
fn without_a_helper_the_proxy_says_to_open_the_browser() {
    let runtime = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = proxy(runtime.path()).stdin(Stdio::null()).output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("aistudio-ssh: the helper is not running: open your browser"),
        "{stderr}"
    );
    // A socket left by a host that died: the same.
    let folder = runtime.path().join("aistudio-ssh");
    let stale = std::os::unix::net::UnixListener::bind(folder.join("helper.sock")).unwrap();
    drop(stale);
    let out = proxy(runtime.path()).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the helper is not running"));

    // A bad alias is refused before any connection.
    let out = Command::new(BINARY)
        .args(["proxy", "aistudio-a;b"])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no project"));
}

#[test]
fn a_socket_folder_others_may_enter_is_refused_by_host_and_proxy() {
    use std::os::unix::fs::PermissionsExt;
    let runtime = tempfile::tempdir().unwrap();
    let folder = runtime.path().join("aistudio-ssh");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = proxy(runtime.path()).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is open to other users (mode 755)"),
        "{stderr}"
    );
    let host = Command::new(BINARY)
        .arg("native-host")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(host.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&host.stderr).contains("is open to other users"));
    assert!(!folder.join("helper.sock").exists());
}

#[test]
fn a_second_browser_shares_the_keeper_and_leaves_the_first_ones_sessions_alone() {
    let older = Host::start(Answer::Link(Box::new(stdio_bridge(echo_server()))));
    let (runtime, keeper) = (older.runtime.clone(), older.keeper_pid());
    // An ssh session of the older browser, open while the newer one comes.
    let mut session = Reaped(
        proxy(runtime.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut to_ssh = session.0.stdin.take().unwrap();
    let mut from_ssh = session.0.stdout.take().unwrap();
    let mut echo = |n: u8| {
        let sent = vec![n; 1024 * 1024];
        to_ssh.write_all(&sent).unwrap();
        let mut got = vec![0; sent.len()];
        from_ssh.read_exact(&mut got).unwrap();
        assert!(got == sent, "echo {n} differs");
    };
    echo(1);
    let newer = Host::start_in(Answer::NoLink("the newer browser".into()), runtime.clone());
    assert_eq!(newer.keeper_pid(), keeper, "one keeper serves both");
    echo(2);
    // The project's link stays the older browser's: the next ssh goes on it too, and the
    // newer one is asked for nothing (it would refuse).
    echo_through_proxy(runtime.path(), 1024 * 1024, Arc::default());
    assert_eq!(newer.seen.lock().unwrap().wants, 0);
    newer.close();
    echo(3);
    drop(to_ssh);
    assert!(wait_exit(&mut session.0, Duration::from_secs(5)).success());
    let seen = older.seen.lock().unwrap();
    assert_eq!((seen.wants, seen.drops), (1, 0), "one link all along");
    drop(seen);
    older.close();
    keeper_leaves(runtime.path(), keeper);
}

/// A WebSocket request for the lane at `url` (with `path` instead of the token's, if given)
/// from `origin`.
fn lane_request(url: &str, path: Option<&str>, origin: Option<&str>) -> Request {
    let url = match path {
        Some(path) => format!("{}{path}", &url[..url.rfind('/').unwrap()]),
        None => url.to_owned(),
    };
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

/// The lane's TCP connection and its handshake's outcome.
fn open_lane(request: Request) -> Result<WebSocket<TcpStream>, u16> {
    let address = format!(
        "{}:{}",
        request.uri().host().unwrap(),
        request.uri().port_u16().unwrap()
    );
    let socket = TcpStream::connect(address).unwrap();
    match tungstenite::client(request, socket) {
        Ok((socket, _)) => Ok(socket),
        Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("the lane's handshake failed otherwise: {error}"),
    }
}

/// A whole client frame (masked, as a browser sends) on the lane.
fn lane_write(socket: &Mutex<TcpStream>, payload: Vec<u8>, opcode: OpCode) {
    let mut frame = Frame::message(payload, opcode, true);
    frame.header_mut().mask = Some([0x5a, 0x17, 0xc3, 0x08]);
    let mut bytes = Vec::new();
    frame.format(&mut bytes).unwrap();
    // The proxy may be done and the lane closed under a late write.
    let _ = socket.lock().unwrap().write_all(&bytes);
}

#[test]
fn the_lane_admits_only_the_extension_and_carries_a_link() {
    let host = Host::start(Answer::NoLink("asked on native messaging".into()));
    let url = host
        .seen
        .lock()
        .unwrap()
        .lane
        .clone()
        .expect("hello offers the lane");
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let extension = Some("chrome-extension://nfbfpekjfcnniobpegkajkakabpienla");
    // The wrong token, none, or the right one from a web page or from no browser: refused.
    let wrong = format!("/{}", "0".repeat(64));
    for (path, origin) in [
        (Some(wrong.as_str()), extension),
        (Some("/"), extension),
        (None, Some("https://aistudio.baidu.com")),
        (None, None),
    ] {
        let refused = open_lane(lane_request(&url, path, origin)).map(|_| ());
        assert_eq!(refused, Err(403), "{path:?} from {origin:?}");
    }

    // Connections that say nothing take every handshake place (the port is open to every
    // local user): a new one is closed at once, until the handshake deadline frees them.
    let address = url["ws://".len()..url.rfind('/').unwrap()].to_owned();
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    let crowded = TcpStream::connect(&address).unwrap();
    assert!(
        tungstenite::client(lane_request(&url, None, extension), crowded).is_err(),
        "no ninth handshake"
    );
    thread::sleep(Duration::from_millis(3200));
    let mut lane = open_lane(lane_request(&url, None, extension)).expect("admitted");
    drop(idle);
    let writer = Arc::new(Mutex::new(lane.get_ref().try_clone().unwrap()));
    let text = |writer: &Mutex<TcpStream>, message: Value| {
        lane_write(
            writer,
            message.to_string().into_bytes(),
            OpCode::Data(Data::Text),
        );
    };
    text(&writer, json!({"kind": "hello"}));
    lane.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let runtime = host.runtime.clone();
    let echo = thread::spawn(move || echo_through_proxy(runtime.path(), SIZE, Arc::default()));
    // The lane's extension is the newest: it is asked for the link, and carries it.
    let mut carrier: Option<Carrier> = None;
    let mut connect = stdio_bridge(echo_server());
    let (mut hellos, mut frames) = (0, 0);
    while !echo.is_finished() {
        match lane.read() {
            Ok(Message::Text(message)) => {
                let message: Value = serde_json::from_str(message.as_str()).unwrap();
                match message["kind"].as_str().unwrap() {
                    "hello" => hellos += 1,
                    "want" if carrier.is_none() => {
                        let mut next = connect();
                        let mut reader =
                            std::mem::replace(&mut next.reader, Box::new(std::io::empty()));
                        text(
                            &writer,
                            json!({"kind": "linkUp", "project": PROJECT, "link": 1}),
                        );
                        let writer = writer.clone();
                        thread::spawn(move || {
                            let mut buf = vec![0; 100_000];
                            while let Ok(n @ 1..) = reader.read(&mut buf) {
                                let frame = lane::lane_frame(PROJECT, 0, &buf[..n]).unwrap();
                                lane_write(&writer, frame, OpCode::Data(Data::Binary));
                            }
                        });
                        carrier = Some(next);
                    }
                    _ => {}
                }
            }
            Ok(Message::Binary(frame)) => {
                let header = lane::read_lane_header(&frame).unwrap();
                assert_eq!((header.project.as_str(), header.link), (PROJECT, 1));
                frames += 1;
                let carrier = carrier.as_mut().expect("bytes follow linkUp");
                carrier
                    .writer
                    .write_all(&frame[header.data_start..])
                    .unwrap();
            }
            Ok(_) => {}
            // Looks at the echo again.
            Err(tungstenite::Error::Io(error))
                if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("the lane broke: {error}"),
        }
    }
    let took = echo.join().unwrap();
    eprintln!(
        "8 MiB each way over the lane in {took:?}: {:.1} MB/s",
        mb_per_s(SIZE, took)
    );
    assert_eq!(hellos, 1);
    assert!(frames > 0);
    assert_eq!(
        host.seen.lock().unwrap().wants,
        0,
        "native messaging was asked for nothing"
    );
    let log = std::fs::read_to_string(host.runtime.path().join("aistudio-ssh/keeper.log")).unwrap();
    assert!(log.contains("an extension opened the lane"), "{log}");
    assert!(
        log.contains("wrong token") && log.contains("not an extension"),
        "{log}"
    );
    drop(carrier);
    drop(lane);
    host.close();
}

#[test]
fn a_removed_socket_is_listened_on_again() {
    let host = Host::start(Answer::Link(Box::new(stdio_bridge(echo_server()))));
    let (runtime, keeper) = (host.runtime.clone(), host.keeper_pid());
    // A cleaner of an old temporary folder takes the socket's folder away.
    let folder = runtime.path().join("aistudio-ssh");
    std::fs::remove_dir_all(&folder).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !folder.join("helper.sock").exists() {
        assert!(Instant::now() < deadline, "the socket is back within 10 s");
        thread::sleep(Duration::from_millis(50));
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&folder).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the folder is the user's alone again");
    echo_through_proxy(runtime.path(), 1024 * 1024, Arc::default());
    assert_eq!(host.keeper_pid(), keeper, "the same keeper");
    host.close();
    keeper_leaves(runtime.path(), keeper);
}

/// A native host of another version says so on the keeper's socket; the keeper's answer line.
fn other_version_asks(runtime: &Path) -> (UnixStream, String) {
    let socket = UnixStream::connect(runtime.join("aistudio-ssh/helper.sock")).unwrap();
    (&socket)
        .write_all(b"{\"extension\":\"0.0.0-other\"}\n")
        .unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(socket.try_clone().unwrap()),
        &mut answer,
    )
    .unwrap();
    (socket, answer)
}

#[test]
fn a_keeper_of_another_version_leaves_only_when_it_has_nothing_to_keep() {
    let host = Host::start(Answer::NoLink("no tab".into()));
    let (runtime, keeper) = (host.runtime.clone(), host.keeper_pid());
    // With a browser connected it serves the other version too (its sessions go on).
    let (other, answer) = other_version_asks(runtime.path());
    assert_eq!(answer, "{\"ok\":true}\n");
    drop(other);
    // A connection that has not said what it is yet holds the keeper (for up to 10 s)
    // without making it keep anything.
    let _silent = UnixStream::connect(runtime.path().join("aistudio-ssh/helper.sock")).unwrap();
    host.close();
    // Once the keeper has heard the browser go (a proxy is refused for that), it is alone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = proxy(runtime.path()).stdin(Stdio::null()).output().unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("extension is not connected") {
            break;
        }
        assert!(Instant::now() < deadline, "the keeper hears the browser go");
        thread::sleep(Duration::from_millis(20));
    }
    // Alone, it refuses the other version and leaves at once, for that version's native
    // host to start its own keeper.
    let (_other, answer) = other_version_asks(runtime.path());
    assert!(
        answer.contains(r#""ok":false"#) && answer.contains("it leaves"),
        "{answer}"
    );
    keeper_leaves(runtime.path(), keeper);
}

#[test]
fn a_transfer_survives_the_browser_restarting_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bridge.sock");
    let _bridge = listening_bridge(&socket);
    let first = Host::start(Answer::Link(Box::new(socket_bridge(socket.clone()))));
    let (runtime, keeper) = (first.runtime.clone(), first.keeper_pid());
    let progress = Arc::new(AtomicUsize::new(0));
    // A third of the way: the worker stops (its host's stdin closes, the link with it),
    // and 2 s later (past Chromium's kill of the old host) a new worker starts a new host.
    let restart = {
        let (progress, runtime) = (progress.clone(), runtime.clone());
        thread::spawn(move || {
            let start = Instant::now();
            while progress.load(Ordering::SeqCst) < SIZE / 3 {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "a third comes back"
                );
                thread::sleep(Duration::from_millis(1));
            }
            let at = progress.load(Ordering::SeqCst);
            let group = first.child.0.id();
            first.close();
            // What a browser that ends a host's whole process group would do: the keeper,
            // in a session of its own, is not in it.
            // SAFETY: a signal to a process group; no memory is touched.
            unsafe { libc::kill(-(group as i32), libc::SIGKILL) };
            thread::sleep(Duration::from_secs(2));
            let second = Host::start_in(Answer::Link(Box::new(socket_bridge(socket))), runtime);
            (at, second)
        })
    };
    let took = echo_through_proxy(runtime.path(), SIZE, progress);
    let (at, second) = restart.join().unwrap();
    assert!(
        at < SIZE,
        "the host restarted mid-transfer ({at} of {SIZE})"
    );
    assert_eq!(
        second.keeper_pid(),
        keeper,
        "the same keeper held the stream"
    );
    assert_eq!(
        second.seen.lock().unwrap().wants,
        1,
        "the new extension is asked for the link"
    );
    eprintln!(
        "8 MiB each way with the host restarted after {at} bytes: {} ms",
        took.as_millis()
    );
    second.close();
    keeper_leaves(runtime.path(), keeper);
}

#[test]
fn an_absent_sshd_fails_the_proxy_with_the_bridges_reason() {
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = Host::start(Answer::Link(Box::new(stdio_bridge(closed))));
    let out = proxy_failing_within(&host, Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "aistudio-ssh: the container refused the connection: sshd on 127.0.0.1:{closed}"
        )),
        "{stderr}"
    );
    host.close();
}
