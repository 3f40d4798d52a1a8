//! The session store and the sign-in throttle, on an injected clock.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;

use super::*;

const S: Duration = Duration::from_secs(1);

fn limits(idle: u64, absolute: u64, max: usize) -> Limits {
    Limits {
        idle: S * idle as u32,
        absolute: S * absolute as u32,
        max,
    }
}

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn ids_are_random_256_bit_hex() {
    let rng = SystemRandom::new();
    let a = new_id(&rng).expect("randomness");
    let b = new_id(&rng).expect("randomness");
    assert!(well_formed(&a) && well_formed(&b), "{a} {b}");
    assert_ne!(a, b);
    for bad in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"a".repeat(65)] {
        assert!(!well_formed(bad), "{bad:?}");
    }
}

#[test]
fn a_session_ends_after_idle_time_without_requests() {
    let t0 = Instant::now();
    let mut store = Store::new(limits(10, 100, 10));
    store.insert(&id(1), "alice", t0);
    // Each request restarts the idle clock.
    for at in [5, 14, 23] {
        assert_eq!(
            store.get_mut(&id(1), t0 + S * at).copied(),
            Some("alice"),
            "at {at}s"
        );
    }
    assert_eq!(store.get_mut(&id(1), t0 + S * 33), None, "10 s idle");
    // Gone for good, not only refused once.
    assert_eq!(store.get_mut(&id(1), t0 + S * 34), None);
    assert!(store.is_empty());
}

#[test]
fn a_session_ends_at_its_absolute_expiry_however_busy() {
    let t0 = Instant::now();
    let mut store = Store::new(limits(10, 30, 10));
    store.insert(&id(1), "alice", t0);
    for at in (5..30).step_by(5) {
        assert!(store.get_mut(&id(1), t0 + S * at).is_some(), "at {at}s");
    }
    assert_eq!(store.get_mut(&id(1), t0 + S * 30), None);
}

#[test]
fn unknown_and_signed_out_sessions_are_none() {
    let t0 = Instant::now();
    let mut store = Store::new(Limits::default());
    store.insert(&id(1), 1, t0);
    assert_eq!(store.get_mut(&id(2), t0), None);
    store.remove(&id(1));
    assert_eq!(store.get_mut(&id(1), t0), None);
}

#[test]
fn a_full_store_evicts_the_oldest_session_only() {
    let t0 = Instant::now();
    let mut store = Store::new(limits(1000, 1000, 3));
    for n in 1..=3 {
        store.insert(&id(n), n, t0 + S * u32::from(n));
    }
    // Recent use does not save the oldest: eviction is by age, like the absolute expiry.
    assert!(store.get_mut(&id(1), t0 + S * 4).is_some());
    store.insert(&id(4), 4, t0 + S * 5);
    assert_eq!(store.len(), 3);
    assert_eq!(store.get_mut(&id(1), t0 + S * 6), None, "the oldest went");
    for n in 2..=4 {
        assert!(
            store.get_mut(&id(n), t0 + S * 6).is_some(),
            "session {n} stays"
        );
    }
    // A signed-out session's slot is free: the next insert evicts nobody.
    store.remove(&id(2));
    store.insert(&id(5), 5, t0 + S * 7);
    for n in 3..=5 {
        assert!(
            store.get_mut(&id(n), t0 + S * 8).is_some(),
            "session {n} stays"
        );
    }
}

#[test]
fn a_flood_of_sign_ins_keeps_the_store_bounded() {
    let t0 = Instant::now();
    let mut store = Store::new(limits(1000, 1000, 50));
    for n in 0..10_000u32 {
        let id = format!("{n:064x}");
        store.insert(&id, n, t0 + Duration::from_millis(u64::from(n)));
        if n % 3 == 0 {
            store.remove(&id);
        }
        assert!(store.len() <= 50);
        assert!(store.order.len() <= 2 * 50 + 16 + 1);
    }
    // The newest survive.
    assert!(
        store
            .get_mut(&format!("{:064x}", 9_998u32), t0 + S * 11)
            .is_some()
    );
}

#[test]
fn failed_sign_ins_are_throttled_per_address() {
    let t0 = Instant::now();
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut t = Throttle::new(100);
    for _ in 0..Throttle::MAX_FAILURES {
        assert!(t.allows(a, t0));
        t.failed(a, t0);
    }
    assert!(!t.allows(a, t0 + S), "past the limit");
    assert!(t.allows(b, t0 + S), "another address is not affected");
    assert!(t.allows(a, t0 + Throttle::WINDOW), "the window passed");
    t.failed(a, t0 + Throttle::WINDOW);
    assert!(
        t.allows(a, t0 + Throttle::WINDOW),
        "a new window counts from 1"
    );
}

#[test]
fn the_throttle_forgets_the_oldest_address_when_full() {
    let t0 = Instant::now();
    let mut t = Throttle::new(3);
    let addr = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    for n in 1..=3 {
        for _ in 0..Throttle::MAX_FAILURES {
            t.failed(addr(n), t0 + S * u32::from(n));
        }
    }
    t.failed(addr(4), t0 + S * 4);
    assert_eq!(t.len(), 3);
    assert!(t.allows(addr(1), t0 + S * 5), "the oldest was forgotten");
    assert!(!t.allows(addr(2), t0 + S * 5));
    assert!(!t.allows(addr(3), t0 + S * 5));
}
