//! A project's connection as the popup and the badge show it, and how it moves: the
//! restore window, the cells' steps, the probe's report, restarts and CPU/GPU switches.

use serde::{Deserialize, Serialize};

use crate::cells::{CellAction, CellRole};
use crate::render::ProbeReport;
use crate::settings::Route;

/// Where a project's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// No relay settings yet: nothing can run.
    NotSetUp,
    /// The notebook is known but nothing was asked (auto-connect off, no click).
    Ready,
    /// AI Studio is restoring the persistent home (HTTP 492): nothing may run yet.
    Restoring,
    /// The instance is not ready yet (a 502, or an HTML page where Jupyter's JSON was due).
    Starting,
    /// The site's login expired (a login page where Jupyter's JSON was due): log in again.
    LoggedOut,
    /// A cell is running in the extension's own terminal (or kernel).
    Running,
    /// The probe saw the tunnel up.
    Up,
    /// The tunnel is not up (connecting, retrying or stopped); `reason` says what it saw.
    Down,
    /// A step failed; `reason` says which and why.
    Error,
    /// The user stopped the tunnel.
    Disconnected,
}

/// The container's accelerator as the probe saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// `cpu`, `nvidia`, `iluvatar` or `dcu`.
    pub kind: String,
    /// The first device's name, such as `Tesla V100-SXM2-32GB`.
    pub device: Option<String>,
    pub hostname: String,
}

/// What the popup shows of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    pub phase: Phase,
    /// The running step, while `phase` is `running`.
    pub step: Option<CellRole>,
    /// Why the tunnel is down or what failed, in words.
    pub reason: Option<String>,
    pub environment: Option<Environment>,
    /// The Jupyter Server's start time last seen, and its zone: a change means a new container.
    pub jupyter_started: Option<String>,
    pub zone: Option<String>,
    /// Set when the last ready notebook was a new container: `restarted` or `switched`.
    pub change: Option<String>,
    /// Whether the companion notebook could be written (`saved`), or why not.
    pub notebook: Option<String>,
}

/// `ProjectStatus::notebook` when the companion notebook was written.
const NOTEBOOK_SAVED: &str = "saved";
/// `ProjectStatus::notebook` starts so when the container refused it (with the HTTP status).
const NOTEBOOK_REFUSED: &str = "refused";

impl Default for ProjectStatus {
    fn default() -> Self {
        Self {
            phase: Phase::Ready,
            step: None,
            reason: None,
            environment: None,
            jupyter_started: None,
            zone: None,
            change: None,
            notebook: None,
        }
    }
}

/// What happened to a project.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ConnectionEvent {
    NoSettings,
    Restoring,
    /// The gateway answered for an instance that is not up yet (see `gateway::Answer::Starting`).
    Starting,
    /// The gateway answered with a login (see `gateway::Answer::LoggedOut`).
    LoggedOut,
    #[serde(rename_all = "camelCase")]
    JupyterReady {
        started: String,
        zone: String,
    },
    StepStarted {
        step: CellRole,
    },
    StepFailed {
        step: CellRole,
        output: String,
    },
    /// The probe cell's output (one JSON line, possibly after other lines).
    Probed {
        output: String,
    },
    /// The companion notebook was written through the Contents API, or refused (`status`).
    NotebookSaved {
        ok: bool,
        status: u16,
    },
    Disconnected,
    Failed {
        reason: String,
    },
}

/// The most characters a status keeps of a reason (the tail of a script's output, a page's
/// error); the container and the page are not trusted to keep stored text small.
const MAX_REASON_CHARS: usize = 600;
/// The most characters kept of a short value the container or page reports: a host name
/// (253 at most in DNS), a device name, a zone, a start time, an accelerator kind.
const MAX_NAME_CHARS: usize = 253;

/// At most `max` characters of `text`, control characters (other than newlines, which
/// reasons keep) as blanks; an ellipsis marks a cut.
fn bounded(text: &str, max: usize) -> String {
    let mut kept: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        kept.push('…');
    }
    kept
}

/// A short value on one line, bounded (see [`MAX_NAME_CHARS`]).
fn bounded_name(text: &str) -> String {
    bounded(&text.replace('\n', " "), MAX_NAME_CHARS)
}

/// `GPU 0: Tesla V100-SXM2-32GB (UUID: ...)` -> `Tesla V100-SXM2-32GB`.
fn device_name(line: &str) -> String {
    let name = line.split_once(": ").map_or(line, |(_, rest)| rest);
    name.split(" (UUID")
        .next()
        .unwrap_or(name)
        .trim()
        .to_owned()
}

