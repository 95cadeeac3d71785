//! The helper's decisions, without I/O: which project's link a `proxy` connection goes on,
//! when to ask the extension for a link, what to send it and in what batches, and what to
//! tell each proxy. The binary only moves bytes between this and its threads.

use std::collections::{BTreeMap, VecDeque};

use rand_core::RngCore;
use serde_json::Value;

use super::message::{Base64Bytes, ProxyAnswer, ProxyRequest, ToExtension, ToHost};
use super::HOST_NAME;
use crate::stream::{Config, Decoder, Endpoint, Event, LinkId, ResetCode, StreamId, TARGET_SSH};

/// Raw bytes per `bytes` message to the extension: base64 makes 4/3 of it, and the JSON must
/// stay under the browser's 1 MiB limit ([`super::MAX_MESSAGE_TO_BROWSER`]).
pub const MAX_BATCH: usize = 512 * 1024;

/// How long a proxy waits for its project's link and the bridge's word on its stream
/// before it is told it will not come.
pub const LINK_WAIT_MS: u64 = 20_000;

/// `want` goes out at most this often per project: the extension is already opening the link.
pub const WANT_INTERVAL_MS: u64 = 1_000;

/// `status` goes out at most this often per project.
pub const STATUS_INTERVAL_MS: u64 = 1_000;

/// Bytes read from the link and not yet written to a proxy's socket: past this the stream is
/// not read, so its window stops the bridge instead of the helper's memory filling behind a
/// slow `ssh`. A read takes all the stream holds, so the queue may reach this plus a window.
pub const MAX_QUEUED_DOWN: usize = 1024 * 1024;

/// One `proxy` connection, numbered by the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyId(pub u64);

/// What the binary does to a proxy connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAction {
    /// Write the answer line.
    Answer(ProxyAnswer),
    /// Write these bytes, then report them with [`Switchboard::proxy_written`].
    Data(Vec<u8>),
    /// Read one more chunk from the socket (one chunk in flight: a full link stops the
    /// reader, not the loop).
    ReadMore,
    /// After what was written: nothing more comes (the peer closed its side).
    ShutdownWrite,
    /// After what was written: close the connection (done, reset or refused).
    Close,
}

/// What the binary carries out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A native message to the extension.
    ToExtension(ToExtension),
    /// Something for one proxy connection.
    ToProxy { proxy: ProxyId, action: ProxyAction },
    /// A line for stderr (the browser's log).
    Log(String),
}

#[derive(Debug, Default)]
struct Proxy {
    project: String,
    /// `None` while waiting for the link.
    stream: Option<StreamId>,
    /// Told `ok`: the bridge took the stream (it connected sshd).
    answered: bool,
    /// When waiting ends with an error.
    deadline_ms: u64,
    /// Bytes from the socket the stream's send buffer did not take yet.
    pending_up: Vec<u8>,
    /// The socket's read side ended; the stream closes once `pending_up` is written.
    eof: bool,
    /// Bytes given to the binary and not yet written to the socket.
    queued_down: usize,
    peer_closed: bool,
    shutdown_sent: bool,
}

#[derive(Debug)]
struct Project {
    endpoint: Endpoint,
    decoder: Decoder,
    /// The extension says the path to the bridge is open (and the host has not dropped it).
    carrier: bool,
    /// The number of the extension's last `linkUp`, which the host's `bytes` carry.
    link: u32,
    last_want_ms: Option<u64>,
    streams: BTreeMap<StreamId, ProxyId>,
    bytes_up: u64,
    bytes_down: u64,
    status_changed: bool,
    last_status_ms: Option<u64>,
}

/// Every project's link end and every proxy connection: inputs in, [`Output`]s out.
///
/// Each project gets one [`Endpoint`] (the initiator, a random link id) when its first proxy
/// comes or the extension first reports its link, kept for the host's life so streams
/// survive any number of links.
#[derive(Debug)]
pub struct Switchboard<R> {
    rng: R,
    config: Config,
    projects: BTreeMap<String, Project>,
    proxies: BTreeMap<ProxyId, Proxy>,
    outputs: VecDeque<Output>,
    /// An extension said `hello` and has not gone since: `want` reaches someone.
    extension: bool,
    /// The lane's address, given in `hello` (see [`super::lane`]).
    lane: Option<String>,
}

