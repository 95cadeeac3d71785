//! The helper's I/O. Two processes: the keeper, which holds every stream and serves
//! `aistudio-ssh proxy` connections on the user's local socket (threads feeding one loop that
//! asks the core's [`Switchboard`] what to do), and the native host the browser starts, a
//! pipe between the browser's stdio and the keeper, which it starts when none runs.
//!
//! Two, because a browser ends its native host with its port: Chromium kills the process two
//! seconds after an MV3 worker stops. The keeper is a process of its own (its own session),
//! so open `ssh` sessions wait for the next worker within the stream protocol's grace.
//!
//! Threads, because each blocking side must block only itself: per connection a reader (the
//! extension's native messages, or a proxy's bytes with one chunk in flight: a full stream
//! stops it, not the loop) and a writer (a slow `ssh` stalls only its own connection).

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aistudio_ssh::native_host::{
    self, ExtensionId, ExtensionRequest, LaneToken, Output, ProxyAction, ProxyAnswer, ProxyId,
    Routes, Switchboard, ToExtension, KEEPER_LOCK_FILE, KEEPER_LOG_FILE, KEEPER_PID_FILE,
};
use aistudio_ssh::stream::Config;
use rand_core::OsRng;
use serde_json::{json, Value};

use super::lane;
use super::local::{self, Listener, Stream};

/// What a proxy's reader takes from its socket at once (scp's bulk comes in fewer turns).
const CHUNK: usize = 256 * 1024;
/// Inputs taken in before the loop sends what they caused.
const MAX_INPUTS_PER_TURN: usize = 64;
/// A request line longer than this is not ours.
const MAX_REQUEST_LINE: u64 = 4096;
/// Connections still proving themselves (see [`local::Admission`]): past this many, new ones
/// are closed at once (on Windows any local program can reach the port).
const MAX_ADMISSIONS: usize = 32;
/// What of the keeper's log a native host reports when the keeper it started failed.
const LOG_TAIL: usize = 4000;
/// A log past this is set aside (`keeper.log.old`) when a keeper starts (on Windows nothing
/// empties its folder; on Linux and macOS a session can last).
const MAX_LOG: u64 = 1024 * 1024;
/// The keeper leaves this long after the extension went and its last proxy closed (a worker
/// that restarts with no stream open finds no keeper and starts one).
const IDLE_EXIT: Duration = Duration::from_secs(1);
/// How long the native host waits for a keeper (one it started, or one on its way out).
const KEEPER_WAIT: Duration = Duration::from_secs(10);
/// Set when the keeper leaves (and removes its socket).
static LEAVING: AtomicBool = AtomicBool::new(false);
/// How often the keeper checks that its socket is still there.
const SOCKET_CHECK: Duration = Duration::from_secs(2);
/// A connection sends its request line within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A write to the extension's connection that takes longer means its native host (or its
/// lane) is stuck: it is dropped rather than stalling every stream.
pub const EXTENSION_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `AISTUDIO_SSH_LANE=off` in the browser's environment: no lane, native messaging only.
const LANE_SWITCH: &str = "AISTUDIO_SSH_LANE";

/// What the threads tell the loop. A connection that sent an [`ExtensionRequest`], or was
/// admitted to the lane, is an extension's: its messages carry the connection's number,
/// which [`Routes`] follows.
pub enum Input {
    /// With the native host's version.
    ExtensionCame(ProxyId, Stream, String),
    /// An extension opened the lane: the socket the loop writes to.
    LaneCame(ProxyId, TcpStream),
    FromBrowser(ProxyId, Value),
    /// A binary frame of the lane: a project's bytes from the bridge.
    LaneBytes(ProxyId, String, Vec<u8>),
    /// The extension's connection ended (or broke the framing: why).
    BrowserGone(ProxyId, Option<String>),
    Accepted {
        proxy: ProxyId,
        reader: Sender<()>,
        writer: Sender<ProxyAction>,
    },
    Request(ProxyId, String),
    Data(ProxyId, Vec<u8>),
    Eof(ProxyId),
    Written(ProxyId, usize),
    Gone(ProxyId),
}

