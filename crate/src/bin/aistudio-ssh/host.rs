//! The native messaging host's I/O: the browser on stdio, `aistudio-ssh proxy` connections on
//! the user's local socket, threads feeding one loop that asks the core's
//! [`Switchboard`] what to do.
//!
//! Threads, because each blocking side must block only itself: a stdin reader (the browser),
//! an acceptor, and per proxy connection a reader with one chunk in flight (a full stream
//! stops it, not the loop) and a writer (a slow `ssh` stalls only its own connection).

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use aistudio_ssh::native_host::{
    self, NativeMessageError, Output, ProxyAction, ProxyId, Switchboard, ToExtension,
};
use aistudio_ssh::stream::Config;
use rand_core::OsRng;
use serde_json::Value;

/// What a proxy's reader takes from its socket at once.
const CHUNK: usize = 64 * 1024;
/// Inputs taken in before the loop sends what they caused.
const MAX_INPUTS_PER_TURN: usize = 64;
/// A request line longer than this is not ours.
const MAX_REQUEST_LINE: u64 = 4096;

/// What the threads tell the loop.
enum Input {
    FromBrowser(Value),
    /// The browser closed stdin (or broke the framing): the host ends.
    BrowserGone(Option<NativeMessageError>),
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

/// The socket folder, checked: ours, open to no one else.
///
/// # Errors
/// The folder cannot be made, or belongs to someone else, or others may enter it.
pub fn socket_path() -> Result<PathBuf, String> {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    let path = native_host::socket_path(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        std::env::var_os("TMPDIR").as_deref(),
        uid,
    );
    let folder = path.parent().ok_or("the socket path has no folder")?;
    match fs::DirBuilder::new().mode(0o700).create(folder) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(format!("cannot make {}: {error}", folder.display())),
    }
    // symlink_metadata: a link planted in a shared /tmp is not our folder.
    let meta = fs::symlink_metadata(folder)
        .map_err(|error| format!("cannot read {}: {error}", folder.display()))?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!(
            "{} is not a folder of this user (uid {uid}): remove it, or set XDG_RUNTIME_DIR",
            folder.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is open to other users (mode {:o}): `chmod 700` it",
            folder.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(path)
}

/// Serves the browser and the proxies until the browser closes stdin; removes the socket.
///
/// # Errors
/// The socket cannot be made, or the browser's stream broke.
pub fn serve() -> Result<(), String> {
    let path = socket_path()?;
    // The newest host wins: a browser restarted leaves the old socket behind.
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("cannot replace {}: {error}", path.display())),
    }
    let listener = UnixListener::bind(&path)
        .map_err(|error| format!("cannot listen on {}: {error}", path.display()))?;
    let ours = fs::metadata(&path)
        .map(|meta| (meta.dev(), meta.ino()))
        .ok();
    let (tx, rx) = mpsc::channel();
    spawn_browser_reader(tx.clone());
    spawn_acceptor(listener, tx);
    let result = run(rx);
    // Only ours: a newer host (another browser) may have taken the path meanwhile.
    let still_ours = fs::metadata(&path).is_ok_and(|meta| ours == Some((meta.dev(), meta.ino())));
    if still_ours {
        let _ = fs::remove_file(&path);
    }
    result
}

fn spawn_browser_reader(tx: Sender<Input>) {
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            match native_host::read_message(&mut stdin) {
                Ok(Some(message)) => {
                    if tx.send(Input::FromBrowser(message)).is_err() {
                        return;
                    }
                }
                Ok(None) => return drop(tx.send(Input::BrowserGone(None))),
                Err(error) => return drop(tx.send(Input::BrowserGone(Some(error)))),
            }
        }
    });
}

fn spawn_acceptor(listener: UnixListener, tx: Sender<Input>) {
    thread::spawn(move || {
        for (n, connection) in listener.incoming().enumerate() {
            let Ok(socket) = connection else { continue };
            let proxy = ProxyId(n as u64);
            let (Ok(read_half), Ok(write_half)) = (socket.try_clone(), socket.try_clone()) else {
                continue;
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
            spawn_proxy_reader(proxy, read_half, go, tx.clone());
            spawn_proxy_writer(proxy, write_half, actions, tx.clone());
        }
    });
}

/// Reads the request line, then one chunk per go-ahead from the loop.
fn spawn_proxy_reader(proxy: ProxyId, socket: UnixStream, go: Receiver<()>, tx: Sender<Input>) {
    thread::spawn(move || {
        let mut socket = BufReader::new(socket);
        let mut line = String::new();
        if (&mut socket)
            .take(MAX_REQUEST_LINE)
            .read_line(&mut line)
            .is_err()
            || tx.send(Input::Request(proxy, line)).is_err()
        {
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
    });
}

fn spawn_proxy_writer(
    proxy: ProxyId,
    mut socket: UnixStream,
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

fn run(rx: Receiver<Input>) -> Result<(), String> {
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut board = Switchboard::new(OsRng, Config::default());
    let mut connections: HashMap<ProxyId, Connection> = HashMap::new();
    let mut stdout = io::stdout().lock();
    // Set once the browser is gone: what is already decided still goes out.
    let mut ended: Option<Result<(), String>> = None;
    while ended.is_none() {
        let wait = board
            .next_timeout()
            .map_or(Duration::from_secs(3600), |at| {
                // At least a millisecond: a timer the core cannot clear must not spin the CPU.
                Duration::from_millis(at.saturating_sub(now()).max(1))
            });
        let mut next = match rx.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => {
                board.handle_timeout(now());
                None
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        // What is already waiting goes in before anything goes out (bigger batches), within
        // a bound so that a flood of input cannot hold output back.
        let mut taken = 0;
        while let Some(input) = next {
            taken += 1;
            match input {
                Input::FromBrowser(message) => board.handle_message(&message, now()),
                Input::BrowserGone(error) => {
                    ended = Some(error.map_or(Ok(()), |error| Err(error.to_string())));
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
                Input::Gone(proxy) => board.proxy_gone(proxy),
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
                    if let Err(error) = send(&mut stdout, &message) {
                        ended.get_or_insert(Err(error));
                        break;
                    }
                }
                Output::Log(line) => eprintln!("aistudio-ssh native-host: {line}"),
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
    }
    ended.unwrap_or(Ok(()))
}

fn send(stdout: &mut impl Write, message: &ToExtension) -> Result<(), String> {
    let value = serde_json::to_value(message).map_err(|error| error.to_string())?;
    native_host::write_message(stdout, &value).map_err(|error| error.to_string())
}