impl<R: RngCore> Switchboard<R> {
    /// A host with no projects; `rng` draws the link ids (the OS's in production).
    pub fn new(rng: R, config: Config) -> Self {
        Self {
            rng,
            config,
            projects: BTreeMap::new(),
            proxies: BTreeMap::new(),
            outputs: VecDeque::new(),
            extension: false,
            lane: None,
        }
    }

    /// Offers the lane at `url` to every extension that says `hello` from now on.
    pub fn offer_lane(&mut self, url: String) {
        self.lane = Some(url);
    }

    /// The next thing to do, or `None` until another input or [`Self::next_timeout`].
    pub fn poll_output(&mut self, now_ms: u64) -> Option<Output> {
        if self.outputs.is_empty() {
            self.drive(now_ms);
        }
        self.outputs.pop_front()
    }

    /// When to call [`Self::handle_timeout`] with no input arriving.
    pub fn next_timeout(&self) -> Option<u64> {
        let endpoints = self.projects.values().filter_map(|p| {
            let status = p
                .status_changed
                .then(|| p.last_status_ms.map_or(0, |t| t + STATUS_INTERVAL_MS));
            [p.endpoint.poll_timeout(), status]
                .into_iter()
                .flatten()
                .min()
        });
        let waits = self
            .proxies
            .values()
            .filter(|p| !p.answered)
            .map(|p| p.deadline_ms);
        endpoints.chain(waits).min()
    }

