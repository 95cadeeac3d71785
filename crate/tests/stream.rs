//! The stream protocol: its wire format, and two endpoints moving streams both ways over a
//! link that reorders, splits, duplicates and drops (then resumes).
// Host only: proptest is a host dev-dependency; the module itself builds for wasm32 too.
#![cfg(not(target_arch = "wasm32"))]
use std::collections::{BTreeMap, BTreeSet};

use aistudio_ssh::stream::{
    Ack, Config, DecodeError, Decoder, Endpoint, ErrorCode, Event, Frame, Hello, LinkError, LinkId,
    ResetCode, StreamId, Version, INITIAL_WINDOW, MAX_PAYLOAD, MAX_RESUME_ENTRIES, VERSION,
};
use proptest::prelude::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LINK: LinkId = LinkId([7; 16]);

// ---------------------------------------------------------------------------------------
// Wire format

fn sample_frames() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello {
            version: VERSION,
            link_id: LINK,
            resume: vec![
                Ack {
                    stream: StreamId(1),
                    received: 10,
                    window: 20,
                    fin: false,
                },
                Ack {
                    stream: StreamId(2),
                    received: u64::MAX,
                    window: u32::MAX,
                    fin: true,
                },
            ],
        }),
        Frame::Error {
            code: ErrorCode::PROTOCOL,
            reason: "nope ✓".into(),
        },
        Frame::Open {
            stream: StreamId(3),
            target: "ssh".into(),
        },
        Frame::Data {
            stream: StreamId(3),
            offset: 1 << 40,
            bytes: vec![1, 2, 3],
        },
        Frame::Ack(Ack {
            stream: StreamId(3),
            received: 3,
            window: 1 << 22,
            fin: true,
        }),
        Frame::Close {
            stream: StreamId(3),
            final_offset: 99,
        },
        Frame::Reset {
            stream: StreamId(4),
            code: ResetCode::REFUSED,
            reason: "connection refused".into(),
        },
        Frame::Ping { nonce: 5 },
        Frame::Pong { nonce: 6 },
    ]
}

fn decode_all(bytes: &[u8]) -> Result<Frame, DecodeError> {
    match Frame::decode(bytes)? {
        Some((frame, used)) if used == bytes.len() => Ok(frame),
        other => panic!("expected exactly one frame, got {other:?}"),
    }
}

#[test]
fn the_layout_is_little_endian_behind_a_type_and_length() {
    let data = Frame::Data {
        stream: StreamId(3),
        offset: 0x0102,
        bytes: b"hi".to_vec(),
    };
    assert_eq!(
        data.to_bytes().unwrap(),
        [4, 14, 0, 0, 0, 3, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, b'h', b'i']
    );
    let hello = Frame::Hello(Hello {
        version: Version { major: 1, minor: 0 },
        link_id: LinkId([0xab; 16]),
        resume: vec![],
    });
    let mut expected = vec![1, 24, 0, 0, 0, b'A', b'S', b'S', b'H', 1, 0];
    expected.extend([0xab; 16]);
    expected.extend([0, 0]);
    assert_eq!(hello.to_bytes().unwrap(), expected);
}

#[test]
fn every_frame_type_round_trips() {
    for frame in sample_frames() {
        let bytes = frame.to_bytes().unwrap();
        assert_eq!(decode_all(&bytes), Ok(frame));
    }
}

#[test]
fn a_body_cut_short_or_too_long_is_refused() {
    for frame in sample_frames() {
        let bytes = frame.to_bytes().unwrap();
        let body = &bytes[5..];
        // Every shorter body, announced as such: a field ends inside it.
        let fixed_prefix_ok = matches!(frame, Frame::Data { .. });
        for cut in 0..body.len() {
            let mut short = vec![bytes[0]];
            short.extend((cut as u32).to_le_bytes());
            short.extend(&body[..cut]);
            let result = Frame::decode(&short);
            if fixed_prefix_ok && cut >= 12 {
                // A Data body past its header is just fewer bytes.
                assert!(matches!(result, Ok(Some(_))), "{frame:?} cut at {cut}");
            } else {
                assert!(result.is_err(), "{frame:?} cut at {cut} gave {result:?}");
            }
        }
        // One byte more than its fields.
        if !matches!(frame, Frame::Data { .. }) {
            let mut long = bytes.clone();
            long.push(0);
            let len = (body.len() as u32 + 1).to_le_bytes();
            long[1..5].copy_from_slice(&len);
            // Fixed-size bodies fail from the header alone.
            assert!(
                matches!(
                    Frame::decode(&long),
                    Err(DecodeError::TrailingBytes { extra: 1, .. } | DecodeError::Oversized { .. })
                ),
                "{frame:?}"
            );
        }
    }
}

