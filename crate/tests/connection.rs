//! The connection state as the popup shows it, driven by events.
use aistudio_ssh::cells::{CellAction, CellRole};
use aistudio_ssh::connection::{
    auto_connect_after, connects_by_itself, probe_again_after_ms, ConnectionEvent as E, Phase,
    ProjectStatus, ProjectView, PROBE_INTERVAL_MS, PROBE_TRIES,
};
use aistudio_ssh::settings::Route;

const HOST_FP: &str = "SHA256:stable";

fn probe(tunnel: &str, stable: &str, accelerator: &str) -> E {
    E::Probed {
        output: format!(
            "some noise\n{{\"hostname\": \"jupyter-1\", \"initStarted\": 1, \"provisioned\": \"x\", \"accelerator\": {accelerator}, \
             \"hostKeys\": {{\"system\": \"SHA256:sys\", \"stable\": \"{stable}\"}}, \"sshd\": {{\"mode\": \"user\", \"running\": true}}, \
             \"tunnel\": {{\"state\": \"{tunnel}\", \"detail\": \"relay r:443\"}}}}\n"
        ),
    }
}

const GPU: &str = r#"{"kind": "nvidia", "devices": ["GPU 0: Tesla V100-SXM2-32GB (UUID: GPU-1)"]}"#;
const CPU: &str = r#"{"kind": "none", "devices": []}"#;

fn ready(started: &str, zone: &str) -> E {
    E::JupyterReady {
        started: started.into(),
        zone: zone.into(),
    }
}

#[test]
fn a_connect_goes_restoring_running_up_with_the_environment() {
    let s = ProjectStatus::default().apply(E::Restoring, HOST_FP);
    assert_eq!(s.phase, Phase::Restoring);
    let s = s.apply(ready("t1", "bd-gpu-01"), HOST_FP);
    assert_eq!((s.phase, s.change.clone()), (Phase::Ready, None));
    let s = s.apply(
        E::StepStarted {
            step: CellRole::Provision,
        },
        HOST_FP,
    );
    assert_eq!(
        (s.phase, s.step),
        (Phase::Running, Some(CellRole::Provision))
    );
    let s = s.apply(probe("up", HOST_FP, GPU), HOST_FP);
    assert_eq!((s.phase, s.step, s.reason.clone()), (Phase::Up, None, None));
    let env = s.environment.clone().unwrap();
    assert_eq!(
        (
            env.kind.as_str(),
            env.device.as_deref(),
            env.hostname.as_str()
        ),
        ("nvidia", Some("Tesla V100-SXM2-32GB"), "jupyter-1")
    );
    assert_eq!(s.badge().text, "on");
}

#[test]
fn restarts_and_switches_are_told_apart_and_forget_the_old_environment() {
    let up = ProjectStatus::default()
        .apply(ready("t1", "bd-cpu-01"), HOST_FP)
        .apply(probe("up", HOST_FP, CPU), HOST_FP);
    assert_eq!(up.environment.as_ref().unwrap().kind, "cpu");
    let restarted = up.apply(ready("t2", "bd-cpu-01"), HOST_FP);
    assert_eq!(
        (restarted.change.as_deref(), restarted.environment.is_none()),
        (Some("restarted"), true)
    );
    let switched = up.apply(ready("t3", "bd-gpu-01"), HOST_FP);
    assert_eq!(switched.change.as_deref(), Some("switched"));
    // The same server seen again (another frame of the page) changes nothing.
    assert_eq!(up.apply(ready("t1", "bd-cpu-01"), HOST_FP).change, None);
    // A second restart in a row is a restart too, and forgets the environment again.
    let again = restarted
        .apply(probe("up", HOST_FP, CPU), HOST_FP)
        .apply(ready("t4", "bd-cpu-01"), HOST_FP);
    assert_eq!(
        (again.change.as_deref(), again.environment.is_none()),
        (Some("restarted"), true)
    );
}

#[test]
fn an_up_tunnel_is_left_alone_until_its_container_goes() {
    let up = ProjectStatus::default()
        .apply(ready("t1", "bd-cpu-01"), HOST_FP)
        .apply(probe("up", HOST_FP, CPU), HOST_FP);
    // Another tab or a reload of the same container: nothing to run.
    let same = up.apply(ready("t1", "bd-cpu-01"), HOST_FP);
    assert_eq!(same.phase, Phase::Up);
    assert!(!connects_by_itself(&same, true, true));
    // A restart or a switch took the tunnel with the old container: connect again.
    for (started, zone) in [("t2", "bd-cpu-01"), ("t1", "bd-gpu-01")] {
        let moved = up.apply(ready(started, zone), HOST_FP);
        assert_eq!(moved.phase, Phase::Ready, "{started} {zone}");
        assert!(connects_by_itself(&moved, true, true), "{started} {zone}");
    }
    // So does a failed one; a Disconnect stays the user's choice.
    let failed = up
        .apply(
            E::Failed {
                reason: "page closed".into(),
            },
            HOST_FP,
        )
        .apply(ready("t2", "bd-cpu-01"), HOST_FP);
    assert_eq!((failed.phase, failed.reason), (Phase::Ready, None));
    let disconnected = up
        .apply(E::Disconnected, HOST_FP)
        .apply(ready("t2", "bd-cpu-01"), HOST_FP);
    assert_eq!(disconnected.phase, Phase::Disconnected);
    assert!(!connects_by_itself(&disconnected, true, true));
}

