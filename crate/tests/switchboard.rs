//! The helper's decisions ([`Switchboard`]) with no I/O: the extension and the bridge are
//! played by the test, the bridge by a real acceptor [`Endpoint`].
#![cfg(not(target_arch = "wasm32"))]

use aistudio_ssh::native_host::switchboard::{LINK_WAIT_MS, MAX_BATCH, MAX_QUEUED_DOWN};
use aistudio_ssh::native_host::{
    Output, ProxyAction, ProxyAnswer, ProxyId, Switchboard, ToExtension, HOST_NAME,
    MAX_MESSAGE_TO_BROWSER,
};
use aistudio_ssh::stream::{Config, Decoder, Endpoint, Event, StreamId};
use base64ct::{Base64, Encoding};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

type Board = Switchboard<ChaCha8Rng>;

/// A board an extension has greeted (a proxy before that is refused).
fn board() -> Board {
    let mut board = Switchboard::new(ChaCha8Rng::seed_from_u64(14), Config::default());
    board.handle_message(&json!({"kind": "hello"}), 0);
    drain(&mut board, 0);
    board
}

fn drain(board: &mut Board, now: u64) -> Vec<Output> {
    std::iter::from_fn(|| board.poll_output(now)).collect()
}

fn request(project: &str) -> String {
    json!({ "project": project }).to_string()
}

fn wants(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::ToExtension(ToExtension::Want { .. })))
        .count()
}

fn actions(outputs: &[Output], proxy: ProxyId) -> Vec<ProxyAction> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToProxy { proxy: p, action } if *p == proxy => Some(action.clone()),
            _ => None,
        })
        .collect()
}

/// The bytes the board sends the extension, each message checked against the browser's
/// limit.
fn bytes_out(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToExtension(message @ ToExtension::Bytes { data, .. }) => {
                let json = serde_json::to_string(message).unwrap();
                assert!(json.len() < MAX_MESSAGE_TO_BROWSER, "{} bytes", json.len());
                assert!(data.0.len() <= MAX_BATCH);
                Some(data.0.clone())
            }
            _ => None,
        })
        .collect()
}

/// The bridge: an acceptor endpoint and its decoder.
struct Bridge {
    ep: Endpoint,
    decoder: Decoder,
}

impl Bridge {
    fn new() -> Self {
        let mut ep = Endpoint::acceptor(Config::default(), 0);
        ep.link_up(0);
        Self {
            ep,
            decoder: Decoder::new(),
        }
    }

    fn take(&mut self, outputs: &[Output], now: u64) {
        for bytes in bytes_out(outputs) {
            self.decoder.push(&bytes);
            while let Some(frame) = self.decoder.next_frame().unwrap() {
                self.ep.handle(frame, now);
            }
        }
    }

    /// What it sends, in `bytes` messages of `split` bytes (not frame-aligned).
    fn give(&mut self, board: &mut Board, project: &str, now: u64, split: usize) {
        let mut wire = Vec::new();
        while let Some(frame) = self.ep.poll_transmit(now) {
            frame.encode(&mut wire).unwrap();
        }
        for piece in wire.chunks(split) {
            let message =
                json!({"kind": "bytes", "project": project, "data": Base64::encode_string(piece)});
            board.handle_message(&message, now);
        }
    }
}

/// A board with proxy 1 of project `p` connected over an up link.
fn connected() -> (Board, Bridge, StreamId) {
    let mut board = board();
    let proxy = ProxyId(1);
    board.proxy_request(proxy, &request("p"), 0);
    assert_eq!(wants(&drain(&mut board, 0)), 1);
    board.handle_message(&json!({"kind": "linkUp", "project": "p", "link": 1}), 1);
    let mut bridge = Bridge::new();
    bridge.take(&drain(&mut board, 1), 1);
    bridge.give(&mut board, "p", 2, 3);
    let out = drain(&mut board, 2);
    assert!(
        actions(&out, proxy).is_empty(),
        "no answer before the bridge takes the stream"
    );
    bridge.take(&out, 2);
    let opened = std::iter::from_fn(|| bridge.ep.poll_event())
        .find_map(|event| match event {
            Event::StreamOpened { stream, target } => {
                assert_eq!(target, "ssh");
                Some(stream)
            }
            _ => None,
        })
        .expect("the bridge sees the stream");
    // Its first Ack says it took the stream.
    bridge.give(&mut board, "p", 3, 1000);
    let out = drain(&mut board, 3);
    assert_eq!(
        actions(&out, proxy),
        [
            ProxyAction::Answer(ProxyAnswer::ok()),
            ProxyAction::ReadMore
        ]
    );
    bridge.take(&out, 3);
    (board, bridge, opened)
}

