//! The keeper's socket, which only its user can use, per system: on Linux and macOS a Unix
//! socket in a folder of the user's own (0700); on Windows, whose std has no Unix socket, a
//! loopback port whose address and token sit in a file of the user's profile
//! (`%LOCALAPPDATA%\aistudio-ssh`, closed to others like the rest of the profile), and a
//! client's first line is that token.

use std::fs;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use aistudio_ssh::native_host;
#[cfg(windows)]
use aistudio_ssh::native_host::{keeper_address, parse_keeper_address, LaneToken, SOCKET_DIR};

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
    Ok(PathBuf::from(local)
        .join(SOCKET_DIR)
        .join(native_host::KEEPER_ADDRESS_FILE))
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
    token: LaneToken,
}

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
            let token = LaneToken::new(&mut rand_core::OsRng);
            // Written whole under another name, then renamed: a client never reads half.
            let partial = path.with_extension("partial");
            fs::write(&partial, keeper_address(port, token.as_str()))
                .and_then(|()| fs::rename(&partial, path))
                .map_err(failed)?;
            Ok(Self { inner, token })
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
            token: self.token.clone(),
        }
    }
}

/// On Windows, the token a connection must send as its first line (any local program can
/// reach a loopback port); on Unix the socket's folder already admitted it.
pub struct Admission {
    #[cfg(windows)]
    token: LaneToken,
}

impl Admission {
    /// Whether the connection may go on (on Windows, its first line read from `reader`).
    pub fn admits(&self, reader: &mut impl BufRead) -> bool {
        #[cfg(windows)]
        {
            let mut line = String::new();
            let read = io::Read::take(&mut *reader, 200).read_line(&mut line);
            read.is_ok() && self.token.matches(line.trim_end())
        }
        #[cfg(unix)]
        {
            let _ = reader;
            true
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
        let (port, token) = parse_keeper_address(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a keeper's address"))?;
        let mut stream = Stream::connect(("127.0.0.1", port))?;
        // A keystroke goes at once, not after the peer's delayed acknowledgement.
        stream.set_nodelay(true)?;
        stream.write_all(format!("{token}\n").as_bytes())?;
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
