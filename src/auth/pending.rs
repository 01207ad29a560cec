//! Short-lived authorization state kept in memory with bounds a flood cannot turn against a real
//! user: outstanding authorization codes and consent pages ([`Pending`]), and the codes already
//! redeemed, remembered until they would have expired so that a replay can revoke what the
//! first redemption issued ([`Redeemed`]).
//!
//! The configured client's id is public (it is typed into Claude.ai), so anyone can ask
//! `/authorize` for codes in its name. A table of pending entries therefore refuses a new entry
//! only when *its address* already holds too many (the flooder is refused, nobody else); past the
//! per-client cap it drops *that client's* oldest entry, and past the total cap the oldest entry
//! of all. A real user's code is redeemed within seconds of being issued, so dropping the oldest
//! costs them nothing unless the attacker issues a whole cap's worth of entries in those seconds,
//! which the per-address rate limit and cap make need many addresses.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use crate::net::AddrBucket;

/// The bounds of a [`Pending`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Most entries in all.
    pub total: usize,
    /// Most entries per client: past it, that client's oldest is dropped.
    pub per_client: usize,
    /// Most entries per address bucket: past it, the address is refused.
    pub per_addr: usize,
}

/// Why an entry was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    /// The requester's address already holds [`Caps::per_addr`] live entries.
    #[error("too many pending authorizations from this address")]
    AddressFull,
}

/// One entry and its bookkeeping.
#[derive(Debug)]
struct Entry<T> {
    /// What is kept.
    value: T,
    /// Insertion number: smaller is older.
    seq: u64,
    /// The client it is for (its per-client count).
    client: String,
    /// The address that asked for it (its per-address count), if known.
    addr: Option<AddrBucket>,
    /// When it stops being usable.
    expires: Instant,
}

/// Entries by key (a hash of a code, a consent id), bounded by [`Caps`]. All entries of one table
/// live equally long, so insertion order is expiry order.
#[derive(Debug)]
pub struct Pending<T> {
    /// The bounds.
    caps: Caps,
    /// Entries by key.
    entries: HashMap<String, Entry<T>>,
    /// seq → key, oldest first.
    order: BTreeMap<u64, String>,
    /// client → (seq → key), oldest first.
    by_client: HashMap<String, BTreeMap<u64, String>>,
    /// Live entries per address bucket.
    by_addr: HashMap<AddrBucket, usize>,
    /// The next insertion number.
    next_seq: u64,
}

impl<T> Pending<T> {
    /// An empty table with these bounds.
    pub fn new(caps: Caps) -> Self {
        Pending {
            caps,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            by_client: HashMap::new(),
            by_addr: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Entries held (expired ones included until the next insert sweeps them).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `value` under `key` for `client`, requested from `addr` (`None`: unknown, not counted
    /// per address), valid until `expires`. Sweeps expired entries first; refuses only when
    /// `addr` is full; otherwise makes room by dropping the client's oldest entry, then the
    /// oldest of all. Returns how many live entries were dropped to make room.
    pub fn insert(
        &mut self,
        key: String,
        client: &str,
        addr: Option<AddrBucket>,
        expires: Instant,
        value: T,
        now: Instant,
    ) -> Result<usize, PendingError> {
        self.sweep(now);
        if let Some(a) = addr
            && self.by_addr.get(&a).copied().unwrap_or(0) >= self.caps.per_addr
        {
            return Err(PendingError::AddressFull);
        }
        self.remove(&key);
        let mut dropped = 0;
        while self.by_client.get(client).map_or(0, BTreeMap::len) >= self.caps.per_client.max(1) {
            let Some(oldest) = self
                .by_client
                .get(client)
                .and_then(|m| m.values().next().cloned())
            else {
                break;
            };
            self.remove(&oldest);
            dropped += 1;
        }
        while self.entries.len() >= self.caps.total.max(1) {
            let Some(oldest) = self.order.values().next().cloned() else {
                break;
            };
            self.remove(&oldest);
            dropped += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.by_client
            .entry(client.to_string())
            .or_default()
            .insert(seq, key.clone());
        if let Some(a) = addr {
            *self.by_addr.entry(a).or_insert(0) += 1;
        }
        self.entries.insert(
            key,
            Entry {
                value,
                seq,
                client: client.to_string(),
                addr,
                expires,
            },
        );
        Ok(dropped)
    }

    /// Removes and returns the entry under `key` if it has not expired at `now`.
    pub fn take(&mut self, key: &str, now: Instant) -> Option<T> {
        self.remove(key)
            .filter(|e| e.expires > now)
            .map(|e| e.value)
    }

    /// The entry under `key`, if it has not expired at `now`.
    pub fn get_mut(&mut self, key: &str, now: Instant) -> Option<&mut T> {
        self.entries
            .get_mut(key)
            .filter(|e| e.expires > now)
            .map(|e| &mut e.value)
    }

    /// Drops the entry under `key`, if any.
    pub fn discard(&mut self, key: &str) {
        self.remove(key);
    }

    fn remove(&mut self, key: &str) -> Option<Entry<T>> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.seq);
        if let Some(m) = self.by_client.get_mut(&entry.client) {
            m.remove(&entry.seq);
            if m.is_empty() {
                self.by_client.remove(&entry.client);
            }
        }
        if let Some(a) = entry.addr
            && let Some(n) = self.by_addr.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                self.by_addr.remove(&a);
            }
        }
        Some(entry)
    }