#[test]
fn a_stream_the_bridge_refuses_is_an_error_for_the_proxy() {
    let mut board = board();
    let proxy = ProxyId(1);
    board.proxy_request(proxy, &request("p"), 0);
    board.handle_message(&json!({"kind": "linkUp", "project": "p", "link": 1}), 1);
    let mut bridge = Bridge::new();
    bridge.take(&drain(&mut board, 1), 1);
    bridge.give(&mut board, "p", 2, 1000);
    bridge.take(&drain(&mut board, 2), 2);
    let stream = std::iter::from_fn(|| bridge.ep.poll_event())
        .find_map(|event| match event {
            Event::StreamOpened { stream, .. } => Some(stream),
            _ => None,
        })
        .unwrap();
    let refusal = "sshd on 127.0.0.1:2222: [Errno 111] Connection refused";
    bridge
        .ep
        .reset(stream, aistudio_ssh::stream::ResetCode::REFUSED, refusal)
        .unwrap();
    bridge.give(&mut board, "p", 3, 1000);
    assert_eq!(
        actions(&drain(&mut board, 3), proxy),
        [
            ProxyAction::Answer(ProxyAnswer::error(format!(
                "the container refused the connection: {refusal}"
            ))),
            ProxyAction::Close
        ]
    );
}

#[test]
fn a_proxy_waits_for_its_link_and_asks_for_it_at_most_once_a_second() {
    let mut board = board();
    board.proxy_request(ProxyId(1), &request("p"), 0);
    let out = drain(&mut board, 0);
    assert_eq!(wants(&out), 1);
    assert!(
        actions(&out, ProxyId(1)).is_empty(),
        "no answer before the link"
    );
    board.proxy_request(ProxyId(2), &request("p"), 500);
    assert_eq!(wants(&drain(&mut board, 500)), 0);
    board.proxy_request(ProxyId(3), &request("p"), 1000);
    assert_eq!(wants(&drain(&mut board, 1000)), 1);
    board.proxy_request(ProxyId(4), &request("q"), 1000);
    assert_eq!(
        wants(&drain(&mut board, 1000)),
        1,
        "another project asks apart"
    );

    // The extension cannot: every proxy of p hears why at once, q's waits on.
    board.handle_message(
        &json!({"kind": "noLink", "project": "p", "reason": "no notebook tab of project p is open"}),
        1200,
    );
    let out = drain(&mut board, 1200);
    for proxy in [1, 2, 3] {
        assert_eq!(
            actions(&out, ProxyId(proxy)),
            [
                ProxyAction::Answer(ProxyAnswer::error("no notebook tab of project p is open")),
                ProxyAction::Close
            ]
        );
    }
    assert!(actions(&out, ProxyId(4)).is_empty());
    // No link within the wait: q's proxy hears that.
    assert_eq!(board.next_timeout(), Some(1000 + LINK_WAIT_MS));
    board.handle_timeout(1000 + LINK_WAIT_MS);
    let out = drain(&mut board, 1000 + LINK_WAIT_MS);
    match &actions(&out, ProxyId(4))[..] {
        [ProxyAction::Answer(answer), ProxyAction::Close] => {
            assert!(!answer.ok);
            assert!(
                answer.error.as_ref().unwrap().contains("within 20 s"),
                "{answer:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_cross_both_ways_and_close_follows_the_data() {
    let (mut board, mut bridge, stream) = connected();
    let proxy = ProxyId(1);
    board.proxy_data(proxy, b"SSH-2.0-client\r\n".to_vec());
    board.proxy_eof(proxy);
    let out = drain(&mut board, 3);
    bridge.take(&out, 3);
    let mut got = Vec::new();
    bridge.ep.read(stream, &mut got).unwrap();
    assert_eq!(got, b"SSH-2.0-client\r\n");

    bridge.ep.write(stream, b"SSH-2.0-server\r\n").unwrap();
    bridge.ep.close(stream).unwrap();
    bridge.give(&mut board, "p", 4, 7);
    let out = drain(&mut board, 4);
    let got = actions(&out, proxy);
    assert_eq!(
        got[..2],
        [
            ProxyAction::Data(b"SSH-2.0-server\r\n".to_vec()),
            ProxyAction::ShutdownWrite
        ]
    );
    board.proxy_written(proxy, 16);
    // Once both ends have everything (acknowledgements may still have to cross), the proxy
    // is closed.
    let mut closed = got.get(2) == Some(&ProxyAction::Close);
    for now in 5..50 {
        bridge.take(&drain(&mut board, now), now);
        bridge.give(&mut board, "p", now, 1000);
        let out = drain(&mut board, now + 20);
        closed |= actions(&out, proxy).contains(&ProxyAction::Close);
        bridge.take(&out, now + 20);
    }
    assert!(closed);
}

#[test]
fn frames_are_batched_under_the_browser_limit() {
    let (mut board, mut bridge, stream) = connected();
    let proxy = ProxyId(1);
    let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    board.proxy_data(proxy, sent.clone());
    let out = drain(&mut board, 3);
    assert!(
        actions(&out, proxy).contains(&ProxyAction::ReadMore),
        "the reader goes on once its chunk is in the send buffer"
    );
    // The bridge's first Ack gave its 4 MiB window already: everything goes at once, in
    // messages of several 64 KiB frames each.
    let batches = bytes_out(&out);
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert!(sizes.len() >= 6, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= MAX_BATCH), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 400 * 1024), "{sizes:?}");
    bridge.take(&out, 3);
    let mut got = Vec::new();
    bridge.ep.read(stream, &mut got).unwrap();
    assert_eq!(got, sent);
}

#[test]
fn invalid_projects_and_unknown_kinds_are_refused() {
    let mut board = board();
    board.handle_message(&json!({"kind": "linkUp", "project": "a b", "link": 1}), 0);
    board.handle_message(
        &json!({"kind": "bytes", "project": "../x", "data": "AAAA"}),
        0,
    );
    let out = drain(&mut board, 0);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out
        .iter()
        .all(|o| matches!(o, Output::Log(line) if line.contains("not a project id"))));

    board.proxy_request(ProxyId(1), &request("a;b"), 0);
    board.proxy_request(ProxyId(2), "GET / HTTP/1.1", 0);
    let out = drain(&mut board, 0);
    for proxy in [1, 2] {
        assert!(matches!(
            &actions(&out, ProxyId(proxy))[..],
            [
                ProxyAction::Answer(ProxyAnswer { ok: false, .. }),
                ProxyAction::Close
            ]
        ));
    }
    assert_eq!(wants(&out), 0);

    board.offer_lane("ws://127.0.0.1:1/t".into());
    board.handle_message(&json!({"kind": "hello"}), 0);
    board.handle_message(&json!({"kind": "what"}), 0);
    let out = drain(&mut board, 0);
    let messages: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::ToExtension(m) => Some(serde_json::to_value(m).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages[0],
        json!({"kind": "hello", "host": HOST_NAME, "version": env!("CARGO_PKG_VERSION"), "lane": "ws://127.0.0.1:1/t"})
    );
    assert_eq!(
        messages[1],
        json!({"kind": "error", "error": "unknown message kind 'what'"})
    );
}

