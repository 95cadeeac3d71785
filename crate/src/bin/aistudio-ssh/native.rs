//! The helper's side of direct mode: registering it with the user's browsers as a native
//! messaging host (`install`, `uninstall`), and being that host (`native-host`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use aistudio_ssh::native_host::{
    self, host_manifest, is_extension_id, Browser, BrowserFamily, BROWSERS, HOST_NAME,
};

pub const USAGE: &str =
    "       aistudio-ssh install [--extension-id ID]... [--dir DIR --browser chromium|firefox]
       aistudio-ssh uninstall [--dir DIR]
       aistudio-ssh native-host
       aistudio-ssh proxy aistudio-PROJECT

install registers this program as the browsers' native messaging host for the extension
(Chrome, Chromium, Edge, Brave, Firefox: each one whose settings folder exists; on Windows
a manifest under %LOCALAPPDATA%\\aistudio-ssh and the browser's registry key under HKCU),
or in DIR only; --extension-id adds a store's id. It prints every file and key it wrote.
uninstall removes exactly those. native-host is what the browser starts; it
starts (or reaches) the keeper, which serves proxy on a socket of this user's
($XDG_RUNTIME_DIR/aistudio-ssh/helper.sock, else $TMPDIR/aistudio-ssh-UID/helper.sock; on
Windows a loopback port named in %LOCALAPPDATA%\\aistudio-ssh\\helper.address) and
keeps open sessions while the browser's extension restarts. proxy is ssh's ProxyCommand in direct mode
(ProxyCommand aistudio-ssh proxy %n): it connects stdin and stdout to the project's sshd
through the browser; it exits 255 with the reason when it cannot.";

/// Where `install` writes: a browser's manifest folder, or the one the user named.
struct Target {
    name: String,
    family: BrowserFamily,
    dir: PathBuf,
    /// On Windows, the browser's registry key that names the manifest.
    registry_key: Option<String>,
}

#[derive(Default)]
struct Options {
    extension_ids: Vec<String>,
    dir: Option<PathBuf>,
    family: Option<BrowserFamily>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--extension-id" => {
                let id = value()?;
                if !is_extension_id(&id) {
                    return Err(format!(
                        "--extension-id {id:?} is not an extension id: 32 letters a to p \
                         (Chromium) or a gecko id such as name@example.org (Firefox)"
                    ));
                }
                options.extension_ids.push(id);
            }
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            "--browser" => {
                options.family = Some(match value()?.as_str() {
                    "chromium" => BrowserFamily::Chromium,
                    "firefox" => BrowserFamily::Firefox,
                    other => return Err(format!("--browser {other:?} is not chromium or firefox")),
                })
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if options.family.is_some() && options.dir.is_none() {
        return Err("--browser goes with --dir".into());
    }
    Ok(options)
}

/// The manifest folders of the browsers this user has (their settings folder exists; on
/// Windows for `every`, all the browsers we know: a key outlives its browser's folder).
fn browser_targets(every: bool) -> Result<Vec<Target>, String> {
    if cfg!(windows) {
        return windows_targets(every);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or("HOME is not set")?;
    let folder = |browser: &Browser| {
        home.join(if cfg!(target_os = "macos") {
            browser.macos_dir
        } else {
            browser.linux_dir
        })
    };
    Ok(BROWSERS
        .iter()
        .map(|browser| Target {
            name: browser.name.to_owned(),
            family: browser.family,
            dir: folder(browser),
            registry_key: None,
        })
        // The browser's own settings folder, the manifest folder's parent, says it is there.
        .filter(|target| target.dir.parent().is_some_and(Path::is_dir))
        .collect())
}

/// Windows: each browser whose folder is in `%LOCALAPPDATA%` (or `every` one), its registry
/// key, and the manifest of its family, which the key names.
fn windows_targets(every: bool) -> Result<Vec<Target>, String> {
    let local = std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .ok_or("LOCALAPPDATA is not set")?;
    Ok(BROWSERS
        .iter()
        .filter(|browser| every || local.join(browser.windows_dir).is_dir())
        .map(|browser| Target {
            name: browser.name.to_owned(),
            family: browser.family,
            dir: local.join(browser.family.windows_manifest_dir()),
            registry_key: Some(browser.registry_key()),
        })
        .collect())
}

/// Runs `reg.exe` (Windows) from System32, never one beside this program (where Windows
/// looks first for a bare name); `Ok(false)` when it says no (a key that is not there).
fn reg(args: &[&str]) -> Result<bool, String> {
    let windows =
        std::env::var_os("SystemRoot").map_or_else(|| PathBuf::from(r"C:\Windows"), PathBuf::from);
    let output = Command::new(windows.join("System32").join("reg.exe"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run reg.exe: {error}"))?;
    Ok(output.status.success())
}

/// Sets the key's default value to the manifest's path.
fn register(key: &str, manifest: &Path) -> Result<(), String> {
    let path = manifest
        .to_str()
        .ok_or("the manifest's path is not UTF-8")?;
    if reg(&["add", key, "/ve", "/t", "REG_SZ", "/d", path, "/f"])? {
        Ok(())
    } else {
        Err(format!("reg.exe could not set {key}"))
    }
}

/// Deletes the key (ours: its name is our host's); `false` when it was not there.
fn unregister(key: &str) -> Result<bool, String> {
    if !reg(&["query", key, "/ve"])? {
        return Ok(false);
    }
    if reg(&["delete", key, "/f"])? {
        Ok(true)
    } else {
        Err(format!("reg.exe could not delete {key}"))
    }
}

fn targets(options: &Options, every: bool) -> Result<Vec<Target>, String> {
    match (&options.dir, options.family) {
        (Some(dir), family) => Ok(vec![Target {
            name: dir.display().to_string(),
            family: family.unwrap_or(BrowserFamily::Chromium),
            dir: dir.clone(),
            registry_key: None,
        }]),
        (None, _) => browser_targets(every),
    }
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(native_host::manifest_file_name())
}

pub fn install(args: &[String]) -> ExitCode {
    let options = match parse_options(args) {
        Ok(options) => options,
        Err(usage) => return fail(2, &usage),
    };
    let result = (|| {
        // Absolute on Windows already, where canonicalizing would give a `\\?\` path
        // that a browser may not start.
        let binary = std::env::current_exe()
            .and_then(|path| {
                if cfg!(windows) {
                    Ok(path)
                } else {
                    fs::canonicalize(path)
                }
            })
            .map_err(|error| format!("cannot find this program's path: {error}"))?;
        let binary = binary
            .to_str()
            .ok_or("this program's path is not UTF-8")?
            .to_owned();
        let targets = targets(&options, false)?;
        if targets.is_empty() {
            return Err(
                "no Chrome, Chromium, Edge, Brave or Firefox settings folder found; \
                        start the browser once, or name a folder with --dir"
                    .into(),
            );
        }
        for target in targets {
            let manifest = host_manifest(target.family, &binary, &options.extension_ids);
            let path = manifest_path(&target.dir);
            fs::create_dir_all(&target.dir)
                .and_then(|()| fs::write(&path, format!("{manifest:#}\n")))
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            println!("{}: wrote {}", target.name, path.display());
            if let Some(key) = &target.registry_key {
                register(key, &path)?;
                println!("{}: set {key} to {}", target.name, path.display());
            }
        }
        Ok(())
    })();
    finish(result)
}

pub fn uninstall(args: &[String]) -> ExitCode {
    let options = match parse_options(args) {
        Ok(options) => options,
        Err(usage) => return fail(2, &usage),
    };
    let result = (|| {
        for target in targets(&options, true)? {
            if let Some(key) = &target.registry_key {
                if unregister(key)? {
                    println!("{}: removed {key}", target.name);
                }
            }
            let path = manifest_path(&target.dir);
            let ours = fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|manifest| manifest["name"] == HOST_NAME);
            if !ours {
                continue;
            }
            fs::remove_file(&path)
                .map_err(|error| format!("cannot remove {}: {error}", path.display()))?;
            println!("{}: removed {}", target.name, path.display());
        }
        Ok(())
    })();
    finish(result)
}

/// Bad usage has exited with 2 already; what is left is about files and folders: 1.
fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(1, &error),
    }
}

fn fail(code: u8, error: &str) -> ExitCode {
    eprintln!("aistudio-ssh: {error}");
    ExitCode::from(code)
}

/// Serves the browser (the extension's messages) and `aistudio-ssh proxy` connections until
/// the browser closes stdin.
pub fn native_host() -> ExitCode {
    report("native-host", pipe())
}

/// `aistudio-ssh keeper`: what the native host starts to hold the streams (see `host`).
pub fn keeper() -> ExitCode {
    report("keeper", keep())
}

fn report(what: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // stderr reaches the browser's log; stdout belongs to the protocol.
            eprintln!("aistudio-ssh {what}: {error}");
            ExitCode::from(1)
        }
    }
}

#[cfg(any(unix, windows))]
fn pipe() -> Result<(), String> {
    crate::host::native_host()
}

#[cfg(any(unix, windows))]
fn keep() -> Result<(), String> {
    crate::host::keep()
}

#[cfg(not(any(unix, windows)))]
fn pipe() -> Result<(), String> {
    Err(UNSUPPORTED.into())
}

#[cfg(not(any(unix, windows)))]
fn keep() -> Result<(), String> {
    Err(UNSUPPORTED.into())
}

#[cfg(not(any(unix, windows)))]
pub const UNSUPPORTED: &str = "direct mode's helper runs on Linux, macOS and Windows";
