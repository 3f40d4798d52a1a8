//! The page's session store and sign-in throttle: plain data with the clock passed
//! in (`now`), so expiry and eviction are tested without waiting.
//!
//! A session id is 256 random bits from the OS's CSPRNG (`ring::rand`), hex in the
//! cookie. The store keys sessions by a SHA-256 of the id, so comparing a guessed
//! cookie with the stored ones reveals nothing through timing, and the ids themselves
//! are never kept. Sessions end after `idle` without a request and `absolute` after
//! sign-in, whichever comes first. The store is bounded: a new session past `max`
//! evicts the oldest one, never all of them (so a flood of sign-ins cannot sign
//! everyone out at once, only the oldest sessions, one by one).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Default idle expiry: an hour without a request ends a session.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60 * 60);
/// Default absolute expiry: a session lasts at most 12 hours (a shift).
pub const DEFAULT_ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions one replica keeps.
pub const MAX_SESSIONS: usize = 10_000;

/// How long sessions last and how many there may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub idle: Duration,
    pub absolute: Duration,
    pub max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE,
            absolute: DEFAULT_ABSOLUTE,
            max: MAX_SESSIONS,
        }
    }
}

/// A fresh random id: 32 bytes from the system CSPRNG as 64 hex digits. `None`
/// only if the OS refuses randomness (then nobody can sign in, which is safe).
pub fn new_id(rng: &SystemRandom) -> Option<String> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `id` looks like one of ours (64 lowercase hex digits): anything else in
/// a cookie is not looked up at all.
pub fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

type Key = [u8; 32];

fn key(id: &str) -> Key {
    Sha256::digest(id.as_bytes()).into()
}

struct Entry<T> {
    created: Instant,
    last_seen: Instant,
    value: T,
}

/// Sessions by id, with expiry and bounded size.
pub struct Store<T> {
    limits: Limits,
    map: HashMap<Key, Entry<T>>,
    /// Keys in the order their sessions were created (oldest first); may hold keys
    /// removed since, which eviction skips.
    order: VecDeque<(Key, Instant)>,
}

impl<T> Store<T> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds a session under `id`, evicting the oldest one when the store is full.
    pub fn insert(&mut self, id: &str, value: T, now: Instant) {
        while self.map.len() >= self.limits.max.max(1) {
            let Some((k, created)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|e| e.created == created) {
                self.map.remove(&k);
            }
        }
        let k = key(id);
        self.map.insert(
            k,
            Entry {
                created: now,
                last_seen: now,
                value,
            },
        );
        self.order.push_back((k, now));
        // Keys of sessions signed out or expired stay in `order` until popped: keep
        // that list within a small multiple of the sessions.
        if self.order.len() > 2 * self.limits.max.max(1) + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, c)| map.get(k).is_some_and(|e| e.created == *c));
        }
    }

    /// The session `id`, if it exists and has not expired; the request counts as
    /// activity (the idle clock starts again). An expired session is removed.
    pub fn get_mut(&mut self, id: &str, now: Instant) -> Option<&mut T> {
        let k = key(id);
        let e = self.map.get(&k)?;
        let idle = now.saturating_duration_since(e.last_seen);
        let age = now.saturating_duration_since(e.created);
        if idle >= self.limits.idle || age >= self.limits.absolute {
            self.map.remove(&k);
            return None;
        }
        let e = self.map.get_mut(&k)?;
        e.last_seen = now;
        Some(&mut e.value)
    }

    /// Ends the session `id` (signing out).
    pub fn remove(&mut self, id: &str) {
        self.map.remove(&key(id));
    }
}

/// Failed sign-ins per client address: past [`Throttle::MAX_FAILURES`] in
/// [`Throttle::WINDOW`], that address is refused until the window ends, which makes
/// guessing tokens through the page pointless. Bounded like the store: when full,
/// the address whose window started first is forgotten.
pub struct Throttle {
    failures: HashMap<IpAddr, (u32, Instant)>,
    max_addresses: usize,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(MAX_SESSIONS)
    }
}

impl Throttle {
    pub const MAX_FAILURES: u32 = 5;
    pub const WINDOW: Duration = Duration::from_secs(60);

    pub fn new(max_addresses: usize) -> Self {
        Self {
            failures: HashMap::new(),
            max_addresses: max_addresses.max(1),
        }
    }

    /// Whether `addr` may try to sign in now.
    pub fn allows(&self, addr: IpAddr, now: Instant) -> bool {
        match self.failures.get(&addr) {
            Some((count, since)) => {
                *count < Self::MAX_FAILURES || now.saturating_duration_since(*since) >= Self::WINDOW
            }
            None => true,
        }
    }

    /// Counts a failed sign-in from `addr`.
    pub fn failed(&mut self, addr: IpAddr, now: Instant) {
        if !self.failures.contains_key(&addr) && self.failures.len() >= self.max_addresses {
            self.failures
                .retain(|_, (_, since)| now.saturating_duration_since(*since) < Self::WINDOW);
            if self.failures.len() >= self.max_addresses {
                let oldest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(a, _)| *a);
                if let Some(a) = oldest {
                    self.failures.remove(&a);
                }
            }
        }
        let entry = self.failures.entry(addr).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests;