#[test]
fn malformed_fields_are_typed_errors() {
    let mut zero_stream = Frame::Close {
        stream: StreamId(1),
        final_offset: 0,
    }
    .to_bytes()
    .unwrap();
    zero_stream[5] = 0;
    assert!(matches!(
        decode_all(&zero_stream),
        Err(DecodeError::ZeroStream { .. })
    ));

    let mut bad_text = Frame::Open {
        stream: StreamId(1),
        target: "ab".into(),
    }
    .to_bytes()
    .unwrap();
    bad_text[10] = 0xff;
    assert!(matches!(
        decode_all(&bad_text),
        Err(DecodeError::NotUtf8 { .. })
    ));

    let hello = sample_frames().remove(0).to_bytes().unwrap();
    let mut bad_magic = hello.clone();
    bad_magic[5] = b'X';
    assert_eq!(decode_all(&bad_magic), Err(DecodeError::BadMagic));

    let mut v2 = hello.clone();
    v2[9] = 2;
    assert_eq!(
        decode_all(&v2),
        Err(DecodeError::UnsupportedVersion {
            theirs: Version { major: 2, minor: 0 }
        })
    );

    let mut too_many = hello;
    let count = (MAX_RESUME_ENTRIES as u16 + 1).to_le_bytes();
    too_many[27..29].copy_from_slice(&count);
    assert!(matches!(
        decode_all(&too_many),
        Err(DecodeError::TooManyEntries { .. })
    ));

    assert_eq!(
        Frame::decode(&[0, 0, 0, 0, 0]),
        Err(DecodeError::UnknownType { frame_type: 0 })
    );
    let oversized = Frame::Data {
        stream: StreamId(1),
        offset: 0,
        bytes: vec![0; MAX_PAYLOAD + 1],
    };
    assert!(oversized.to_bytes().is_err());
    let mut header = vec![4];
    header.extend(((MAX_PAYLOAD + 13) as u32).to_le_bytes());
    assert!(matches!(
        Frame::decode(&header),
        Err(DecodeError::Oversized { .. })
    ));
}

fn any_text(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max_chars).prop_map(|c| c.into_iter().collect())
}

fn any_ack() -> impl Strategy<Value = Ack> {
    (1u32.., any::<u64>(), any::<u32>(), any::<bool>()).prop_map(|(s, received, window, fin)| Ack {
        stream: StreamId(s),
        received,
        window,
        fin,
    })
}