#[test]
fn a_silent_link_is_dropped_and_a_new_one_resumes_the_stream() {
    let (mut board, mut bridge, stream) = connected();
    let proxy = ProxyId(1);
    // 40 s with nothing from the bridge (pings go out, no pong comes).
    let mut dropped = None;
    let mut now = 3;
    while dropped.is_none() && now < 60_000 {
        now = board.next_timeout().unwrap().max(now + 1);
        board.handle_timeout(now);
        dropped = drain(&mut board, now).into_iter().find_map(|o| match o {
            Output::ToExtension(ToExtension::Drop { project, reason }) => Some((project, reason)),
            _ => None,
        });
    }
    let (project, reason) = dropped.expect("a drop");
    assert_eq!(project, "p");
    assert!(reason.contains("40 s"), "{reason}");
    // The extension closes the link and opens another; the same bridge endpoint resumes.
    board.handle_message(
        &json!({"kind": "linkDown", "project": "p", "reason": "dropped"}),
        now,
    );
    board.handle_message(&json!({"kind": "linkUp", "project": "p", "link": 1}), now);
    bridge.ep.link_lost(now);
    bridge.ep.link_up(now);
    board.proxy_data(proxy, b"after".to_vec());
    bridge.take(&drain(&mut board, now), now);
    bridge.give(&mut board, "p", now, 5);
    let out = drain(&mut board, now);
    bridge.take(&out, now);
    let mut got = Vec::new();
    bridge.ep.read(stream, &mut got).unwrap();
    assert_eq!(got, b"after");
    // The popup hears of it within a second.
    let out = drain(&mut board, now + 1000);
    let status = out.iter().rev().find_map(|o| match o {
        Output::ToExtension(ToExtension::Status {
            streams, link_up, ..
        }) => Some((*streams, *link_up)),
        _ => None,
    });
    assert_eq!(status, Some((1, true)));
}

