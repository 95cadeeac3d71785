//! Running a cell through a Jupyter terminal (`terminals/websocket/<name>`, frames
//! `["stdin", text]` in and `["stdout", text]` out). A terminal starts in milliseconds where a
//! kernel takes about a second, and a busy notebook kernel cannot block it either.
//!
//! The first line, typed into whatever shell the terminal runs (bash, zsh, fish, with the
//! user's rc files, history tools such as atuin, DEBUG traps), replaces it with a clean
//! `bash --noprofile --norc --noediting` that reads no rc file, inherits no prompt hook and
//! uses no line editor (no prompts, no redraws: the tty's plain line mode); that bash,
//! before it reads any line, turns off its history (the typed lines carry the cell, and with
//! it the container's keys: never into `~/.bash_history`) and echo, then says it is ready.
//! Only then is a line with a secret typed, so the user's shell setup sees none of them.
//!
//! The cell's bash then travels as base64 in short lines (no quoting, no tabs or
//! `!` for the shell to interpret, far below the tty's 4095-byte line limit), one line at a
//! time: each line makes the shell print an acknowledgement, and the next is sent only after
//! it (a tty drops input that arrives faster than the shell reads). It is decoded into
//! a shell variable (never a file: it holds the container's keys) and piped into bash. Output
//! is framed by markers the shell builds at run time, so the typed command cannot match them.

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};

/// Base64 characters per typed line (the whole line stays below the tty's 4095 bytes).
const CHUNK: usize = 3000;

/// Variables through which a user's environment would reach the clean bash: prompt hooks,
/// startup files of non-interactive shells (the cell runs in one), shell options, history.
const UNSET_FOR_CLEAN_BASH: [&str; 11] = [
    "PROMPT_COMMAND",
    "PS0",
    "PS1",
    "PS4",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "HISTFILE",
    "HISTCONTROL",
    "HISTIGNORE",
];

fn begin_marker(nonce: &str) -> String {
    format!("AISTUDIO-SSH-BEGIN-{nonce}")
}
fn end_marker(nonce: &str) -> String {
    format!("AISTUDIO-SSH-END-{nonce}")
}

/// The body of a `%%bash` cell (what bash runs), or the text unchanged.
pub fn bash_body(cell_source: &str) -> &str {
    cell_source.strip_prefix("%%bash\n").unwrap_or(cell_source)
}

/// One typed line: the `["stdin", line]` frame (JSON text), and the text the terminal prints
/// once the shell has read it; the next line waits for that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct TerminalLine {
    pub frame: String,
    pub wait_for: String,
}

/// Why lines could not be made for a terminal.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[non_exhaustive]
pub enum TerminalError {
    /// The nonce goes into markers the shell prints: letters and digits only, not empty.
    InvalidNonce,
}

impl core::fmt::Display for TerminalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidNonce => write!(f, "the nonce must be letters and digits"),
        }
    }
}

impl std::error::Error for TerminalError {}