/// The native host the browser starts: a pipe between its stdio and the keeper (started
/// when none answers). Ends when the browser closes stdin or the keeper the connection.
///
/// # Errors
/// The socket folder is not the user's own, or no keeper could be reached.
pub fn native_host() -> Result<(), String> {
    let path = local::socket_path()?;
    let (to_keeper, mut from_keeper) = reach_keeper(&path)?;
    thread::spawn(move || {
        let _ = copy(&mut io::stdin().lock(), &mut &to_keeper);
        // The browser closed the port: the keeper hears the extension went, and nothing
        // more is read for a browser that no longer listens.
        let _ = to_keeper.shutdown(Shutdown::Both);
        std::process::exit(0);
    });
    let mut stdout = local::raw_stdout()
        .map_err(|error| format!("cannot write to the browser's pipe: {error}"))?;
    copy(&mut from_keeper, &mut stdout)
        .map_err(|error| format!("the connection to the keeper broke: {error}"))
}

/// Copies until the end of `from`, each read written and flushed at once. Not `io::copy`:
/// between a socket and a pipe it splices, and a reader of the pipe then saw nothing of
/// what was spliced on this machine's kernel (the browser would wait forever).
pub fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

/// A keeper's connection taken by this extension: the socket to write to and its reader.
fn reach_keeper(path: &Path) -> Result<(Stream, BufReader<Stream>), String> {
    let deadline = Instant::now() + KEEPER_WAIT;
    let log_path = path.with_file_name(KEEPER_LOG_FILE);
    let mut started: Option<std::process::Child> = None;
    loop {
        if let Ok(socket) = local::connect(path) {
            // A keeper on its way out closes the connection before its answer: try again.
            if let Ok(Some(reader)) = ask_keeper(&socket) {
                if let Some(mut child) = started {
                    // Reaped whenever it ends: no zombie for the browser's session.
                    thread::spawn(move || child.wait());
                }
                return Ok((socket, reader));
            }
        }
        match &mut started {
            None => started = Some(start_keeper(&log_path)?),
            Some(child) => match child.try_wait() {
                // Another keeper was starting at the same time and serves: reach that one.
                Ok(Some(status)) if status.success() => started = None,
                Ok(Some(status)) => {
                    // What it said before it had its log (it failed early), else its log.
                    let mut said = String::new();
                    if let Some(stderr) = &mut child.stderr {
                        let _ = stderr.read_to_string(&mut said);
                    }
                    if said.trim().is_empty() {
                        let log = fs::read_to_string(&log_path).unwrap_or_default();
                        let mut from = log.len().saturating_sub(LOG_TAIL);
                        while !log.is_char_boundary(from) {
                            from += 1;
                        }
                        said = log[from..].to_owned();
                    }
                    return Err(format!("the keeper exited ({status}): {}", said.trim()));
                }
                _ => {}
            },
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no keeper answered on {} within {} s",
                path.display(),
                KEEPER_WAIT.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Says this connection is the extension's; `Some` once the keeper answered `ok`.
fn ask_keeper(socket: &Stream) -> io::Result<Option<BufReader<Stream>>> {
    (&*socket).write_all(ExtensionRequest::this_version().to_line().as_bytes())?;
    socket.set_read_timeout(Some(KEEPER_WAIT))?;
    let mut reader = BufReader::new(socket.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    socket.set_read_timeout(None)?;
    let answer: Option<ProxyAnswer> = serde_json::from_str(line.trim()).ok();
    Ok(answer.filter(|answer| answer.ok).map(|_| reader))
}

/// `aistudio-ssh keeper` in a session of its own, in `/`: the browser's end of the native
/// host does not end it, nor hold a folder. It logs to a file of its own, not to the
/// browser's stderr: a browser (or its driver) waits for that to close before it counts as
/// exited. Its stderr is a pipe to us until then (on Windows, its log from the start).
fn start_keeper(log_path: &Path) -> Result<std::process::Child, String> {
    let binary = std::env::current_exe()
        .map_err(|error| format!("cannot find the helper's own binary: {error}"))?;
    if fs::metadata(log_path).is_ok_and(|meta| meta.len() > MAX_LOG) {
        let _ = fs::rename(log_path, log_path.with_extension("log.old"));
    }
    let mut command = Command::new(binary);
    command
        .arg("keeper")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Until it has its log: a keeper that fails before says why here.
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid and chdir are async-signal-safe and touch no memory of ours.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                libc::chdir(c"/".as_ptr());
                Ok(())
            });
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        // No console, a process group of its own, and out of the browser's job if the job
        // lets it go (else the browser may end it with the native host).
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
        local::keep_stdio_from_children();
        let log = local::open_private(log_path, true)
            .map_err(|error| format!("cannot write {}: {error}", log_path.display()))?;
        command.stderr(log);
        if let Some(folder) = log_path.parent() {
            command.current_dir(folder);
        }
        command.creation_flags(
            DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_BREAKAWAY_FROM_JOB,
        );
        match command.spawn() {
            Ok(child) => return Ok(child),
            Err(error) => eprintln!(
                "aistudio-ssh native-host: the keeper cannot leave the browser's job \
                 ({error}): it ends with the browser"
            ),
        }
        command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    command
        .spawn()
        .map_err(|error| format!("cannot start the keeper: {error}"))
}

/// Takes the keepers' lock, held for this keeper's life (the system lets it go when the
/// process ends, however it ends): `None` when another keeper holds it.
fn keeper_lock(folder: &Path) -> Result<Option<fs::File>, String> {
    let path = folder.join(KEEPER_LOCK_FILE);
    let file = local::open_private(&path, false)
        .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(error)) => {
            Err(format!("cannot lock {}: {error}", path.display()))
        }
    }
}

