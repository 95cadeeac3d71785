//! Reference timing for `npm run bench -- keygen`: the bare ssh-key library call, natively.
//! Prints one JSON array of milliseconds per generated Ed25519 key.

use std::time::Instant;

use rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(15);
    let samples: Vec<String> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519);
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert!(key.is_ok(), "Ed25519 generation failed");
            format!("{elapsed:.6}")
        })
        .collect();
    println!("[{}]", samples.join(","));
}
