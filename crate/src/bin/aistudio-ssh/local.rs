//! The keeper's socket, which only its user can use, per system: on Linux and macOS a Unix
//! socket in a folder of the user's own (0700); on Windows, whose std has no Unix socket, a
//! loopback port whose address and two tokens sit in a file of the user's profile
//! (`%LOCALAPPDATA%\aistudio-ssh`, closed to others like the rest of the profile): a client's
//! first line is the one, the keeper's answer the other.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
#[cfg(windows)]
use std::time::Duration;

use aistudio_ssh::native_host;
#[cfg(windows)]
use aistudio_ssh::native_host::{keeper_address, parse_keeper_address, same_secret, LaneToken};

/// A connection to the keeper.
#[cfg(unix)]
pub type Stream = std::os::unix::net::UnixStream;
#[cfg(windows)]
pub type Stream = std::net::TcpStream;

/// Where the keeper's socket is (on Windows, its address file), in a folder made (and on
/// Unix checked: ours, open to no one else) when needed.
///
/// # Errors
/// The folder cannot be made; on Unix, it belongs to someone else or others may enter it.
pub fn socket_path() -> Result<PathBuf, String> {
    let path = path()?;
    let folder = path.parent().ok_or("the socket path has no folder")?;
    make_private_folder(folder)?;
    Ok(path)
}

#[cfg(unix)]
fn path() -> Result<PathBuf, String> {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    Ok(native_host::socket_path(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        std::env::var_os("TMPDIR").as_deref(),
        uid,
    ))
}

#[cfg(windows)]
fn path() -> Result<PathBuf, String> {
    let local = std::env::var_os("LOCALAPPDATA").ok_or("LOCALAPPDATA is not set")?;
    Ok(native_host::address_path(&local))
}

#[cfg(unix)]
fn make_private_folder(folder: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // SAFETY: as above.
    let uid = unsafe { libc::getuid() };
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
    Ok(())
}

#[cfg(windows)]
fn make_private_folder(folder: &Path) -> Result<(), String> {
    // Inside the user's profile, whose permissions it inherits.
    fs::create_dir_all(folder).map_err(|error| format!("cannot make {}: {error}", folder.display()))
}

/// Opens a file of the keeper's folder for writing, created for this user only (on Unix 0600,
/// and never through a link).
pub fn open_private(path: &Path, append: bool) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// The keeper's listening socket.
pub struct Listener {
    #[cfg(unix)]
    inner: std::os::unix::net::UnixListener,
    #[cfg(windows)]
    inner: std::net::TcpListener,
    #[cfg(windows)]
    tokens: (LaneToken, LaneToken),
}

/// A client proves itself and the keeper answers (Windows) within this, in all: a client
/// that drips its bytes holds no thread for longer.
#[cfg(windows)]
pub const ADMISSION_DEADLINE: Duration = Duration::from_secs(3);

impl Listener {
    /// Listens at `path` (on Windows: on a new loopback port, written to `path` with a new
    /// token). Whatever was at `path` is replaced: a keeper that died left it behind.
    pub fn bind(path: &Path) -> Result<Self, String> {
        let failed = |error: io::Error| format!("cannot listen on {}: {error}", path.display());
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot replace {}: {error}", path.display())),
        }
        #[cfg(unix)]
        {
            let inner = std::os::unix::net::UnixListener::bind(path).map_err(failed)?;
            Ok(Self { inner })
        }
        #[cfg(windows)]
        {
            let inner = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(failed)?;
            let port = inner.local_addr().map_err(failed)?.port();
            let client = LaneToken::new(&mut rand_core::OsRng);
            let keeper = LaneToken::new(&mut rand_core::OsRng);
            // Written whole under another name, then renamed: a client never reads half.
            let partial = path.with_extension("partial");
            fs::write(
                &partial,
                keeper_address(port, client.as_str(), keeper.as_str()),
            )
            .and_then(|()| fs::rename(&partial, path))
            .map_err(failed)?;
            Ok(Self {
                inner,
                tokens: (client, keeper),
            })
        }
    }

    /// The next connection, not yet admitted (see [`Admission`]).
    pub fn accept(&self) -> io::Result<Stream> {
        let (stream, _) = self.inner.accept()?;
        #[cfg(windows)]
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// What a connection's first bytes must show, checked on its own thread.
    pub fn admission(&self) -> Admission {
        Admission {
            #[cfg(windows)]
            tokens: self.tokens.clone(),
        }
    }
}