/// Sends this process's stderr to the keeper's log. Appended to: what an earlier keeper
/// said (before a crash, say) stays; the folder is the user's runtime folder, which the
/// system empties at logout. (On Windows the native host gave it the log as stderr.)
fn log_to_file(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        let log = local::open_private(path, true)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        // SAFETY: dup2 onto our own stderr; `log` stays open until then.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&log), libc::STDERR_FILENO) };
    }
    #[cfg(windows)]
    let _ = path;
    Ok(())
}

/// The keeper: serves the extensions and the proxies until none is left; removes its
/// socket. Leaves at once when another keeper holds the lock.
///
/// # Errors
/// The socket cannot be made.
pub fn keep() -> Result<(), String> {
    let path = local::socket_path()?;
    let folder = path.parent().ok_or("the socket path has no folder")?;
    // Held until this process ends: two keepers starting at once cannot both serve.
    let Some(_lock) = keeper_lock(folder)? else {
        return Ok(());
    };
    log_to_file(&folder.join(KEEPER_LOG_FILE))?;
    log(&format!(
        "started: version {}, pid {}",
        aistudio_ssh::VERSION,
        std::process::id()
    ));
    // A keeper that died (or a machine restarted) left its socket behind: replaced.
    let listener = Listener::bind(&path)?;
    let pid_file = folder.join(KEEPER_PID_FILE);
    let _ = fs::write(&pid_file, format!("{}\n", std::process::id()));
    let (tx, rx) = mpsc::channel();
    // Without a lane the bytes go over native messaging, slower but the same.
    let lane = if std::env::var_os(LANE_SWITCH).is_some_and(|value| value == "off") {
        // For machines where listening on loopback is not wanted (the browser's environment
        // reaches the keeper through its native host).
        log(&format!("no lane: {LANE_SWITCH}=off"));
        None
    } else {
        match lane::listen() {
            Ok((listener, port)) => {
                let token = LaneToken::new(&mut OsRng);
                let url = token.url(port);
                lane::spawn_acceptor(listener, token, tx.clone());
                log(&format!("the lane listens on 127.0.0.1:{port}"));
                Some(url)
            }
            Err(error) => {
                log(&format!("no lane: cannot listen on loopback: {error}"));
                None
            }
        }
    };
    spawn_acceptor(listener, tx.clone());
    spawn_socket_watch(path.clone(), tx.clone());
    run(rx, &tx, lane);
    LEAVING.store(true, Ordering::SeqCst);
    // Under the lock: the socket is ours.
    let _ = fs::remove_file(&path);
    let _ = fs::remove_file(&pid_file);
    Ok(())
}

