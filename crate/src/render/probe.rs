//! The probe: the cell that prints one JSON line about the container, and that line's
//! contract, [`ProbeReport`], read here. Both ends of the contract live in this module and
//! `crate/src/scripts/probe.py`; the real-OpenSSH tests run the probe and read its line here.

use serde::{Deserialize, Serialize};

use super::container::CONTAINER_STATE_DIR;
use super::{fill_here_document, script};
use crate::settings::{Route, Settings};

const PROBE_SOURCE: &str = include_str!("../scripts/probe.sh");
const PROBE_PROGRAM: &str = include_str!("../scripts/probe.py");

/// The probe cell: prints one JSON line describing the container and the connection (a
/// [`ProbeReport`]).
pub fn render_probe(settings: &Settings) -> String {
    let probe = script(
        PROBE_SOURCE,
        &[
            ("project", &settings.project),
            ("state_dir", CONTAINER_STATE_DIR),
            ("service", service_name(settings.route())),
        ],
        &[],
    );
    fill_here_document(&probe, "AISTUDIO_SSH_PROBE", PROBE_PROGRAM)
}

/// The probe's JSON line, as `probe.py` prints it. Fields the connection's status does not
/// need may be missing (a line from another version of the probe still reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// The container's host name.
    pub hostname: String,
    /// When the container's PID 1 started, in seconds since the epoch.
    pub init_started: Option<u64>,
    /// The provisioning's `PROJECT SECONDS` line since the container started.
    pub provisioned: Option<String>,
    pub accelerator: ProbeAccelerator,
    pub host_keys: ProbeHostKeys,
    #[serde(default)]
    pub sshd: ProbeSshd,
    /// The route's service; earlier probes named it `tunnel` (and had no other).
    #[serde(alias = "tunnel")]
    pub service: ProbeService,
}

/// What the probe calls the service of `route`: also the name of its status file.
fn service_name(route: Route) -> &'static str {
    match route {
        Route::Relay => "tunnel",
        Route::Direct => "bridge",
    }
}

/// The accelerator the container has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeAccelerator {
    /// `none`, `nvidia`, `iluvatar` or `dcu`.
    pub kind: String,
    /// The devices as the vendor's tool lists them, such as
    /// `GPU 0: Tesla V100-SXM2-32GB (UUID: ...)`.
    pub devices: Vec<String>,
}

/// Fingerprints (`SHA256:...`) of the container's ed25519 host keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeHostKeys {
    /// The image's own, which changes with every container.
    pub system: Option<String>,
    /// The project's stable host key, which provisioning installed; `None` before it ran.
    pub stable: Option<String>,
}

/// The user-mode sshd that provisioning started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSshd {
    /// `user` or `system` (see the provisioning's `sshd.mode`); `None` before it ran.
    pub mode: Option<String>,
    pub running: bool,
}

/// The status of the route's service: the tunnel's or the bridge's supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeService {
    /// `tunnel` or `bridge`.
    #[serde(default = "tunnel_name")]
    pub name: String,
    /// `up`, `connecting`, `down` or `stopped`.
    pub state: String,
    /// What it last saw, in words.
    pub detail: Option<String>,
}

fn tunnel_name() -> String {
    service_name(Route::Relay).to_owned()
}

impl ProbeReport {
    /// The report in a probe cell's output: its last line that reads as one (the cell may
    /// print other lines before it). `None` when no line does.
    pub fn from_output(output: &str) -> Option<Self> {
        output
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line.trim()).ok())
    }
}