    /// Time passed: endpoints' timers, proxies waiting too long, status.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        for project in self.projects.values_mut() {
            project.endpoint.handle_timeout(now_ms);
        }
        let expired: Vec<(ProxyId, String, Option<StreamId>)> = self
            .proxies
            .iter()
            .filter(|(_, p)| !p.answered && now_ms >= p.deadline_ms)
            .map(|(&id, p)| (id, p.project.clone(), p.stream))
            .collect();
        for (id, project, stream) in expired {
            let seconds = LINK_WAIT_MS / 1000;
            let reason = match stream {
                None => format!(
                    "the link to project {project} did not come up within {seconds} s: is a \
                     notebook tab of the project open, with the extension's kernel running?"
                ),
                Some(_) => format!(
                    "the bridge of project {project} did not take the connection within \
                     {seconds} s"
                ),
            };
            if let (Some(stream), Some(p)) = (stream, self.projects.get_mut(&project)) {
                p.streams.remove(&stream);
                let _ = p.endpoint.reset(stream, ResetCode::APPLICATION, &reason);
            }
            self.refuse(id, reason);
        }
    }

    /// A native message from the extension.
    pub fn handle_message(&mut self, message: &Value, now_ms: u64) {
        let parsed = match serde_json::from_value::<ToHost>(message.clone()) {
            Ok(parsed) => parsed,
            Err(error) => {
                let kind = message["kind"].as_str();
                let known = ["hello", "linkUp", "linkDown", "bytes", "noLink"];
                let error = match kind {
                    Some(kind) if known.contains(&kind) => {
                        format!("a '{kind}' message is malformed ({error})")
                    }
                    Some(kind) => format!("unknown message kind '{kind}'"),
                    None => "unknown message kind (none)".into(),
                };
                self.outputs.push_back(Output::Log(error.clone()));
                self.tell_extension(ToExtension::Error { error });
                return;
            }
        };
        let project = match &parsed {
            ToHost::Hello => return self.hello(now_ms),
            ToHost::LinkUp { project, .. }
            | ToHost::LinkDown { project, .. }
            | ToHost::Bytes { project, .. }
            | ToHost::NoLink { project, .. } => project.clone(),
        };
        if !crate::fields::is_project_id(&project) {
            return self.log(format!(
                "ignored a message for {project:?}, which is not a project id"
            ));
        }
        match parsed {
            ToHost::Hello => {}
            ToHost::LinkUp { link, .. } => {
                let p = self.project(&project, now_ms);
                p.carrier = true;
                p.link = link;
                p.decoder = Decoder::new();
                p.endpoint.link_up(now_ms);
                p.status_changed = true;
            }
            ToHost::LinkDown { reason, .. } => {
                if let Some(p) = self.projects.get_mut(&project) {
                    p.carrier = false;
                    p.decoder = Decoder::new();
                    p.endpoint.link_lost(now_ms);
                    p.status_changed = true;
                }
                self.log(format!("project {project}: the link dropped ({reason})"));
            }
            ToHost::Bytes { data, .. } => self.link_bytes(&project, &data.0, now_ms),
            ToHost::NoLink { reason, .. } => {
                if let Some(p) = self.projects.get_mut(&project) {
                    // The next proxy asks again at once.
                    p.last_want_ms = None;
                }
                let waiting: Vec<ProxyId> = self
                    .proxies
                    .iter()
                    .filter(|(_, p)| p.project == project && p.stream.is_none())
                    .map(|(&id, _)| id)
                    .collect();
                for id in waiting {
                    self.refuse(id, reason.clone());
                }
            }
        }
    }

    /// An extension (a worker, new or restarted) greets the helper: it hears who answers,
    /// and is asked for the link of every project whose streams wait for one.
    fn hello(&mut self, now_ms: u64) {
        self.extension = true;
        self.tell_extension(ToExtension::Hello {
            host: HOST_NAME.into(),
            version: crate::VERSION.into(),
            lane: self.lane.clone(),
        });
        self.ask_for_waiting_links(now_ms);
    }

    /// Sends `want` for every project whose proxies wait for a link: to a new extension, or
    /// when the one asked went away.
    pub fn ask_for_waiting_links(&mut self, now_ms: u64) {
        let waiting: Vec<String> = self
            .projects
            .iter()
            .filter(|(_, p)| !p.carrier)
            .map(|(name, _)| name)
            .filter(|name| self.proxies.values().any(|proxy| proxy.project == **name))
            .cloned()
            .collect();
        for project in waiting {
            if let Some(p) = self.projects.get_mut(&project) {
                p.last_want_ms = Some(now_ms);
            }
            self.tell_extension(ToExtension::Want { project });
        }
    }

    /// The extension went away (its worker stopped, or the browser closed): every link it
    /// carried is down, and streams wait for the next extension within the grace period.
    pub fn extension_gone(&mut self, now_ms: u64) {
        self.extension = false;
        for (name, p) in &mut self.projects {
            if p.carrier {
                p.carrier = false;
                p.decoder = Decoder::new();
                p.endpoint.link_lost(now_ms);
                p.status_changed = true;
                self.outputs.push_back(Output::Log(format!(
                    "project {name}: the link dropped (the extension went away)"
                )));
            }
        }
    }

    /// Whether any proxy connection is open (waiting, or carrying a stream).
    pub fn has_proxies(&self) -> bool {
        !self.proxies.is_empty()
    }

    /// Bytes from the bridge on a project's link: a `bytes` message, or a binary frame of
    /// the lane (which the binary reads, and [`super::Routes::heard_bytes`] admits).
    pub fn link_bytes(&mut self, project: &str, bytes: &[u8], now_ms: u64) {
        let Some(p) = self.projects.get_mut(project) else {
            // Quoted: a lane's frame may name anything.
            return self.log(format!("ignored bytes for project {project:?}: no link"));
        };
        if !p.carrier {
            // Left over from a link already dropped: the next one starts with a Hello.
            return;
        }
        p.decoder.push(bytes);
        loop {
            match p.decoder.next_frame() {
                Ok(Some(frame)) => p.endpoint.handle(frame, now_ms),
                Ok(None) => break,
                Err(error) => {
                    // The endpoint fails the link (LinkFailed -> drop); nothing more of it
                    // can be read.
                    p.endpoint.handle_decode_error(error, now_ms);
                    p.carrier = false;
                    p.decoder = Decoder::new();
                    break;
                }
            }
        }
    }

    /// A proxy connection sent its request line (without the newline).
    pub fn proxy_request(&mut self, proxy: ProxyId, line: &str, now_ms: u64) {
        let project = match serde_json::from_str::<ProxyRequest>(line.trim()) {
            Ok(request) if crate::fields::is_project_id(&request.project) => request.project,
            Ok(request) => {
                return self.refuse_new(proxy, format!("{:?} is not a project id", request.project))
            }
            Err(_) => {
                return self.refuse_new(
                    proxy,
                    "the request is not {\"project\":\"<id>\"} on one line".into(),
                )
            }
        };
        self.proxies.insert(
            proxy,
            Proxy {
                project: project.clone(),
                deadline_ms: now_ms + LINK_WAIT_MS,
                ..Proxy::default()
            },
        );
        let extension = self.extension;
        let p = self.project(&project, now_ms);
        if p.endpoint.is_up() {
            return self.start(proxy);
        }
        if !extension {
            self.proxies.remove(&proxy);
            return self.refuse_new(
                proxy,
                "the browser's extension is not connected to the helper: open the browser \
                 with AI Studio SSH (a restarted extension connects again within seconds)"
                    .into(),
            );
        }
        let due = p
            .last_want_ms
            .is_none_or(|last| now_ms >= last + WANT_INTERVAL_MS);
        if !p.carrier && due {
            p.last_want_ms = Some(now_ms);
            self.tell_extension(ToExtension::Want { project });
        }
    }

    /// Bytes the proxy's reader read; it reads again after [`ProxyAction::ReadMore`].
    pub fn proxy_data(&mut self, proxy: ProxyId, bytes: Vec<u8>) {
        if let Some(p) = self.proxies.get_mut(&proxy) {
            p.pending_up.extend_from_slice(&bytes);
            self.write_up(proxy);
        }
    }

    /// The proxy's socket ended its side (ssh's stdin ended).
    pub fn proxy_eof(&mut self, proxy: ProxyId) {
        if let Some(p) = self.proxies.get_mut(&proxy) {
            p.eof = true;
            self.write_up(proxy);
        }
    }

    /// The binary wrote `n` bytes of [`ProxyAction::Data`] to the proxy's socket.
    pub fn proxy_written(&mut self, proxy: ProxyId, n: usize) {
        if let Some(p) = self.proxies.get_mut(&proxy) {
            p.queued_down = p.queued_down.saturating_sub(n);
        }
    }

    /// The proxy's socket failed (ssh went away): its stream is reset.
    pub fn proxy_gone(&mut self, proxy: ProxyId) {
        let Some(p) = self.proxies.remove(&proxy) else {
            return;
        };
        if let (Some(stream), Some(project)) = (p.stream, self.projects.get_mut(&p.project)) {
            project.streams.remove(&stream);
            project.status_changed = true;
            let _ =
                project
                    .endpoint
                    .reset(stream, ResetCode::APPLICATION, "ssh closed its connection");
        }
        self.tell_proxy(proxy, ProxyAction::Close);
    }

    fn project(&mut self, project: &str, now_ms: u64) -> &mut Project {
        let (rng, config) = (&mut self.rng, &self.config);
        self.projects.entry(project.to_owned()).or_insert_with(|| {
            let mut id = [0; 16];
            rng.fill_bytes(&mut id);
            Project {
                endpoint: Endpoint::initiator(LinkId(id), config.clone(), now_ms),
                decoder: Decoder::new(),
                carrier: false,
                link: 0,
                last_want_ms: None,
                streams: BTreeMap::new(),
                bytes_up: 0,
                bytes_down: 0,
                status_changed: true,
                last_status_ms: None,
            }
        })
    }

    /// The link is up: the proxy's stream opens; it hears `ok` once the bridge takes it.
    fn start(&mut self, proxy: ProxyId) {
        let Some(p) = self.proxies.get_mut(&proxy) else {
            return;
        };
        let Some(project) = self.projects.get_mut(&p.project) else {
            return;
        };
        let stream = project.endpoint.open_stream(TARGET_SSH);
        project.streams.insert(stream, proxy);
        project.status_changed = true;
        p.stream = Some(stream);
    }

    /// Tells the proxy `ok` once the bridge has taken its stream (an `Ack` comes only after
    /// the bridge connected sshd; a refusal comes as a `Reset` with the reason instead).
    fn confirm(&mut self, proxy: ProxyId) -> bool {
        let Some(p) = self.proxies.get_mut(&proxy) else {
            return false;
        };
        let (Some(stream), Some(project)) = (p.stream, self.projects.get(&p.project)) else {
            return false;
        };
        let confirmed = project
            .endpoint
            .stream_info(stream)
            .is_some_and(|info| info.confirmed);
        if p.answered || !confirmed {
            return false;
        }
        p.answered = true;
        self.tell_proxy(proxy, ProxyAction::Answer(ProxyAnswer::ok()));
        self.tell_proxy(proxy, ProxyAction::ReadMore);
        true
    }

    /// A proxy still waiting hears why no stream comes, and is closed.
    fn refuse(&mut self, proxy: ProxyId, reason: String) {
        self.proxies.remove(&proxy);
        self.refuse_new(proxy, reason);
    }

    fn refuse_new(&mut self, proxy: ProxyId, reason: String) {
        self.tell_proxy(proxy, ProxyAction::Answer(ProxyAnswer::error(reason)));
        self.tell_proxy(proxy, ProxyAction::Close);
    }

    /// Moves a proxy's pending bytes into its stream; lets its reader go on once all are in.
    fn write_up(&mut self, proxy: ProxyId) -> bool {
        let Some(p) = self.proxies.get_mut(&proxy) else {
            return false;
        };
        let (Some(stream), Some(project)) = (p.stream, self.projects.get_mut(&p.project)) else {
            return false;
        };
        let had = p.pending_up.len();
        if had > 0 {
            match project.endpoint.write(stream, &p.pending_up) {
                Ok(n) => {
                    p.pending_up.drain(..n);
                    project.bytes_up += n as u64;
                    project.status_changed |= n > 0;
                }
                // Reset meanwhile: the Reset event closes the proxy.
                Err(_) => p.pending_up.clear(),
            }
            if p.pending_up.is_empty() && !p.eof {
                self.outputs.push_back(Output::ToProxy {
                    proxy,
                    action: ProxyAction::ReadMore,
                });
            }
        }
        if p.eof && p.pending_up.is_empty() {
            // Once: a closed stream only says so again.
            let _ = project.endpoint.close(stream);
        }
        had != p.pending_up.len()
    }

    /// Gives a proxy what its stream received, within [`MAX_QUEUED_DOWN`]; shuts its write
    /// side once the peer's `Close` and every byte before it are through.
    fn read_down(&mut self, proxy: ProxyId) -> bool {
        let Some(p) = self.proxies.get_mut(&proxy) else {
            return false;
        };
        let (Some(stream), Some(project)) = (p.stream, self.projects.get_mut(&p.project)) else {
            return false;
        };
        if !p.answered || p.queued_down >= MAX_QUEUED_DOWN || p.shutdown_sent {
            return false;
        }
        let mut bytes = Vec::new();
        let _ = project.endpoint.read(stream, &mut bytes);
        let mut acted = false;
        if !bytes.is_empty() {
            project.bytes_down += bytes.len() as u64;
            project.status_changed = true;
            p.queued_down += bytes.len();
            self.outputs.push_back(Output::ToProxy {
                proxy,
                action: ProxyAction::Data(bytes),
            });
            acted = true;
        }
        // A read after the peer's Close gets every byte up to it.
        if p.peer_closed {
            p.shutdown_sent = true;
            self.outputs.push_back(Output::ToProxy {
                proxy,
                action: ProxyAction::ShutdownWrite,
            });
            acted = true;
        }
        acted
    }

    /// Runs every project until nothing more happens: events, proxies, then frames out.
    fn drive(&mut self, now_ms: u64) {
        self.handle_timeout(now_ms);
        let names: Vec<String> = self.projects.keys().cloned().collect();
        for name in names {
            // Bounded: each round either makes progress or stops.
            for _ in 0..64 {
                let mut progress = self.handle_events(&name, now_ms);
                let proxies: Vec<ProxyId> =
                    self.projects[&name].streams.values().copied().collect();
                for proxy in proxies {
                    // Before any byte: the answer line comes first on the socket.
                    progress |= self.confirm(proxy);
                    progress |= self.write_up(proxy);
                    progress |= self.read_down(proxy);
                }
                progress |= self.transmit(&name, now_ms);
                if !progress {
                    break;
                }
            }
            self.status(&name, now_ms);
        }
    }

    fn handle_events(&mut self, name: &str, now_ms: u64) -> bool {
        let mut any = false;
        loop {
            let Some(project) = self.projects.get_mut(name) else {
                return any;
            };
            let Some(event) = project.endpoint.poll_event() else {
                return any;
            };
            any = true;
            match event {
                Event::LinkUp => {
                    project.status_changed = true;
                    let waiting: Vec<ProxyId> = self
                        .proxies
                        .iter()
                        .filter(|(_, p)| p.project == name && p.stream.is_none())
                        .map(|(&id, _)| id)
                        .collect();
                    for proxy in waiting {
                        self.start(proxy);
                    }
                }
                Event::LinkFailed { error } => self.drop_link(name, error.to_string(), now_ms),
                Event::LinkSilent => {
                    self.drop_link(name, "nothing came from the bridge for 40 s".into(), now_ms)
                }
                Event::LinkTimedOut => self.log(format!(
                    "project {name}: the link stayed down past the grace period; its streams \
                     were reset"
                )),
                Event::StreamOpened { stream, .. } => {
                    // The helper opens every stream; the bridge has none to offer yet.
                    let _ = project.endpoint.reset(
                        stream,
                        ResetCode::REFUSED,
                        "the helper takes no streams",
                    );
                }
                Event::Readable { .. } | Event::Writable { .. } => {}
                Event::Closed { stream } => {
                    if let Some(proxy) = project.streams.get(&stream) {
                        if let Some(p) = self.proxies.get_mut(proxy) {
                            p.peer_closed = true;
                        }
                    }
                }
                Event::Finished { stream } => {
                    if let Some(proxy) = project.streams.remove(&stream) {
                        project.status_changed = true;
                        // The last bytes and the shutdown are queued before this.
                        self.confirm(proxy);
                        self.read_down(proxy);
                        self.proxies.remove(&proxy);
                        self.tell_proxy(proxy, ProxyAction::Close);
                    }
                }
                Event::Reset { stream, reason, .. } => {
                    if let Some(proxy) = project.streams.remove(&stream) {
                        project.status_changed = true;
                        let answered = self.proxies.remove(&proxy).is_some_and(|p| p.answered);
                        self.log(format!("project {name}: {stream} was reset: {reason}"));
                        if !answered {
                            // Still before `ok`: ssh can show why.
                            let reason = format!("the container refused the connection: {reason}");
                            self.tell_proxy(proxy, ProxyAction::Answer(ProxyAnswer::error(reason)));
                        }
                        self.tell_proxy(proxy, ProxyAction::Close);
                    }
                }
            }
        }
    }

    /// The host gives up on the current link: the extension makes a new one.
    fn drop_link(&mut self, name: &str, reason: String, now_ms: u64) {
        // A failed link still owes the peer its Error frame.
        self.transmit(name, now_ms);
        if let Some(project) = self.projects.get_mut(name) {
            project.endpoint.link_lost(now_ms);
            project.carrier = false;
            project.decoder = Decoder::new();
            project.status_changed = true;
        }
        self.log(format!("project {name}: dropping the link: {reason}"));
        self.tell_extension(ToExtension::Drop {
            project: name.to_owned(),
            reason,
        });
    }

    /// Sends every frame the endpoint has, batched under [`MAX_BATCH`] per message.
    fn transmit(&mut self, name: &str, now_ms: u64) -> bool {
        let Some(project) = self.projects.get_mut(name) else {
            return false;
        };
        let link = project.link;
        let mut batch = Vec::new();
        let mut batches = Vec::new();
        while let Some(frame) = project.endpoint.poll_transmit(now_ms) {
            let mut encoded = Vec::new();
            if let Err(error) = frame.encode(&mut encoded) {
                // The endpoint builds frames within the limits; this would be a bug.
                self.outputs
                    .push_back(Output::Log(format!("a frame was not sent: {error}")));
                continue;
            }
            if !batch.is_empty() && batch.len() + encoded.len() > MAX_BATCH {
                batches.push(std::mem::take(&mut batch));
            }
            batch.extend_from_slice(&encoded);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        let sent = !batches.is_empty();
        for batch in batches {
            self.tell_extension(ToExtension::Bytes {
                project: name.to_owned(),
                link,
                data: Base64Bytes(batch),
            });
        }
        sent
    }

    fn status(&mut self, name: &str, now_ms: u64) {
        let Some(p) = self.projects.get_mut(name) else {
            return;
        };
        let due = p
            .last_status_ms
            .is_none_or(|last| now_ms >= last + STATUS_INTERVAL_MS);
        if !(p.status_changed && due) {
            return;
        }
        p.status_changed = false;
        p.last_status_ms = Some(now_ms);
        let status = ToExtension::Status {
            project: name.to_owned(),
            streams: p.streams.len() as u64,
            bytes_up: p.bytes_up,
            bytes_down: p.bytes_down,
            link_up: p.endpoint.is_up(),
        };
        self.tell_extension(status);
    }

    fn tell_extension(&mut self, message: ToExtension) {
        self.outputs.push_back(Output::ToExtension(message));
    }

    fn tell_proxy(&mut self, proxy: ProxyId, action: ProxyAction) {
        self.outputs.push_back(Output::ToProxy { proxy, action });
    }

    fn log(&mut self, line: String) {
        self.outputs.push_back(Output::Log(line));
    }
}