    /// Drops the expired entries (the oldest ones, since all live equally long).
    fn sweep(&mut self, now: Instant) {
        while let Some(key) = self.order.values().next().cloned() {
            if self.entries.get(&key).is_some_and(|e| e.expires > now) {
                break;
            }
            self.remove(&key);
        }
    }
}

/// A redeemed code, remembered until it would have expired.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Redemption {
    /// The grant its redemption created (`None` while the redemption is still under way).
    grant: Option<String>,
    /// A replay came while the redemption was under way: its grant must be revoked once known.
    replayed: bool,
    /// When the code would have expired: forgotten then.
    expires: Instant,
}

/// What a second redemption of a code finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Not a code redeemed before (unknown, expired, forgotten).
    Unknown,
    /// Redeemed before, and this grant came of it: revoke it.
    Revoke(String),
    /// Redeemed before, the first redemption not finished: it will find out and revoke.
    Pending,
}

/// Redeemed codes (by hash) → the grant each created, until the code would have expired.
/// Bounded: only successful redemptions enter, and those need client authentication (and, for
/// a client without a secret, a person's approval); past `cap`, the oldest are forgotten.
#[derive(Debug)]
pub struct Redeemed {
    /// Most codes remembered.
    cap: usize,
    /// Redemptions by code hash.
    entries: HashMap<String, Redemption>,
    /// Insertion order, oldest first.
    order: std::collections::VecDeque<(Instant, String)>,
}