#[test]
fn a_down_tunnel_a_foreign_host_key_and_a_silent_probe_are_not_up() {
    let down = ProjectStatus::default().apply(probe("connecting", HOST_FP, CPU), HOST_FP);
    assert_eq!(
        (down.phase, down.reason.as_deref()),
        (Phase::Down, Some("tunnel connecting: relay r:443"))
    );
    let foreign = ProjectStatus::default().apply(probe("up", "SHA256:other", CPU), HOST_FP);
    assert_eq!(foreign.phase, Phase::Error);
    assert!(foreign.reason.unwrap().contains("SHA256:other"));
    let silent = ProjectStatus::default().apply(
        E::Probed {
            output: "python3: not found".into(),
        },
        HOST_FP,
    );
    assert_eq!(silent.phase, Phase::Error);
    assert!(silent.reason.unwrap().contains("python3: not found"));
    let failed = ProjectStatus::default().apply(
        E::StepFailed {
            step: CellRole::Provision,
            output: "a\nb\nc\naistudio-ssh: sshd did not start\n".into(),
        },
        HOST_FP,
    );
    assert_eq!(
        failed.reason.as_deref(),
        Some("provisioning failed: b\nc\naistudio-ssh: sshd did not start")
    );
    assert_eq!(failed.badge().text, "!");
}

#[test]
fn auto_connect_needs_settings_and_respects_a_disconnect() {
    let ready_status = ProjectStatus::default();
    assert!(connects_by_itself(&ready_status, true, true));
    assert!(!connects_by_itself(&ready_status, false, true));
    assert!(!connects_by_itself(&ready_status, true, false));
    let disconnected = ready_status.apply(E::Disconnected, HOST_FP);
    assert!(!connects_by_itself(&disconnected, true, true));
    let running = ready_status.apply(
        E::StepStarted {
            step: CellRole::Tunnel,
        },
        HOST_FP,
    );
    assert!(!connects_by_itself(&running, true, true));
}

#[test]
fn a_refused_companion_notebook_is_remembered_without_changing_the_step() {
    let running = ProjectStatus::default().apply(
        E::StepStarted {
            step: CellRole::Provision,
        },
        HOST_FP,
    );
    let refused = running.apply(
        E::NotebookSaved {
            ok: false,
            status: 405,
        },
        HOST_FP,
    );
    assert_eq!(
        (refused.phase, refused.step, refused.notebook.as_deref()),
        (
            Phase::Running,
            Some(CellRole::Provision),
            Some("refused (405)")
        )
    );
}

#[test]
fn another_frame_becoming_ready_does_not_interrupt_running_cells() {
    let running = ProjectStatus::default()
        .apply(ready("t1", "z"), HOST_FP)
        .apply(
            E::StepStarted {
                step: CellRole::Tunnel,
            },
            HOST_FP,
        );
    let still = running.apply(ready("t1", "z"), HOST_FP);
    assert_eq!(
        (still.phase, still.step),
        (Phase::Running, Some(CellRole::Tunnel))
    );
}