fn step_name(step: CellRole) -> &'static str {
    match step {
        CellRole::Provision => "provisioning",
        CellRole::Tunnel => "tunnel",
        CellRole::Bridge => "bridge",
        CellRole::Probe => "probe",
    }
}

/// The last lines of a failed step's output: where scripts say what went wrong.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("\n")
}

impl ProjectStatus {
    /// The status after `event`. `host_fingerprint` is the container host key this browser
    /// holds for the project: a container serving another key is an error, not "up".
    pub fn apply(&self, event: ConnectionEvent, host_fingerprint: &str) -> ProjectStatus {
        let mut next = ProjectStatus {
            step: None,
            ..self.clone()
        };
        match event {
            ConnectionEvent::NoSettings => {
                next.phase = Phase::NotSetUp;
                next.reason = None;
            }
            // What the platform answers while Jupyter is not reachable. A disconnect stays the
            // user's choice (the next ready notebook must not undo it), and cells another
            // frame runs go on.
            ConnectionEvent::Restoring | ConnectionEvent::Starting | ConnectionEvent::LoggedOut
                if matches!(self.phase, Phase::Disconnected | Phase::Running) =>
            {
                next.step = self.step;
            }
            ConnectionEvent::Restoring => {
                next.phase = Phase::Restoring;
                next.reason = None;
            }
            ConnectionEvent::Starting => {
                next.phase = Phase::Starting;
                next.reason = None;
            }
            ConnectionEvent::LoggedOut => {
                next.phase = Phase::LoggedOut;
                next.reason = None;
            }
            ConnectionEvent::JupyterReady { started, zone } => {
                let (started, zone) = (bounded_name(&started), bounded_name(&zone));
                let change = match (&self.jupyter_started, &self.zone) {
                    (Some(_), Some(old_zone)) if *old_zone != zone => Some("switched"),
                    (Some(old), _) if *old != started => Some("restarted"),
                    _ => None,
                };
                if let Some(change) = change {
                    // A new container: what the probe saw of the old one no longer holds.
                    next.change = Some(change.into());
                    next.environment = None;
                }
                next.jupyter_started = Some(started);
                next.zone = Some(zone);
                match self.phase {
                    Phase::Restoring | Phase::Starting | Phase::LoggedOut | Phase::NotSetUp => {
                        next.phase = Phase::Ready
                    }
                    // Another frame or tab of the project while cells run: they go on.
                    Phase::Running => next.step = self.step,
                    // The tunnel of the old container went with it (a disconnect stays the user's choice).
                    Phase::Up | Phase::Down | Phase::Error if change.is_some() => {
                        next.phase = Phase::Ready;
                        next.reason = None;
                    }
                    _ => {}
                }
            }
            ConnectionEvent::StepStarted { step } => {
                next.phase = Phase::Running;
                next.step = Some(step);
                next.reason = None;
            }
            ConnectionEvent::StepFailed { step, output } => {
                next.phase = Phase::Error;
                next.reason = Some(format!("{} failed: {}", step_name(step), tail(&output)));
            }
            ConnectionEvent::Probed { output } => match ProbeReport::from_output(&output) {
                None => {
                    next.phase = Phase::Error;
                    next.reason = Some(format!("the probe printed no report: {}", tail(&output)));
                }
                Some(report) => {
                    next.environment = Some(Environment {
                        kind: match report.accelerator.kind.as_str() {
                            "none" => "cpu".into(),
                            other => bounded_name(other),
                        },
                        device: report
                            .accelerator
                            .devices
                            .first()
                            .map(|d| bounded_name(&device_name(d))),
                        hostname: bounded_name(&report.hostname),
                    });
                    (next.phase, next.reason) = match (report.host_keys.stable, report.service) {
                        (Some(stable), _) if stable != host_fingerprint => (
                            Phase::Error,
                            Some(format!(
                                "the container serves host key {stable}, not this browser's {host_fingerprint}: \
                                 the container got its keys from another browser or profile"
                            )),
                        ),
                        (None, _) => (
                            Phase::Error,
                            Some("the container has no host key of this project: provisioning did not run".into()),
                        ),
                        (_, service) if service.state == "up" => (Phase::Up, None),
                        (_, service) => (
                            Phase::Down,
                            Some(match service.detail {
                                Some(detail) if !detail.is_empty() => {
                                    format!("{} {}: {detail}", service.name, service.state)
                                }
                                _ => format!("{} {}", service.name, service.state),
                            }),
                        ),
                    };
                }
            },
            ConnectionEvent::NotebookSaved { ok, status } => {
                next.step = self.step;
                next.notebook = Some(if ok {
                    NOTEBOOK_SAVED.into()
                } else {
                    format!("{NOTEBOOK_REFUSED} ({status})")
                });
            }
            ConnectionEvent::Disconnected => {
                next.phase = Phase::Disconnected;
                next.reason = None;
            }
            ConnectionEvent::Failed { reason } => {
                next.phase = Phase::Error;
                next.reason = Some(reason);
            }
        }
        next.reason = next.reason.map(|reason| bounded(&reason, MAX_REASON_CHARS));
        next
    }