/// On Windows, the token a connection must send as its first line (any local program can
/// reach a loopback port) and the keeper's answer; on Unix the socket's folder already
/// admitted it.
pub struct Admission {
    #[cfg(windows)]
    tokens: (LaneToken, LaneToken),
}

impl Admission {
    /// Whether the connection may go on: on Windows its first line, read within
    /// [`ADMISSION_DEADLINE`], is the client token, answered with the keeper's.
    pub fn admits(&self, stream: &Stream) -> bool {
        #[cfg(windows)]
        {
            use std::io::Write;
            let (client, keeper) = &self.tokens;
            read_line_within(stream, ADMISSION_DEADLINE).is_some_and(|line| client.matches(&line))
                && (&*stream)
                    .write_all(format!("{}\n", keeper.as_str()).as_bytes())
                    .is_ok()
        }
        #[cfg(unix)]
        {
            let _ = stream;
            true
        }
    }
}

/// A line of at most 200 bytes, read a byte at a time (what follows stays unread) within
/// `limit` in all; `None` past it, or for anything else.
#[cfg(windows)]
fn read_line_within(stream: &Stream, limit: Duration) -> Option<String> {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    let mut line = Vec::new();
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let mut byte = [0u8];
        match (&*stream).read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => return String::from_utf8(line).ok(),
            Ok(1) if line.len() < 200 => line.push(byte[0]),
            _ => return None,
        }
    }
}
/// Connects to the keeper at `path` (on Windows: the port in that file, then its token).
pub fn connect(path: &Path) -> io::Result<Stream> {
    #[cfg(unix)]
    {
        Stream::connect(path)
    }
    #[cfg(windows)]
    {
        use std::io::Write;
        let text = fs::read_to_string(path)?;
        let (port, client, keeper) = parse_keeper_address(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a keeper's address"))?;
        let mut stream = Stream::connect(("127.0.0.1", port))?;
        // A keystroke goes at once, not after the peer's delayed acknowledgement.
        stream.set_nodelay(true)?;
        stream.write_all(format!("{client}\n").as_bytes())?;
        // Nothing more before the keeper proved it read the same file.
        let answer = read_line_within(&stream, ADMISSION_DEADLINE);
        if !answer.is_some_and(|line| same_secret(&line, keeper)) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("what answers on port {port} is not this user's keeper"),
            ));
        }
        stream.set_read_timeout(None)?;
        Ok(stream)
    }
}

/// Stdout without Rust's line buffering (a copy of its descriptor or handle): a chunk of
/// bytes is one write, where `Stdout` would write up to its last newline and then the rest.
pub fn raw_stdout() -> io::Result<fs::File> {
    #[cfg(unix)]
    let owned = std::os::fd::AsFd::as_fd(&io::stdout()).try_clone_to_owned()?;
    #[cfg(windows)]
    let owned = std::os::windows::io::AsHandle::as_handle(&io::stdout()).try_clone_to_owned()?;
    Ok(fs::File::from(owned))
}

/// Windows: this process's standard handles (for a native host, the browser's pipes) are
/// not inherited by the children it starts, whatever else std lets them inherit. A keeper
/// holding the browser's pipe would keep the browser from seeing this host end.
#[cfg(windows)]
pub fn keep_stdio_from_children() {
    use std::os::windows::io::AsRawHandle;
    #[link(name = "kernel32")]
    extern "system" {
        fn SetHandleInformation(handle: *mut core::ffi::c_void, mask: u32, flags: u32) -> i32;
    }
    const HANDLE_FLAG_INHERIT: u32 = 1;
    let handles = [
        io::stdin().as_raw_handle(),
        io::stdout().as_raw_handle(),
        io::stderr().as_raw_handle(),
    ];
    for handle in handles {
        // SAFETY: a handle of this process's own (or null, which the call refuses), and
        // only its inherit flag changes.
        unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0) };
    }
}