impl Redeemed {
    /// An empty set remembering at most `cap` codes.
    pub fn new(cap: usize) -> Self {
        Redeemed {
            cap: cap.max(1),
            entries: HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    /// A code (by hash) whose redemption starts now; it would have expired at `expires`.
    pub fn start(&mut self, code_hash: String, expires: Instant, now: Instant) {
        while let Some((at, key)) = self.order.front().cloned() {
            if at > now && self.entries.len() < self.cap {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|r| r.expires == at) {
                self.entries.remove(&key);
            }
        }
        self.order.push_back((expires, code_hash.clone()));
        self.entries.insert(
            code_hash,
            Redemption {
                grant: None,
                replayed: false,
                expires,
            },
        );
    }

    /// The redemption of `code_hash` failed: nothing was issued, nothing to revoke later.
    pub fn fail(&mut self, code_hash: &str) {
        self.entries.remove(code_hash);
    }

    /// The redemption of `code_hash` created `grant`. `true` when a replay came meanwhile: the
    /// caller must revoke `grant` and refuse.
    pub fn finish(&mut self, code_hash: &str, grant: &str) -> bool {
        match self.entries.get_mut(code_hash) {
            Some(r) => {
                r.grant = Some(grant.to_string());
                r.replayed
            }
            None => false,
        }
    }

    /// A code that is no longer pending was presented again at `now`.
    pub fn replay(&mut self, code_hash: &str, now: Instant) -> Replay {
        match self.entries.get_mut(code_hash) {
            Some(r) if r.expires > now => {
                r.replayed = true;
                match &r.grant {
                    Some(g) => Replay::Revoke(g.clone()),
                    None => Replay::Pending,
                }
            }
            _ => Replay::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use super::*;

    fn addr(s: &str) -> Option<AddrBucket> {
        Some(AddrBucket::of(s.parse::<IpAddr>().unwrap()))
    }

    const CAPS: Caps = Caps {
        total: 6,
        per_client: 3,
        per_addr: 2,
    };

    #[test]
    fn an_address_past_its_cap_is_refused_and_others_are_not() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut p = Pending::new(CAPS);
        p.insert("a".into(), "c", addr("10.0.0.1"), later, 1, now)
            .unwrap();
        p.insert("b".into(), "d", addr("10.0.0.1"), later, 2, now)
            .unwrap();
        assert_eq!(
            p.insert("x".into(), "e", addr("10.0.0.1"), later, 3, now),
            Err(PendingError::AddressFull)
        );
        assert!(
            p.insert("y".into(), "e", addr("10.0.0.2"), later, 3, now)
                .is_ok()
        );
        assert!(p.insert("z".into(), "e", None, later, 4, now).is_ok());
        // Taking one frees a place for the address.
        assert_eq!(p.take("a", now), Some(1));
        assert!(
            p.insert("x".into(), "e", addr("10.0.0.1"), later, 3, now)
                .is_ok()
        );
    }

    #[test]
    fn past_the_client_cap_its_oldest_entry_goes() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut p = Pending::new(CAPS);
        for (i, ip) in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .iter()
            .enumerate()
        {
            let dropped = p
                .insert(format!("k{i}"), "c", addr(ip), later, i, now)
                .unwrap();
            assert_eq!(dropped, usize::from(i == 3));
        }
        assert_eq!(p.take("k0", now), None, "the oldest was dropped");
        assert_eq!(p.take("k3", now), Some(3));
        assert_eq!(p.take("k1", now), Some(1));
        // The dropped entry's address got its place back.
        let mut q = Pending::new(CAPS);
        q.insert("a".into(), "c", addr("10.0.0.1"), later, 0, now)
            .unwrap();
        q.insert("b".into(), "c", addr("10.0.0.1"), later, 0, now)
            .unwrap();
        q.insert("c".into(), "c", addr("10.0.0.2"), later, 0, now)
            .unwrap();
        q.insert("d".into(), "c", addr("10.0.0.2"), later, 0, now)
            .unwrap();
        assert!(
            q.insert("e".into(), "other", addr("10.0.0.1"), later, 0, now)
                .is_ok(),
            "10.0.0.1's oldest was dropped for the client cap"
        );
    }

    #[test]
    fn past_the_total_cap_the_oldest_of_all_goes_and_expired_entries_are_swept() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut p = Pending::new(CAPS);
        for i in 0..7 {
            p.insert(format!("k{i}"), &format!("c{i}"), None, later, i, now)
                .unwrap();
        }
        assert_eq!(p.len(), 6);
        assert_eq!(p.take("k0", now), None);
        assert!(p.get_mut("k1", now).is_some());
        assert_eq!(p.take("k1", later), None, "expired");
        let after = later + Duration::from_secs(1);
        p.insert(
            "n".into(),
            "c",
            addr("10.0.0.9"),
            after + Duration::from_secs(60),
            9,
            after,
        )
        .unwrap();
        assert_eq!(p.len(), 1, "the expired ones were swept");
    }

    #[test]
    fn a_replay_finds_the_grant_of_the_first_redemption() {
        let now = Instant::now();
        let expires = now + Duration::from_secs(600);
        let mut r = Redeemed::new(10);
        assert_eq!(r.replay("h", now), Replay::Unknown);
        r.start("h".into(), expires, now);
        assert_eq!(r.replay("h", now), Replay::Pending);
        assert!(r.finish("h", "g1"), "the replay came during the redemption");
        r.start("h2".into(), expires, now);
        assert!(!r.finish("h2", "g2"));
        assert_eq!(r.replay("h2", now), Replay::Revoke("g2".into()));
        assert_eq!(r.replay("h2", expires), Replay::Unknown, "expired");
        r.start("h3".into(), expires, now);
        r.fail("h3");
        assert_eq!(r.replay("h3", now), Replay::Unknown);
    }

    #[test]
    fn redeemed_codes_are_bounded() {
        let now = Instant::now();
        let expires = now + Duration::from_secs(600);
        let mut r = Redeemed::new(3);
        for i in 0..5 {
            r.start(format!("h{i}"), expires, now);
            r.finish(&format!("h{i}"), &format!("g{i}"));
        }
        assert!(r.entries.len() <= 3);
        assert_eq!(r.replay("h4", now), Replay::Revoke("g4".into()));
        assert_eq!(r.replay("h0", now), Replay::Unknown);
    }
}