/// A line for the keeper's log (never a panic if it cannot be written).
pub fn log(line: &str) {
    // Seconds since the epoch: the log spans keepers, and `date -d @<s>` reads it.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let _ = writeln!(
        io::stderr(),
        "{}.{:03} aistudio-ssh keeper: {line}",
        at.as_secs(),
        at.subsec_millis()
    );
}

/// Listens again where the socket was if something removed it (a cleaner of an old `$TMPDIR`,
/// as macOS runs, while the browser stays open for days): `proxy` and native hosts would
/// otherwise not find a keeper that still runs and holds the lock.
fn spawn_socket_watch(path: PathBuf, tx: Sender<Input>) {
    thread::spawn(move || loop {
        thread::sleep(SOCKET_CHECK);
        // The keeper removes its socket when it leaves: not to be made again then.
        if LEAVING.load(Ordering::SeqCst) {
            return;
        }
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        // The folder may be gone too: made again, and checked, as at the start.
        let listener = local::socket_path().and_then(|path| Listener::bind(&path));
        match listener {
            // It left meanwhile: what it removed stays removed.
            Ok(_) if LEAVING.load(Ordering::SeqCst) => {
                let _ = fs::remove_file(&path);
                return;
            }
            Ok(listener) => {
                log("the socket was removed: listening on it again");
                if let Some(folder) = path.parent() {
                    let _ = fs::write(
                        folder.join(KEEPER_PID_FILE),
                        format!("{}\n", std::process::id()),
                    );
                }
                spawn_acceptor(listener, tx.clone());
            }
            Err(error) => log(&format!("the socket was removed: {error}")),
        }
    });
}