#[test]
fn what_the_container_and_the_page_report_is_stored_bounded() {
    // A container (or page) is not trusted to keep its reports small or on one line.
    let huge = "h".repeat(100_000);
    let accelerator = format!(r#"{{"kind": "{huge}", "devices": ["GPU 0: {huge}\u0007"]}}"#);
    let report = E::Probed {
        output: format!(
            "{{\"hostname\": \"{huge}\\n\", \"accelerator\": {accelerator}, \"hostKeys\": {{\"stable\": \"{HOST_FP}\"}}, \
             \"tunnel\": {{\"state\": \"down\", \"detail\": \"{huge}\"}}}}\n"
        ),
    };
    let s = ProjectStatus::default()
        .apply(ready(&huge, &huge), HOST_FP)
        .apply(report, HOST_FP);
    let env = s.environment.clone().unwrap();
    for (what, value) in [
        ("kind", env.kind.as_str()),
        ("device", env.device.as_deref().unwrap()),
        ("hostname", env.hostname.as_str()),
        ("started", s.jupyter_started.as_deref().unwrap()),
        ("zone", s.zone.as_deref().unwrap()),
    ] {
        assert!(value.chars().count() <= 254, "{what}: {}", value.len());
        assert!(!value.chars().any(char::is_control), "{what}");
    }
    assert_eq!(s.phase, Phase::Down);
    assert!(s.reason.as_ref().unwrap().chars().count() <= 601);
    let failed = s.apply(
        E::Failed {
            reason: huge.clone(),
        },
        HOST_FP,
    );
    assert!(failed.reason.unwrap().ends_with('…'));
    // Ordinary values are kept as they are.
    let s = ProjectStatus::default().apply(ready("2026-11-29T09:00:00Z", "bd-gpu-01"), HOST_FP);
    assert_eq!(s.zone.as_deref(), Some("bd-gpu-01"));
}

#[test]
fn a_cold_instance_and_an_expired_login_are_shown_until_jupyter_answers() {
    let s = ProjectStatus::default().apply(E::Starting, HOST_FP);
    assert_eq!((s.phase, s.badge().text.as_str()), (Phase::Starting, "…"));
    let s = s.apply(E::LoggedOut, HOST_FP);
    assert_eq!((s.phase, s.badge().text.as_str()), (Phase::LoggedOut, "!"));
    // Logged in again: Jupyter answers and the project is ready (or connects by itself).
    let s = s.apply(ready("t1", "bd-cpu-01"), HOST_FP);
    assert_eq!(s.phase, Phase::Ready);
    assert!(connects_by_itself(&s, true, true));
    let s = ProjectStatus::default()
        .apply(E::Starting, HOST_FP)
        .apply(ready("t1", "bd-cpu-01"), HOST_FP);
    assert_eq!(s.phase, Phase::Ready);
}

#[test]
fn a_hygon_dcu_is_named_as_such() {
    const DCU: &str = r#"{"kind": "dcu", "devices": ["K100_AI"]}"#;
    let s = ProjectStatus::default()
        .apply(ready("t1", "bd-gpu-01"), HOST_FP)
        .apply(probe("up", HOST_FP, DCU), HOST_FP);
    let env = s.environment.unwrap();
    assert_eq!(
        (env.kind.as_str(), env.device.as_deref()),
        ("dcu", Some("K100_AI"))
    );
}

#[test]
fn a_disconnect_outlasts_an_expired_login_and_a_cold_start() {
    let disconnected = ProjectStatus::default()
        .apply(ready("t1", "bd-cpu-01"), HOST_FP)
        .apply(E::Disconnected, HOST_FP);
    for waiting in [E::LoggedOut, E::Starting, E::Restoring] {
        let s = disconnected
            .apply(waiting, HOST_FP)
            .apply(ready("t1", "bd-cpu-01"), HOST_FP);
        assert_eq!(s.phase, Phase::Disconnected);
        assert!(!connects_by_itself(&s, true, true));
    }
}

fn status(phase: Phase) -> ProjectStatus {
    ProjectStatus {
        phase,
        ..ProjectStatus::default()
    }
}

#[test]
fn only_a_connect_probes_again_while_the_tunnel_is_down_and_tries_are_left() {
    let down = status(Phase::Down);
    assert_eq!(
        probe_again_after_ms(CellAction::Connect, &down, 1),
        Some(PROBE_INTERVAL_MS)
    );
    assert_eq!(
        probe_again_after_ms(CellAction::Connect, &down, PROBE_TRIES - 1),
        Some(PROBE_INTERVAL_MS)
    );
    assert_eq!(
        probe_again_after_ms(CellAction::Connect, &down, PROBE_TRIES),
        None
    );
    assert_eq!(
        probe_again_after_ms(CellAction::Connect, &status(Phase::Up), 1),
        None
    );
    assert_eq!(
        probe_again_after_ms(CellAction::Connect, &status(Phase::Error), 1),
        None
    );
    assert_eq!(probe_again_after_ms(CellAction::Disconnect, &down, 1), None);
    assert_eq!(probe_again_after_ms(CellAction::Probe, &down, 1), None);
}

#[test]
fn the_first_tunnel_up_turns_auto_connect_on_once() {
    assert_eq!(auto_connect_after(&status(Phase::Up), None), Some(true));
    assert_eq!(auto_connect_after(&status(Phase::Down), None), None);
    // The user's choice stands, either way.
    assert_eq!(auto_connect_after(&status(Phase::Up), Some(false)), None);
    assert_eq!(auto_connect_after(&status(Phase::Up), Some(true)), None);
}

#[test]
fn the_popup_offers_the_notebook_only_when_the_container_refused_it() {
    let view = ProjectView::new("7892508", Some(Route::Direct), None);
    assert_eq!(
        (
            view.host_alias.as_str(),
            view.command.as_str(),
            view.notebook_path.as_str()
        ),
        (
            "aistudio-7892508",
            "ssh aistudio-7892508",
            "work/aistudio-ssh.ipynb"
        )
    );
    assert!(!view.offer_notebook_download);
    let saved = |ok| {
        ProjectStatus::default().apply(
            E::NotebookSaved {
                ok,
                status: if ok { 200 } else { 405 },
            },
            HOST_FP,
        )
    };
    assert!(ProjectView::new("p", Some(Route::Relay), Some(saved(false))).offer_notebook_download);
    assert!(!ProjectView::new("p", Some(Route::Relay), Some(saved(true))).offer_notebook_download);
}