#[test]
fn a_slow_ssh_holds_a_bounded_queue_then_the_window_stops_the_bridge() {
    let (mut board, mut bridge, stream) = connected();
    let proxy = ProxyId(1);
    let window = Config::default().window as usize;
    let sent: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut written = 0;
    let mut got = Vec::new();
    for now in 3..40 {
        written += bridge.ep.write(stream, &sent[written..]).unwrap();
        bridge.give(&mut board, "p", now, 200_000);
        let out = drain(&mut board, now);
        for action in actions(&out, proxy) {
            if let ProxyAction::Data(bytes) = action {
                got.extend_from_slice(&bytes);
            }
        }
        bridge.take(&out, now);
    }
    // A read takes all the stream holds: the queue stops past MAX_QUEUED_DOWN, one window
    // more at most.
    let given = got.len();
    assert!(
        (MAX_QUEUED_DOWN..=MAX_QUEUED_DOWN + window).contains(&given),
        "{given} bytes queued for a proxy that wrote none"
    );
    // ssh takes them: the rest follows.
    board.proxy_written(proxy, given);
    for now in 40..200 {
        written += bridge.ep.write(stream, &sent[written..]).unwrap();
        bridge.give(&mut board, "p", now, 200_000);
        let out = drain(&mut board, now);
        for action in actions(&out, proxy) {
            if let ProxyAction::Data(bytes) = action {
                board.proxy_written(proxy, bytes.len());
                got.extend_from_slice(&bytes);
            }
        }
        bridge.take(&out, now);
    }
    assert!(
        got == sent,
        "{} of {} bytes, in order",
        got.len(),
        sent.len()
    );
}

#[test]
fn bytes_that_are_not_frames_fail_the_link_with_an_error_frame_then_a_drop() {
    let (mut board, _bridge, _) = connected();
    let garbage = Base64::encode_string(&[0xee; 16]);
    board.handle_message(
        &json!({"kind": "bytes", "project": "p", "data": garbage}),
        3,
    );
    let out = drain(&mut board, 3);
    let kinds: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::ToExtension(ToExtension::Bytes { .. }) => Some("bytes"),
            Output::ToExtension(ToExtension::Drop { .. }) => Some("drop"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["bytes", "drop"], "{out:?}");
    let error = &bytes_out(&out)[0];
    assert_eq!(error[0], 0x02, "an Error frame tells the bridge why");
    // Bytes of that link after it are not read.
    board.handle_message(
        &json!({"kind": "bytes", "project": "p", "data": garbage}),
        4,
    );
    assert!(bytes_out(&drain(&mut board, 4)).is_empty());
}

#[test]
fn a_proxy_is_refused_at_once_while_no_extension_is_connected() {
    let mut board = Switchboard::new(ChaCha8Rng::seed_from_u64(14), Config::default());
    board.proxy_request(ProxyId(1), &request("p"), 0);
    let out = drain(&mut board, 0);
    assert_eq!(wants(&out), 0);
    match &actions(&out, ProxyId(1))[..] {
        [ProxyAction::Answer(answer), ProxyAction::Close] => {
            assert!(!answer.ok);
            let error = answer.error.as_deref().unwrap();
            assert!(error.contains("extension is not connected"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!board.has_proxies());
}

#[test]
fn a_restarted_extension_is_asked_for_the_link_and_the_stream_resumes() {
    let (mut board, mut bridge, stream) = connected();
    let proxy = ProxyId(1);
    // The worker stops: its native port closes mid-stream.
    board.extension_gone(10);
    bridge.ep.link_lost(10);
    board.proxy_data(proxy, b"while away".to_vec());
    let out = drain(&mut board, 10);
    assert!(bytes_out(&out).is_empty(), "nothing goes out with no link");
    assert!(board.has_proxies(), "the stream waits");
    // A new worker greets the helper: it is asked for p's link at once.
    board.handle_message(&json!({"kind": "hello"}), 2_000);
    let out = drain(&mut board, 2_000);
    assert_eq!(wants(&out), 1);
    board.handle_message(&json!({"kind": "linkUp", "project": "p", "link": 1}), 2_100);
    bridge.ep.link_up(2_100);
    bridge.take(&drain(&mut board, 2_100), 2_100);
    bridge.give(&mut board, "p", 2_100, 7);
    bridge.take(&drain(&mut board, 2_100), 2_100);
    let mut got = Vec::new();
    bridge.ep.read(stream, &mut got).unwrap();
    assert_eq!(got, b"while away", "every byte once, none lost");
    // A second hello with the link up asks for nothing.
    board.handle_message(&json!({"kind": "hello"}), 2_200);
    assert_eq!(wants(&drain(&mut board, 2_200)), 0);
}
