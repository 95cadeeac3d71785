//! `aistudio-ssh proxy <alias>`: ssh's `ProxyCommand` in direct mode. It asks the helper (the
//! native messaging host the browser runs) for a stream to the project's sshd, then copies
//! stdin to it and it to stdout.
//!
//! Every failure is one line on stderr and exit 255, which is what ssh itself exits with when
//! a connection fails, so scripts around ssh see one code for "could not connect".

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use aistudio_ssh::native_host::{project_of_alias, ProxyAnswer, ProxyRequest};

/// The helper answers within its 20 s wait for a link; past this it is stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

const NOT_RUNNING: &str = "the helper is not running: open your browser with the AI Studio SSH \
                           extension (and run `aistudio-ssh install` if you have not)";

pub fn proxy(args: &[String]) -> ExitCode {
    let [alias] = args else {
        return fail("usage: aistudio-ssh proxy <aistudio-PROJECT | PROJECT>");
    };
    let Some(project) = project_of_alias(alias) else {
        return fail(&format!(
            "{alias:?} names no project: give aistudio-<project id> (the ssh config's Host) \
             or the project id"
        ));
    };
    match connect(project) {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

fn fail(error: &str) -> ExitCode {
    eprintln!("aistudio-ssh: {error}");
    ExitCode::from(255)
}

fn connect(project: &str) -> Result<ExitCode, String> {
    let path = crate::local::socket_path()?;
    let socket = crate::local::connect(&path).map_err(|error| match error.kind() {
        // The path too: a shell whose XDG_RUNTIME_DIR differs from the browser's looks elsewhere.
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!("{NOT_RUNNING} (no helper at {})", path.display())
        }
        _ => format!("cannot reach the helper at {}: {error}", path.display()),
    })?;
    let request = ProxyRequest {
        project: project.to_owned(),
    };
    let lost = |error: io::Error| format!("the helper closed the connection: {error}");
    (&socket)
        .write_all(request.to_line().as_bytes())
        .map_err(lost)?;
    socket
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(lost)?;
    // The BufReader keeps the first bytes of the stream if they came with the answer.
    let mut from_helper = BufReader::new(socket.try_clone().map_err(lost)?);
    let mut line = String::new();
    match from_helper.read_line(&mut line) {
        Ok(0) => return Err("the helper closed the connection without an answer".into()),
        Ok(_) => {}
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(format!(
                "the helper did not answer within {} s",
                ANSWER_TIMEOUT.as_secs()
            ))
        }
        Err(error) => return Err(lost(error)),
    }
    let answer: ProxyAnswer = serde_json::from_str(line.trim())
        .map_err(|_| format!("the helper answered {:?}, not ok or an error", line.trim()))?;
    if !answer.ok {
        return Err(answer
            .error
            .unwrap_or_else(|| "the helper refused the connection".into()));
    }
    socket.set_read_timeout(None).map_err(lost)?;

    let to_helper = socket;
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut writer = &to_helper;
        // ssh's stdin ending is the end of our side; the other side may still talk.
        let _ = crate::host::copy(&mut stdin, &mut writer);
        let _ = to_helper.shutdown(Shutdown::Write);
    });
    let mut stdout = crate::local::raw_stdout().map_err(|error| error.to_string())?;
    let mut buf = vec![0; 256 * 1024];
    loop {
        match from_helper.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stdout.write_all(&buf[..n]).is_err() {
                    // ssh went away: nothing left to do.
                    return Ok(ExitCode::from(255));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(lost(error)),
        }
    }
    stdout.flush().map_err(|error| error.to_string())?;
    Ok(ExitCode::SUCCESS)
}