/// A number for a new connection, on the socket or the lane: they share the loop's names.
pub fn next_connection() -> ProxyId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    ProxyId(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn spawn_acceptor(listener: Listener, tx: Sender<Input>) {
    let admitting = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || loop {
        let Ok(socket) = listener.accept() else {
            // Out of descriptors, say: not a loop at full speed.
            thread::sleep(Duration::from_millis(100));
            continue;
        };
        if admitting.fetch_add(1, Ordering::SeqCst) >= MAX_ADMISSIONS {
            admitting.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (admission, admitting, tx) = (listener.admission(), admitting.clone(), tx.clone());
        thread::spawn(move || {
            let admitted = admission.admits(&socket);
            admitting.fetch_sub(1, Ordering::SeqCst);
            // Not admitted: closed, and the loop never heard of it.
            if admitted {
                serve_connection(socket, &tx);
            }
        });
    });
}

/// An admitted connection: the loop learns of it, a writer thread takes its actions, and
/// this thread reads it: the request line, then one chunk per go-ahead from the loop.
fn serve_connection(socket: Stream, tx: &Sender<Input>) {
    let proxy = next_connection();
    let (Ok(read_half), Ok(write_half)) = (socket.try_clone(), socket.try_clone()) else {
        return;
    };
    let (reader, go) = mpsc::channel();
    let (writer, actions) = mpsc::channel();
    // Registered before the reader can report anything.
    if tx
        .send(Input::Accepted {
            proxy,
            reader,
            writer,
        })
        .is_err()
    {
        return;
    }
    spawn_proxy_writer(proxy, write_half, actions, tx.clone());
    read_proxy(proxy, read_half, &go, tx);
}

fn read_proxy(proxy: ProxyId, socket: Stream, go: &Receiver<()>, tx: &Sender<Input>) {
    // A client that says nothing (or no UTF-8) is not kept: it would keep the keeper.
    let _ = socket.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut socket = BufReader::new(socket);
    let mut line = String::new();
    let read = (&mut socket).take(MAX_REQUEST_LINE).read_line(&mut line);
    if read.is_err() || socket.get_ref().set_read_timeout(None).is_err() {
        let _ = tx.send(Input::Gone(proxy));
        return;
    }
    if let Some(request) = ExtensionRequest::parse(&line) {
        return read_extension(proxy, socket, request.extension, tx);
    }
    if tx.send(Input::Request(proxy, line)).is_err() {
        return;
    }
    let mut buf = vec![0; CHUNK];
    // The BufReader keeps whatever followed the line.
    while go.recv().is_ok() {
        let input = match socket.read(&mut buf) {
            Ok(0) => Input::Eof(proxy),
            Ok(n) => Input::Data(proxy, buf[..n].to_vec()),
            Err(_) => Input::Gone(proxy),
        };
        let last = !matches!(input, Input::Data(..));
        if tx.send(input).is_err() || last {
            return;
        }
    }
}

/// The extension's native messages, framed as on stdio, until its connection ends.
fn read_extension(
    connection: ProxyId,
    mut socket: BufReader<Stream>,
    version: String,
    tx: &Sender<Input>,
) {
    let Ok(writer) = socket.get_ref().try_clone() else {
        return;
    };
    if tx
        .send(Input::ExtensionCame(connection, writer, version))
        .is_err()
    {
        return;
    }
    loop {
        let input = match native_host::read_message(&mut socket) {
            Ok(Some(message)) => Input::FromBrowser(connection, message),
            Ok(None) => Input::BrowserGone(connection, None),
            Err(error) => Input::BrowserGone(connection, Some(error.to_string())),
        };
        let last = matches!(input, Input::BrowserGone(..));
        if tx.send(input).is_err() || last {
            return;
        }
    }
}

fn spawn_proxy_writer(
    proxy: ProxyId,
    mut socket: Stream,
    actions: Receiver<ProxyAction>,
    tx: Sender<Input>,
) {
    thread::spawn(move || {
        for action in actions {
            let done = match action {
                ProxyAction::Answer(answer) => {
                    socket.write_all(answer.to_line().as_bytes()).map(|()| 0)
                }
                ProxyAction::Data(bytes) => socket.write_all(&bytes).map(|()| bytes.len()),
                ProxyAction::ShutdownWrite => socket.shutdown(Shutdown::Write).map(|()| 0),
                ProxyAction::Close => {
                    // Also wakes the reader blocked on this socket.
                    let _ = socket.shutdown(Shutdown::Both);
                    return;
                }
                ProxyAction::ReadMore => Ok(0),
            };
            let report = match done {
                Ok(0) => continue,
                Ok(n) => Input::Written(proxy, n),
                Err(_) => Input::Gone(proxy),
            };
            let gone = matches!(report, Input::Gone(_));
            if tx.send(report).is_err() || gone {
                let _ = socket.shutdown(Shutdown::Both);
                return;
            }
        }
    });
}

/// A proxy connection's two threads, as the loop reaches them.
struct Connection {
    reader: Sender<()>,
    writer: Sender<ProxyAction>,
}

/// An extension's connection as the loop reaches it: a writer thread of its own (a browser
/// slow to read stalls only that thread, never the loop and every other stream) and the
/// socket, to close it.
struct ExtensionSocket {
    writer: Sender<ToExtension>,
    socket: Socket,
}

/// The socket of an extension's connection: its native host's, or its lane.
enum Socket {
    NativeHost(Stream),
    Lane(TcpStream),
}

impl Socket {
    fn write(&mut self, message: &ToExtension) -> Result<(), String> {
        match self {
            Self::NativeHost(socket) => {
                let value = serde_json::to_value(message).map_err(|error| error.to_string())?;
                native_host::write_message(socket, &value).map_err(|error| error.to_string())
            }
            Self::Lane(socket) => lane::send(socket, message),
        }
    }

    fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::NativeHost(socket) => Self::NativeHost(socket.try_clone()?),
            Self::Lane(socket) => Self::Lane(socket.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Self::NativeHost(socket) => socket.shutdown(Shutdown::Both),
            Self::Lane(socket) => socket.shutdown(Shutdown::Both),
        };
    }
}