/// The lines that run `script` in a fresh terminal's shell and then print the end marker
/// with bash's exit status.
///
/// # Errors
/// [`TerminalError::InvalidNonce`] unless `nonce` is letters and digits, not empty.
pub fn terminal_input(script: &str, nonce: &str) -> Result<Vec<TerminalLine>, TerminalError> {
    if nonce.is_empty() || !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(TerminalError::InvalidNonce);
    }
    let (begin, end) = (begin_marker(nonce), end_marker(nonce));
    // Split so the typed text never contains a whole marker; the shell joins the halves.
    let split = |marker: &str| {
        let (a, b) = marker.split_at(marker.len() / 2);
        format!("'{a}''{b}'")
    };
    let ack = |what: &str| format!("AISTUDIO-SSH-ACK-{nonce}-{what}");
    // `unset HISTFILE` first: bash saves its history when it execs. `clean_start` runs in the
    // clean bash before its first prompt; single-quoted for the user's shell
    // (any of sh, bash, zsh, fish reads it the same), so it holds no single quote.
    let (begin_a, begin_b) = begin.split_at(begin.len() / 2);
    let clean_start = format!(
        "unset PROMPT_COMMAND HISTFILE; set +o history +H; stty -echo; PS1=; PS2=; \
         printf \"%s%s\\n\" {begin_a} {begin_b}"
    );
    let mut lines = vec![(
        format!(
            "unset HISTFILE; exec env{} PROMPT_COMMAND='{clean_start}' bash --noprofile --norc --noediting",
            UNSET_FOR_CLEAN_BASH
                .iter()
                .map(|name| format!(" -u {name}"))
                .collect::<String>()
        ),
        format!("{begin}\n"),
    )];
    // A line may arrive twice (a WebSocket cut before its acknowledgement came back makes the
    // page send it again), so each after the first is harmless to repeat: a chunk lands in its
    // own array slot, and the run line runs the cell only once per nonce. The first replaces
    // the shell; it is sent again only while its acknowledgement was never seen (then no
    // other line was sent yet).
    let cell = format!("aistudio_ssh_{nonce}");
    let encoded = Base64::encode_string(script.as_bytes());
    for (index, chunk) in encoded.as_bytes().chunks(CHUNK).enumerate() {
        let chunk = std::str::from_utf8(chunk).expect("base64 is ASCII");
        let ack = ack(&index.to_string());
        lines.push((
            format!("{cell}[{index}]={chunk}; printf '%s\\n' {}", split(&ack)),
            format!("{ack}\n"),
        ));
    }
    let started = ack("run");
    lines.push((
        format!(
            "[ -n \"${{{cell}_ran-}}\" ] || {{ {cell}_ran=1; printf '%s\\n' {}; printf '%s' \"${{{cell}[@]}}\" | base64 -d | bash; \
             printf '\\n%s %s\\n' {} \"$?\"; unset {cell}; }}",
            split(&started),
            split(&end)
        ),
        format!("{started}\n"),
    ));
    Ok(lines
        .into_iter()
        .map(|(line, wait_for)| TerminalLine {
            frame: serde_json::json!(["stdin", format!("{line}\r")]).to_string(),
            wait_for,
        })
        .collect())
}

/// Where to go on after the terminal's WebSocket was cut and reopened: the first line whose
/// acknowledgement is not in `stdout` (what the page saw before the cut, and what the terminal
/// replays to a client that reconnects). Lines from there are sent again: harmless for all
/// but the first, which is only sent again when nothing acknowledged it.
pub fn resume_at(stdout: &str, lines: &[TerminalLine]) -> usize {
    let printed = stdout.replace('\r', "");
    lines
        .iter()
        .position(|line| !printed.contains(&line.wait_for))
        .unwrap_or(lines.len())
}

/// Drops the acknowledgement lines from a terminal's output.
fn without_acks(text: &str, nonce: &str) -> String {
    let prefix = format!("AISTUDIO-SSH-ACK-{nonce}-");
    text.split_inclusive('\n')
        .filter(|line| !line.starts_with(&prefix))
        .collect()
}

/// What a finished terminal run printed and its exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct TerminalResult {
    pub exit_code: i32,
    pub output: String,
}

/// Reads the terminal's output so far (the `stdout` frames' text joined); `None` until the
/// end marker and its status arrived.
pub fn read_terminal_output(stdout: &str, nonce: &str) -> Option<TerminalResult> {
    let text = without_acks(&stdout.replace("\r\n", "\n").replace('\r', ""), nonce);
    let begin = begin_marker(nonce);
    let end = end_marker(nonce);
    let after_begin = text
        .find(&format!("{begin}\n"))
        .map(|at| at + begin.len() + 1)?;
    let rest = &text[after_begin..];
    let end_at = rest.find(&format!("\n{end} "))?;
    let status_line = rest[end_at + end.len() + 2..].split('\n').next()?;
    if !rest[end_at + end.len() + 2..].contains('\n') {
        return None; // the status is not complete yet
    }
    Some(TerminalResult {
        exit_code: status_line.trim().parse().ok()?,
        output: rest[..end_at].to_owned(),
    })
}