    /// The toolbar badge: a short text and a colour.
    pub fn badge(&self) -> Badge {
        let (text, color) = match self.phase {
            Phase::NotSetUp => ("set", "#9e9e9e"),
            Phase::Ready | Phase::Disconnected => ("", "#9e9e9e"),
            Phase::Restoring | Phase::Starting | Phase::Running => ("…", "#f9a825"),
            Phase::LoggedOut => ("!", "#c62828"),
            Phase::Up => ("on", "#2e7d32"),
            Phase::Down => ("off", "#ef6c00"),
            Phase::Error => ("!", "#c62828"),
        };
        Badge {
            text: text.into(),
            color: color.into(),
        }
    }
}

/// What the toolbar button shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct Badge {
    pub text: String,
    pub color: String,
}

/// Whether the extension runs the cells by itself when a notebook's Jupyter is ready:
/// only with settings, with auto-connect on, not after the user disconnected, and not while
/// the same container's tunnel is up or being set up (another tab or a reload of the
/// page: the tunnel's supervisor keeps it up, and a second run could undo a Disconnect
/// clicked meanwhile). A new container's status is `ready` again (see `JupyterReady`).
pub fn connects_by_itself(status: &ProjectStatus, has_settings: bool, auto_connect: bool) -> bool {
    has_settings
        && auto_connect
        && !matches!(
            status.phase,
            Phase::Disconnected | Phase::Running | Phase::Up
        )
}

/// After the tunnel cell, the probe is repeated until the tunnel is up or this many tries:
/// the supervisor reports "up" once ssh held the forward for 3 s.
pub const PROBE_TRIES: u32 = 15;
/// The pause between two probes of one connect.
pub const PROBE_INTERVAL_MS: u32 = 2_000;

/// After probe number `tries` of an `action` (1 for the first), the milliseconds to wait
/// before probing again, or `None` when this was the last: only a connect waits for its
/// tunnel, and only while the probe sees it down.
pub fn probe_again_after_ms(action: CellAction, status: &ProjectStatus, tries: u32) -> Option<u32> {
    (action == CellAction::Connect && status.phase == Phase::Down && tries < PROBE_TRIES)
        .then_some(PROBE_INTERVAL_MS)
}

/// The auto-connect setting to store after `status`, if it changes: unset until the first
/// time a tunnel is up, which turns it on (the user can turn it off; that sticks).
pub fn auto_connect_after(status: &ProjectStatus, stored: Option<bool>) -> Option<bool> {
    (stored.is_none() && status.phase == Phase::Up).then_some(true)
}

/// What the popup shows of a project: the state, the command to type, and what to offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    pub project_id: String,
    /// How ssh reaches the project; `None` while its settings cannot render (the relay route
    /// chosen with no relay set).
    pub route: Option<Route>,
    pub status: Option<ProjectStatus>,
    /// The `Host` of the user's ssh config.
    pub host_alias: String,
    /// What the user types: `ssh <host alias>`.
    pub command: String,
    /// The companion notebook, relative to the Jupyter root.
    pub notebook_path: String,
    /// The container refused the companion notebook: offer it as a download instead.
    pub offer_notebook_download: bool,
}

impl ProjectView {
    pub fn new(project_id: &str, route: Option<Route>, status: Option<ProjectStatus>) -> Self {
        let host_alias = crate::render::host_alias_of(project_id);
        let offer_notebook_download = status
            .as_ref()
            .and_then(|status| status.notebook.as_deref())
            .is_some_and(|notebook| notebook.starts_with(NOTEBOOK_REFUSED));
        Self {
            project_id: project_id.to_owned(),
            route,
            status,
            command: format!("ssh {host_alias}"),
            host_alias,
            notebook_path: crate::cells::COMPANION_NOTEBOOK_PATH.to_owned(),
            offer_notebook_download,
        }
    }
}