impl ExtensionSocket {
    /// Starts the connection's writer; a write that fails (or takes longer than
    /// [`EXTENSION_WRITE_TIMEOUT`]) ends the connection as if the extension left. If it
    /// cannot start, the connection is closed (its reader ends, the extension sees it).
    fn start(connection: ProxyId, socket: Socket, tx: Sender<Input>) -> io::Result<Self> {
        let (writer, messages) = mpsc::channel::<ToExtension>();
        let started = socket.try_clone().and_then(|mut to_write| {
            thread::Builder::new()
                .name("extension writer".into())
                .spawn(move || {
                    for message in messages {
                        if let Err(error) = to_write.write(&message) {
                            let why = format!("an extension's connection broke: {error}");
                            let _ = tx.send(Input::BrowserGone(connection, Some(why)));
                            to_write.shutdown();
                            return;
                        }
                    }
                })
        });
        match started {
            Ok(_) => Ok(Self { writer, socket }),
            Err(error) => {
                socket.shutdown();
                Err(error)
            }
        }
    }
}

/// The connected extensions (a browser each, usually one; its lane is one more), their
/// sockets and routes.
struct Extensions {
    sockets: HashMap<ExtensionId, ExtensionSocket>,
    routes: Routes,
}

impl Extensions {
    /// An extension's connection was accepted: it is one more for [`Routes`].
    fn came(&mut self, connection: ProxyId, socket: Socket, tx: &Sender<Input>) {
        match ExtensionSocket::start(connection, socket, tx.clone()) {
            Ok(extension) => {
                let id = ExtensionId(connection.0);
                self.sockets.insert(id, extension);
                self.routes.came(id);
            }
            Err(error) => log(&format!("an extension's writer did not start: {error}")),
        }
    }

    /// An extension went (or its connection broke): its links are down; with none left,
    /// streams wait for the next within the grace period.
    fn drop(&mut self, id: ExtensionId, board: &mut Switchboard<OsRng>, now_ms: u64) {
        if let Some(extension) = self.sockets.remove(&id) {
            // Also ends its reader, and the native host's pipe with it; its writer ends with
            // its channel, once it wrote what it had.
            extension.socket.shutdown();
        }
        for project in self.routes.gone(id) {
            let down = json!({"kind": "linkDown", "project": project, "reason": "the extension went away"});
            board.handle_message(&down, now_ms);
        }
        if self.routes.any() {
            // What it was asked for is asked of the others.
            board.ask_for_waiting_links(now_ms);
        } else {
            board.extension_gone(now_ms);
        }
    }
}