fn any_frame() -> impl Strategy<Value = Frame> {
    let id = (1u32..).prop_map(StreamId);
    prop_oneof![
        (
            any::<u8>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(any_ack(), 0..20)
        )
            .prop_map(|(minor, link, resume)| Frame::Hello(Hello {
                version: Version { major: 1, minor },
                link_id: LinkId(link),
                resume
            })),
        (any::<u16>(), any_text(200)).prop_map(|(c, reason)| Frame::Error {
            code: ErrorCode(c),
            reason
        }),
        (id.clone(), any_text(60)).prop_map(|(stream, target)| Frame::Open { stream, target }),
        (
            id.clone(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(stream, offset, bytes)| Frame::Data {
                stream,
                offset,
                bytes
            }),
        any_ack().prop_map(Frame::Ack),
        (id.clone(), any::<u64>()).prop_map(|(stream, final_offset)| Frame::Close {
            stream,
            final_offset
        }),
        (id, any::<u16>(), any_text(200)).prop_map(|(stream, c, reason)| Frame::Reset {
            stream,
            code: ResetCode(c),
            reason
        }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_frame_round_trips(frame in any_frame()) {
        let bytes = frame.to_bytes().unwrap();
        prop_assert_eq!(decode_all(&bytes), Ok(frame));
    }

    #[test]
    fn the_decoder_takes_the_stream_in_any_pieces(
        frames in proptest::collection::vec(any_frame(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode(&mut bytes).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for piece in cuts.windows(2) {
            decoder.push(&bytes[piece[0]..piece[1]]);
            while let Some(frame) = decoder.next_frame().unwrap() {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), ty in 0u8..12) {
        let mut framed = vec![ty];
        framed.extend((bytes.len() as u32).to_le_bytes());
        framed.extend(&bytes);
        let _ = Frame::decode(&framed);
        let _ = Frame::decode(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// Two endpoints over a faulty in-memory link

/// Faults the link makes; probabilities in percent per chance.
#[derive(Debug, Clone, Copy)]
struct Faults {
    reorder: u64,
    duplicate: u64,
    drop_per_step: u64,
    skip_read: u64,
}

const CLEAN: Faults = Faults {
    reorder: 0,
    duplicate: 0,
    drop_per_step: 0,
    skip_read: 0,
};

struct Side {
    ep: Endpoint,
    decoder: Decoder,
    /// Frames on their way to this side.
    inbound: Vec<Frame>,
    /// What this side sends on each stream, and how much it has written.
    plan: BTreeMap<StreamId, (Vec<u8>, usize)>,
    received: BTreeMap<StreamId, Vec<u8>>,
    closed: BTreeSet<StreamId>,
    finished: BTreeSet<StreamId>,
    resets: Vec<Event>,
}

impl Side {
    fn new(ep: Endpoint) -> Self {
        Self {
            ep,
            decoder: Decoder::new(),
            inbound: Vec::new(),
            plan: BTreeMap::new(),
            received: BTreeMap::new(),
            closed: BTreeSet::new(),
            finished: BTreeSet::new(),
            resets: Vec::new(),
        }
    }
}

struct Harness {
    a: Side,
    b: Side,
    rng: ChaCha8Rng,
    now: u64,
    faults: Faults,
    /// The link is down until then.
    down_until: Option<u64>,
    max_size: usize,
    window: u32,
    drops: usize,
}

fn chance(rng: &mut ChaCha8Rng, percent: u64) -> bool {
    percent > 0 && rng.next_u64() % 100 < percent
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let mut bytes = vec![0; below(rng, max + 1)];
    rng.fill_bytes(&mut bytes);
    bytes
}

impl Harness {
    fn new(seed: u64, config: Config, faults: Faults, max_size: usize) -> Self {
        let window = config.window;
        let mut h = Self {
            a: Side::new(Endpoint::initiator(LINK, config.clone(), 0)),
            b: Side::new(Endpoint::acceptor(config, 0)),
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            faults,
            down_until: None,
            max_size,
            window,
            drops: 0,
        };
        h.a.ep.link_up(0);
        h.b.ep.link_up(0);
        h
    }

    fn open(&mut self, on_a: bool, count: usize) {
        for _ in 0..count {
            let data = random_bytes(&mut self.rng, self.max_size);
            let side = if on_a { &mut self.a } else { &mut self.b };
            let id = side.ep.open_stream("ssh");
            side.plan.insert(id, (data, 0));
            side.received.insert(id, Vec::new());
        }
    }

    fn step(&mut self) {
        self.now += below(&mut self.rng, 15) as u64;
        let now = self.now;
        if let Some(until) = self.down_until {
            if now >= until {
                self.down_until = None;
                self.a.ep.link_up(now);
                self.b.ep.link_up(now);
            }
        } else if chance(&mut self.rng, self.faults.drop_per_step) {
            self.drop_link();
        }
        for on_a in [true, false] {
            self.application(on_a);
            self.transmit(on_a);
        }
        for on_a in [true, false] {
            self.deliver(on_a);
        }
        self.check_flow_control();
    }

    /// Every frame in flight and every partial frame is lost; the link comes back later.
    fn drop_link(&mut self) {
        let now = self.now;
        self.drops += 1;
        self.down_until = Some(now + below(&mut self.rng, 3000) as u64);
        for side in [&mut self.a, &mut self.b] {
            side.inbound.clear();
            side.decoder = Decoder::new();
            side.ep.link_lost(now);
        }
    }

    fn application(&mut self, on_a: bool) {
        let skip_read = chance(&mut self.rng, self.faults.skip_read);
        let side = if on_a { &mut self.a } else { &mut self.b };
        let mut opened = Vec::new();
        while let Some(event) = side.ep.poll_event() {
            match event {
                Event::StreamOpened { stream, target } => {
                    assert_eq!(target, "ssh");
                    opened.push(stream);
                }
                Event::Closed { stream } => assert!(side.closed.insert(stream)),
                Event::Finished { stream } => assert!(side.finished.insert(stream)),
                Event::Reset { .. } => side.resets.push(event),
                Event::LinkFailed { error } => panic!("link failed: {error}"),
                Event::LinkTimedOut => panic!("link timed out"),
                _ => {}
            }
        }
        for stream in opened {
            let data = random_bytes(&mut self.rng, self.max_size);
            let side = if on_a { &mut self.a } else { &mut self.b };
            assert!(side.received.insert(stream, Vec::new()).is_none());
            side.plan.insert(stream, (data, 0));
        }
        let side = if on_a { &mut self.a } else { &mut self.b };
        for (&id, (data, written)) in &mut side.plan {
            if *written < data.len() {
                if let Ok(n) = side.ep.write(id, &data[*written..]) {
                    *written += n;
                }
            }
            if *written == data.len() {
                let _ = side.ep.close(id);
            }
        }
        if !skip_read {
            for (&id, got) in &mut side.received {
                let _ = side.ep.read(id, got);
            }
        }
    }

    fn transmit(&mut self, on_a: bool) {
        let (from, to) = if on_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        while let Some(frame) = from.ep.poll_transmit(self.now) {
            let again = matches!(frame, Frame::Data { .. } | Frame::Ack(_))
                && chance(&mut self.rng, self.faults.duplicate);
            to.inbound.push(frame.clone());
            if again {
                let at = to.inbound.len() + below(&mut self.rng, 3);
                to.inbound.insert(at.min(to.inbound.len()), frame);
            }
        }
    }

    fn deliver(&mut self, on_a: bool) {
        let rng = &mut self.rng;
        let side = if on_a { &mut self.a } else { &mut self.b };
        // Data may be held back behind later frames (never ahead of its stream's Open).
        if side.inbound.len() > 1
            && matches!(side.inbound[0], Frame::Data { .. })
            && chance(rng, self.faults.reorder)
        {
            let frame = side.inbound.remove(0);
            let at = 1 + below(rng, side.inbound.len());
            side.inbound.insert(at.min(side.inbound.len()), frame);
        }
        let count = below(rng, side.inbound.len() + 1).max(side.inbound.len().min(1));
        let mut bytes = Vec::new();
        for frame in side.inbound.drain(..count) {
            frame.encode(&mut bytes).unwrap();
        }
        // The bytes arrive in pieces cut anywhere.
        let mut cuts: Vec<usize> = (0..below(rng, 4))
            .map(|_| below(rng, bytes.len() + 1))
            .collect();
        cuts.extend([0, bytes.len()]);
        cuts.sort_unstable();
        for piece in cuts.windows(2) {
            side.decoder.push(&bytes[piece[0]..piece[1]]);
            while let Some(frame) = side.decoder.next_frame().expect("frames decode") {
                side.ep.handle(frame, self.now);
            }
        }
    }

    fn check_flow_control(&self) {
        for (side, peer) in [(&self.a, &self.b), (&self.b, &self.a)] {
            for id in side.ep.streams() {
                let info = side.ep.stream_info(id).unwrap();
                assert!(info.sent <= info.peer_limit, "{id}: {info:?}");
                assert!(
                    info.sent - info.acked <= u64::from(self.window),
                    "{id}: unacknowledged bytes beyond the window: {info:?}"
                );
                assert!(
                    info.buffered as u64 <= u64::from(self.window),
                    "{id}: {info:?}"
                );
                if let Some(theirs) = peer.ep.stream_info(id) {
                    assert!(info.sent <= theirs.read + u64::from(self.window));
                }
            }
        }
    }

    fn done(&self) -> bool {
        let all = |s: &Side| s.received.keys().all(|id| s.finished.contains(id));
        self.down_until.is_none()
            && all(&self.a)
            && all(&self.b)
            && self.a.received.len() == self.b.received.len()
    }

    fn run(&mut self, max_steps: usize) {
        let mut steps = 0;
        while !self.done() {
            steps += 1;
            assert!(
                steps < max_steps,
                "no progress after {steps} steps: a holds {:?}, b holds {:?}",
                self.a
                    .ep
                    .streams()
                    .map(|id| self.a.ep.stream_info(id))
                    .collect::<Vec<_>>(),
                self.b
                    .ep
                    .streams()
                    .map(|id| self.b.ep.stream_info(id))
                    .collect::<Vec<_>>()
            );
            self.step();
        }
        for (side, peer) in [(&self.a, &self.b), (&self.b, &self.a)] {
            assert!(side.resets.is_empty(), "resets: {:?}", side.resets);
            assert_eq!(side.ep.streams().count(), 0);
            for (id, got) in &side.received {
                let sent = &peer.plan[id].0;
                assert!(
                    got == sent,
                    "{id}: {} bytes received of {}, first difference at {:?}",
                    got.len(),
                    sent.len(),
                    got.iter().zip(sent).position(|(x, y)| x != y)
                );
                assert!(side.closed.contains(id));
            }
        }
    }
}

fn small_config(window_extra: u32, chunk: usize, send_buffer: usize) -> Config {
    Config {
        window: INITIAL_WINDOW + window_extra,
        send_buffer,
        max_chunk: chunk,
        ..Config::default()
    }
}

/// The same, with data coalesced while `coalesce_bytes` are in flight (0: never).
fn coalescing(config: Config, coalesce_bytes: usize) -> Config {
    Config {
        coalesce_bytes,
        coalesce_ms: 5,
        ..config
    }
}

#[test]
fn streams_both_ways_arrive_whole_over_a_clean_link() {
    let mut h = Harness::new(1, small_config(0, 4096, 30_000), CLEAN, 200_000);
    h.open(true, 3);
    h.open(false, 2);
    h.run(20_000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn streams_arrive_exactly_once_through_reorder_split_duplicate_and_drops(
        seed in any::<u64>(),
        from_a in 1usize..4,
        from_b in 0usize..3,
        window_extra in prop_oneof![Just(0u32), Just(200_000)],
        chunk in 256usize..8192,
        send_buffer in 1000usize..100_000,
        coalesce_bytes in prop_oneof![Just(0usize), 1000usize..50_000],
    ) {
        let faults = Faults { reorder: 30, duplicate: 10, drop_per_step: 2, skip_read: 30 };
        let config = coalescing(small_config(window_extra, chunk, send_buffer), coalesce_bytes);
        let mut h = Harness::new(seed, config, faults, 120_000);
        h.open(true, from_a);
        h.open(false, from_b);
        // Drops in the middle of the transfer, with frames in flight; streams opened meanwhile.
        for _ in 0..10 {
            h.step();
        }
        if h.down_until.is_none() {
            h.drop_link();
        }
        h.open(true, 1);
        while h.down_until.is_some() {
            h.step();
        }
        for _ in 0..10 {
            h.step();
        }
        if h.down_until.is_none() {
            h.drop_link();
        }
        h.run(40_000);
        prop_assert!(h.drops >= 2);
    }
}

#[test]
fn a_stream_whose_open_was_lost_is_opened_again_on_resume() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    let id = a.open_stream("ssh");
    a.write(id, b"hello").unwrap();
    // The Open and the Data go out, and are lost with the link.
    while a.poll_transmit(1).is_some() {}
    a.link_lost(2);
    b.link_lost(2);
    a.link_up(3);
    b.link_up(3);
    handshake(&mut a, &mut b, 3);
    pump(&mut a, &mut b, 4);
    let mut got = Vec::new();
    b.read(id, &mut got).unwrap();
    assert_eq!(got, b"hello");
}

fn handshake(a: &mut Endpoint, b: &mut Endpoint, now: u64) {
    let hello = a.poll_transmit(now).expect("the initiator's Hello");
    assert!(matches!(hello, Frame::Hello(_)));
    assert_eq!(
        b.poll_transmit(now),
        None,
        "the acceptor waits for the Hello"
    );
    b.handle(hello, now);
    let answer = b.poll_transmit(now).expect("the acceptor's Hello");
    a.handle(answer, now);
    assert!(a.is_up() && b.is_up());
}

/// Moves frames both ways until neither side has any.
fn pump(a: &mut Endpoint, b: &mut Endpoint, now: u64) {
    loop {
        let mut moved = false;
        while let Some(frame) = a.poll_transmit(now) {
            b.handle(frame, now);
            moved = true;
        }
        while let Some(frame) = b.poll_transmit(now) {
            a.handle(frame, now);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

/// An initiator and an acceptor whose link is up and past its handshake at time 0.
fn linked(initiator: Config, acceptor: Config) -> (Endpoint, Endpoint) {
    let mut a = Endpoint::initiator(LINK, initiator, 0);
    let mut b = Endpoint::acceptor(acceptor, 0);
    a.link_up(0);
    b.link_up(0);
    handshake(&mut a, &mut b, 0);
    (a, b)
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

#[test]
fn a_receiver_that_does_not_read_stops_the_sender_at_the_window() {
    let config = small_config(0, 16_384, 1_000_000);
    let (mut a, mut b) = linked(config.clone(), config);
    let id = a.open_stream("ssh");
    assert_eq!(a.write(id, &[9; 1_000_000]).unwrap(), 1_000_000);
    for now in 1..50 {
        pump(&mut a, &mut b, now * 20);
    }
    let sent = a.stream_info(id).unwrap();
    assert_eq!(sent.sent, u64::from(INITIAL_WINDOW));
    assert_eq!(b.stream_info(id).unwrap().buffered, INITIAL_WINDOW as usize);
    // Reading frees the window, and the sender goes on.
    b.read(id, &mut Vec::new()).unwrap();
    for now in 50..60 {
        pump(&mut a, &mut b, now * 20);
    }
    assert_eq!(
        a.stream_info(id).unwrap().sent,
        2 * u64::from(INITIAL_WINDOW)
    );
}

#[test]
fn a_writer_past_its_send_buffer_is_told_when_to_write_again() {
    let config = small_config(0, 16_384, 10_000);
    let (mut a, mut b) = linked(config.clone(), config);
    let id = a.open_stream("ssh");
    assert_eq!(a.write(id, &[1; 25_000]).unwrap(), 10_000);
    assert_eq!(a.write(id, &[1; 5]).unwrap(), 0);
    pump(&mut a, &mut b, 100);
    assert!(events(&mut a).contains(&Event::Writable { stream: id }));
    assert_eq!(a.write(id, &[1; 25_000]).unwrap(), 10_000);
}

#[test]
fn streams_of_a_link_down_past_the_grace_period_are_reset() {
    let config = Config {
        grace_ms: 60_000,
        ..Config::default()
    };
    let (mut a, mut b) = linked(config.clone(), config);
    let id = a.open_stream("ssh");
    a.write(id, b"x").unwrap();
    pump(&mut a, &mut b, 10);
    events(&mut a);
    a.link_lost(1_000);
    a.handle_timeout(60_999);
    assert_eq!(events(&mut a), vec![]);
    assert_eq!(a.poll_timeout(), Some(61_000));
    a.handle_timeout(61_000);
    let got = events(&mut a);
    assert!(
        matches!(&got[..], [Event::Reset { stream, code, reason }, Event::LinkTimedOut]
            if *stream == id && *code == ResetCode::LINK_TIMEOUT && reason.contains("60 s")),
        "{got:?}"
    );
    assert_eq!(a.streams().count(), 0);
}

#[test]
fn a_link_back_within_the_grace_period_keeps_its_streams() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    let id = a.open_stream("ssh");
    pump(&mut a, &mut b, 10);
    a.link_lost(1_000);
    b.link_lost(1_000);
    a.link_up(100_000);
    b.link_up(100_000);
    handshake(&mut a, &mut b, 100_000);
    a.handle_timeout(200_000);
    assert!(a.stream_info(id).is_some());
    assert!(!events(&mut a).contains(&Event::LinkTimedOut));
}

#[test]
fn another_major_version_gets_an_error_frame_and_the_link_closes() {
    let mut b = Endpoint::acceptor(Config::default(), 0);
    b.link_up(0);
    b.handle(
        Frame::Hello(Hello {
            version: Version { major: 2, minor: 0 },
            link_id: LINK,
            resume: vec![],
        }),
        1,
    );
    let error = b.poll_transmit(1);
    assert!(
        matches!(&error, Some(Frame::Error { code, reason })
            if *code == ErrorCode::UNSUPPORTED_VERSION && reason.contains("2.0") && reason.contains("1.0")),
        "{error:?}"
    );
    assert_eq!(b.poll_transmit(1), None);
    assert!(matches!(
        &events(&mut b)[..],
        [Event::LinkFailed {
            error: LinkError::UnsupportedVersion { .. }
        }]
    ));

    // The same through the decoder, which stops at the version.
    let mut v2 = Frame::Hello(Hello {
        version: VERSION,
        link_id: LINK,
        resume: vec![],
    })
    .to_bytes()
    .unwrap();
    v2[9] = 2;
    let mut decoder = Decoder::new();
    decoder.push(&v2);
    let mut a = Endpoint::initiator(LINK, Config::default(), 0);
    a.link_up(0);
    a.poll_transmit(0);
    a.handle_decode_error(decoder.next_frame().unwrap_err(), 1);
    assert!(matches!(
        a.poll_transmit(1),
        Some(Frame::Error { code, .. }) if code == ErrorCode::UNSUPPORTED_VERSION
    ));
}

#[test]
fn a_hello_for_another_link_is_refused() {
    let mut a = Endpoint::initiator(LINK, Config::default(), 0);
    a.link_up(0);
    a.poll_transmit(0);
    a.handle(
        Frame::Hello(Hello {
            version: VERSION,
            link_id: LinkId([1; 16]),
            resume: vec![],
        }),
        1,
    );
    assert!(matches!(
        a.poll_transmit(1),
        Some(Frame::Error { code, .. }) if code == ErrorCode::LINK_MISMATCH
    ));
}

#[test]
fn a_reset_reaches_the_other_application_with_its_reason() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    let id = a.open_stream("ssh");
    pump(&mut a, &mut b, 1);
    b.reset(
        id,
        ResetCode::REFUSED,
        "sshd is not listening on 127.0.0.1:2222",
    )
    .unwrap();
    pump(&mut a, &mut b, 2);
    assert!(events(&mut a).contains(&Event::Reset {
        stream: id,
        code: ResetCode::REFUSED,
        reason: "sshd is not listening on 127.0.0.1:2222".into()
    }));
    assert_eq!(
        a.write(id, b"x"),
        Err(aistudio_ssh::stream::StreamError::Unknown { stream: id })
    );
}

#[test]
fn data_past_the_window_resets_the_stream() {
    let (mut a, mut b) = linked(Config::default(), small_config(0, 1024, 1024));
    let id = a.open_stream("ssh");
    pump(&mut a, &mut b, 1);
    b.handle(
        Frame::Data {
            stream: id,
            offset: u64::from(INITIAL_WINDOW),
            bytes: vec![1],
        },
        2,
    );
    assert!(events(&mut b)
        .iter()
        .any(|e| matches!(e, Event::Reset { code, .. } if *code == ResetCode::FLOW_CONTROL)));
    assert!(matches!(
        b.poll_transmit(2),
        Some(Frame::Reset { code, .. }) if code == ResetCode::FLOW_CONTROL
    ));
}

#[test]
fn opens_past_the_stream_limit_are_refused() {
    let config = Config {
        max_streams: 1,
        ..Config::default()
    };
    let (mut a, mut b) = linked(Config::default(), config);
    let first = a.open_stream("ssh");
    let second = a.open_stream("ssh");
    pump(&mut a, &mut b, 1);
    assert!(b.stream_info(first).is_some());
    assert!(events(&mut a)
        .iter()
        .any(|e| matches!(e, Event::Reset { stream, code, .. } if *stream == second && *code == ResetCode::TOO_MANY_STREAMS)));
}

#[test]
fn an_idle_link_pings_and_measures_the_round_trip() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    assert_eq!(a.poll_transmit(9_999), None);
    assert_eq!(a.poll_timeout(), Some(10_000));
    let ping = a.poll_transmit(10_000).unwrap();
    assert!(matches!(ping, Frame::Ping { .. }));
    b.handle(ping, 10_010);
    let pong = b.poll_transmit(10_010).unwrap();
    assert!(matches!(pong, Frame::Pong { .. }));
    a.handle(pong, 10_030);
    assert_eq!(a.rtt_ms(), Some(30));
    // A link silent for too long is reported once.
    a.handle_timeout(10_030 + 40_000);
    assert!(events(&mut a).contains(&Event::LinkSilent));
}

/// What `a` sends at `now` reaches `b` (whose answers wait); its Data frames as (offset, length).
fn data_sent(a: &mut Endpoint, b: &mut Endpoint, now: u64) -> Vec<(u64, usize)> {
    let mut data = Vec::new();
    while let Some(frame) = a.poll_transmit(now) {
        if let Frame::Data { offset, bytes, .. } = &frame {
            data.push((*offset, bytes.len()));
        }
        b.handle(frame, now);
    }
    data
}

#[test]
fn a_busy_link_sends_data_in_batches_and_an_idle_one_at_once() {
    let config = Config {
        coalesce_bytes: 64 * 1024,
        coalesce_ms: 8,
        ..Config::default()
    };
    let (mut a, mut b) = linked(config.clone(), config);
    let id = a.open_stream("ssh");
    // Nothing in flight (typing): a byte goes at once, and the peer's Ack opens its window.
    a.write(id, b"x").unwrap();
    pump(&mut a, &mut b, 1);
    assert_eq!(b.stream_info(id).unwrap().received, 1);
    assert_eq!(a.stream_info(id).unwrap().acked, 1);

    // A batch's worth goes at once too; its Acks are held back, so the link stays busy.
    a.write(id, &[1; 100_000]).unwrap();
    assert_eq!(
        data_sent(&mut a, &mut b, 2)
            .iter()
            .map(|d| d.1)
            .sum::<usize>(),
        100_000
    );
    // Less than a batch now waits, for at most coalesce_ms.
    a.write(id, &[2; 1000]).unwrap();
    assert_eq!(data_sent(&mut a, &mut b, 10), []);
    assert_eq!(a.poll_timeout(), Some(18));
    a.write(id, &[3; 1000]).unwrap();
    assert_eq!(data_sent(&mut a, &mut b, 17), []);
    assert_eq!(data_sent(&mut a, &mut b, 18), [(100_001, 2000)]);

    // More than a batch ready goes at once, all of it (the last frames are under a batch).
    a.write(id, &[4; 1000]).unwrap();
    assert_eq!(data_sent(&mut a, &mut b, 20), []);
    a.write(id, &[5; 200_000]).unwrap();
    let sent = data_sent(&mut a, &mut b, 21);
    assert_eq!(sent.first().map(|d| d.0), Some(102_001));
    assert_eq!(sent.iter().map(|d| d.1).sum::<usize>(), 201_000);

    // The last bytes of a stream do not wait.
    a.write(id, &[6; 10]).unwrap();
    a.close(id).unwrap();
    assert_eq!(data_sent(&mut a, &mut b, 22), [(303_001, 10)]);

    // Once the peer acknowledged what was in flight, the link is idle again: no wait.
    let other = a.open_stream("ssh");
    pump(&mut a, &mut b, 30);
    assert_eq!(a.stream_info(id).unwrap().acked, 303_011);
    a.write(other, b"y").unwrap();
    assert_eq!(data_sent(&mut a, &mut b, 31).len(), 1);
}

#[test]
fn a_bridge_that_lost_its_state_resets_the_streams_it_knew_and_gets_the_new_ones() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    let known = a.open_stream("ssh");
    a.write(known, b"one").unwrap();
    pump(&mut a, &mut b, 1);
    // A second stream whose Open never reaches the bridge.
    let unheard = a.open_stream("ssh");
    a.write(unheard, b"two").unwrap();
    while a.poll_transmit(2).is_some() {}
    a.link_lost(3);
    events(&mut a);

    // The bridge restarted: a fresh acceptor answers the same link.
    let mut fresh = Endpoint::acceptor(Config::default(), 4);
    a.link_up(5);
    fresh.link_up(5);
    handshake(&mut a, &mut fresh, 5);
    pump(&mut a, &mut fresh, 6);
    let got = events(&mut a);
    assert!(
        got.iter()
            .any(|e| matches!(e, Event::Reset { stream, code, reason }
            if *stream == known && *code == ResetCode::GONE && reason.contains("other end"))),
        "{got:?}"
    );
    assert_eq!(a.stream_info(known), None);
    let mut two = Vec::new();
    fresh.read(unheard, &mut two).unwrap();
    assert_eq!(two, b"two");
    assert_eq!(fresh.stream_info(known), None);
}

#[test]
fn a_peer_that_never_answers_the_hello_is_reported_silent() {
    let mut a = Endpoint::initiator(LINK, Config::default(), 0);
    a.link_up(0);
    assert!(matches!(a.poll_transmit(0), Some(Frame::Hello(_))));
    assert_eq!(a.poll_timeout(), Some(40_000));
    a.handle_timeout(40_000);
    assert_eq!(events(&mut a), vec![Event::LinkSilent]);
}

#[test]
fn a_stream_whose_last_ack_was_lost_finishes_on_resume_without_another_read() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    let id = a.open_stream("ssh");
    a.write(id, b"hi").unwrap();
    a.close(id).unwrap();
    pump(&mut a, &mut b, 1);
    let mut got = Vec::new();
    b.read(id, &mut got).unwrap();
    b.write(id, b"yo").unwrap();
    b.close(id).unwrap();
    while let Some(frame) = b.poll_transmit(2) {
        a.handle(frame, 2);
    }
    a.read(id, &mut got).unwrap();
    assert_eq!(got, b"hiyo");
    // A sends its last Ack and is done; that Ack is lost with the link.
    while a.poll_transmit(3).is_some() {}
    assert!(events(&mut a).contains(&Event::Finished { stream: id }));
    assert!(b.stream_info(id).is_some());
    a.link_lost(4);
    b.link_lost(4);
    a.link_up(5);
    b.link_up(5);
    handshake(&mut a, &mut b, 5);
    pump(&mut a, &mut b, 6);
    assert_eq!(b.stream_info(id), None);
    assert!(events(&mut b).contains(&Event::Finished { stream: id }));
}

#[test]
fn a_reset_right_after_the_open_still_reaches_the_peer() {
    let (mut a, mut b) = linked(Config::default(), Config::default());
    let id = a.open_stream("ssh");
    let open = a.poll_transmit(1).unwrap();
    assert!(matches!(open, Frame::Open { .. }));
    b.handle(open, 1);
    // Before any answer from b, the application gives up.
    a.reset(id, ResetCode::APPLICATION, "ssh exited").unwrap();
    pump(&mut a, &mut b, 2);
    assert_eq!(b.stream_info(id), None);
    assert!(events(&mut b).contains(&Event::Reset {
        stream: id,
        code: ResetCode::APPLICATION,
        reason: "ssh exited".into()
    }));
}