fn run(rx: Receiver<Input>, tx: &Sender<Input>, lane: Option<String>) {
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut board = Switchboard::new(OsRng, Config::default());
    if let Some(url) = lane {
        board.offer_lane(url);
    }
    let mut connections: HashMap<ProxyId, Connection> = HashMap::new();
    let mut extensions = Extensions {
        sockets: HashMap::new(),
        routes: Routes::default(),
    };
    // Since when nothing needs the keeper (no extension, no connection).
    let mut idle_since = Some(Instant::now());
    loop {
        let mut wait = board
            .next_timeout()
            .map_or(Duration::from_secs(3600), |at| {
                // At least a millisecond: a timer the core cannot clear must not spin the CPU.
                Duration::from_millis(at.saturating_sub(now()).max(1))
            });
        if let Some(since) = idle_since {
            let left = IDLE_EXIT.saturating_sub(since.elapsed());
            if left.is_zero() {
                return;
            }
            wait = wait.min(left);
        }
        let mut next = match rx.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => {
                board.handle_timeout(now());
                None
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // What is already waiting goes in before anything goes out (bigger batches), within
        // a bound so that a flood of input cannot hold output back.
        let mut taken = 0;
        let mut leaving = None;
        while let Some(input) = next {
            taken += 1;
            match input {
                Input::ExtensionCame(connection, socket, version) => {
                    // Not a proxy after all: its writer thread ends with the channel.
                    connections.remove(&connection);
                    if version != aistudio_ssh::VERSION {
                        let alone = !extensions.routes.any() && !board.has_proxies();
                        log(&format!("a native host of version {version} came"));
                        if alone {
                            // An upgraded (or other) helper: it starts a keeper of its own.
                            let refusal = ProxyAnswer::error(format!(
                                "this keeper is version {}; it leaves",
                                aistudio_ssh::VERSION
                            ));
                            let _ = (&socket).write_all(refusal.to_line().as_bytes());
                            return;
                        }
                    }
                    let answer = ProxyAnswer::ok().to_line();
                    let _ = socket.set_write_timeout(Some(EXTENSION_WRITE_TIMEOUT));
                    if (&socket).write_all(answer.as_bytes()).is_ok() {
                        extensions.came(connection, Socket::NativeHost(socket), tx);
                    }
                }
                Input::LaneCame(connection, socket) => {
                    log("an extension opened the lane");
                    extensions.came(connection, Socket::Lane(socket), tx);
                }
                Input::LaneBytes(connection, project, bytes) => {
                    let id = ExtensionId(connection.0);
                    if extensions.sockets.contains_key(&id)
                        && extensions.routes.heard_bytes(id, &project)
                    {
                        board.link_bytes(&project, &bytes, now());
                    }
                }
                Input::FromBrowser(connection, message) => {
                    let id = ExtensionId(connection.0);
                    if extensions.sockets.contains_key(&id) && extensions.routes.heard(id, &message)
                    {
                        board.handle_message(&message, now());
                    }
                }
                Input::BrowserGone(connection, error) => {
                    if let Some(error) = error {
                        log(&error);
                    }
                    // What its messages caused still goes out first.
                    leaving = Some(ExtensionId(connection.0));
                    break;
                }
                Input::Accepted {
                    proxy,
                    reader,
                    writer,
                } => {
                    connections.insert(proxy, Connection { reader, writer });
                }
                Input::Request(proxy, line) => board.proxy_request(proxy, &line, now()),
                Input::Data(proxy, bytes) => board.proxy_data(proxy, bytes),
                Input::Eof(proxy) => board.proxy_eof(proxy),
                Input::Written(proxy, n) => board.proxy_written(proxy, n),
                Input::Gone(proxy) => {
                    board.proxy_gone(proxy);
                    // Also one that never got as far as a request.
                    connections.remove(&proxy);
                }
            }
            next = if taken < MAX_INPUTS_PER_TURN {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        while let Some(output) = board.poll_output(now()) {
            match output {
                Output::ToExtension(message) => {
                    // With no extension, nobody to tell: the next one says hello and is told.
                    let Some(id) = extensions.routes.target(&message) else {
                        continue;
                    };
                    if let Some(extension) = extensions.sockets.get(&id) {
                        // A writer that ended has sent BrowserGone: the drop follows.
                        let _ = extension.writer.send(message);
                    }
                }
                Output::Log(line) => log(&line),
                Output::ToProxy { proxy, action } => {
                    let Some(connection) = connections.get(&proxy) else {
                        continue;
                    };
                    let close = action == ProxyAction::Close;
                    let _ = match action {
                        ProxyAction::ReadMore => connection.reader.send(()).is_ok(),
                        action => connection.writer.send(action).is_ok(),
                    };
                    if close {
                        connections.remove(&proxy);
                    }
                }
            }
        }
        if let Some(id) = leaving {
            extensions.drop(id, &mut board, now());
        }
        let needed = extensions.routes.any() || !connections.is_empty() || board.has_proxies();
        idle_since = match (needed, idle_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
    }
}
