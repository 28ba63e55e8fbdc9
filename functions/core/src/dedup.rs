//! Deduplication of producer retries by a stream's `dedup` field.
//!
//! A producer that retries a `PutRecords` whose response was lost sends the same event again
//! under a new sequence number; Kinesis cannot tell. Each shard remembers, per stream, the ids
//! of the events whose event time is within the stream's dedup horizon of its watermark
//! (`[time] dedup_horizon`, default 10 minutes): a 64-bit hash of the id (exact: no
//! probabilistic filter, which could drop a real event; two different ids collide with
//! probability about n²/2⁶⁵, 10⁻⁸ for a million ids) and a 32-bit hash of the record's bytes.
//!
//! - The first copy wins.
//! - A later copy with the same bytes is a [`Seen::Duplicate`]: not written again, counted.
//! - A later copy with other bytes is a [`Seen::Conflict`]: quarantined as `duplicate_conflict`.
//! - An event older than the horizon can no longer be checked: it is written and counted as
//!   [`Seen::BeyondHorizon`].
//!
//! Ids are kept in 10-second slots of event time and dropped a slot at a time once the slot
//! ends before `watermark − horizon`. In the state object each id takes 12 bytes (16 as
//! base64): 1,000 events/s on a shard with the default horizon keep about 600,000 ids, 9.6 MB.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::window::sketch::stable_hash;

/// Width of the event-time slots ids are kept and dropped in, in ms.
pub const SLOT_MS: i64 = 10_000;

/// Default of `[time] dedup_horizon`, in ms.
pub const DEFAULT_DEDUP_HORIZON_MS: i64 = 10 * 60_000;

/// What a record's dedup id says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: the id is now remembered.
    New,
    /// An earlier copy had the same id and the same bytes.
    Duplicate,
    /// An earlier copy had the same id and other bytes: the first copy stands.
    Conflict,
    /// Older than the horizon: its id is no longer kept, so it cannot be checked.
    BeyondHorizon,
}

/// The ids one shard remembers, per stream name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupState {
    streams: BTreeMap<String, SeenIds>,
}

/// The ids of one stream on one shard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "StoredIds", into = "StoredIds")]
struct SeenIds {
    /// Slot start (ms) → (id hash, bytes hash) of the events whose time falls in the slot.
    slots: BTreeMap<i64, Vec<(u64, u32)>>,
    /// Id hash → bytes hash of every id in `slots`.
    index: HashMap<u64, u32>,
}

impl PartialEq for SeenIds {
    fn eq(&self, other: &Self) -> bool {
        self.slots == other.slots
    }
}

/// How [`SeenIds`] is stored: per slot, its 12-byte entries (id hash, bytes hash; little
/// endian) as base64.
#[derive(Serialize, Deserialize)]
struct StoredIds {
    slots: Vec<(i64, String)>,
}

impl From<SeenIds> for StoredIds {
    fn from(ids: SeenIds) -> Self {
        let slots = ids
            .slots
            .into_iter()
            .map(|(start, entries)| {
                let mut bytes = Vec::with_capacity(entries.len() * 12);
                for (id, content) in entries {
                    bytes.extend_from_slice(&id.to_le_bytes());
                    bytes.extend_from_slice(&content.to_le_bytes());
                }
                (start, STANDARD.encode(bytes))
            })
            .collect();
        StoredIds { slots }
    }
}

impl From<StoredIds> for SeenIds {
    /// Undecodable slots (a hand-edited state) are dropped: their ids are then unchecked,
    /// never refused.
    fn from(stored: StoredIds) -> Self {
        let mut ids = SeenIds::default();
        for (start, text) in stored.slots {
            let Ok(bytes) = STANDARD.decode(text) else {
                continue;
            };
            let entries: Vec<(u64, u32)> = bytes
                .chunks_exact(12)
                .map(|c| {
                    let id = u64::from_le_bytes(c[..8].try_into().unwrap_or_default());
                    let content = u32::from_le_bytes(c[8..].try_into().unwrap_or_default());
                    (id, content)
                })
                .collect();
            ids.index.extend(entries.iter().copied());
            ids.slots.insert(start, entries);
        }
        ids
    }
}

/// A stable 32-bit hash of a record's bytes, eight bytes at a time (the record is hashed for
/// every event, so FNV's byte at a time would cost a tenth of the batch): word-wise
/// multiply-rotate, then MurmurHash3's finalizer. Stable across machines and releases, as the
/// state keeps it.
fn content_hash(bytes: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes(c.try_into().unwrap_or_default());
        h = (h ^ word).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h ^ (h >> 32)) as u32
}

impl DedupState {
    /// Checks the event `id` of `stream` stamped `event_time_ms`, whose record bytes are
    /// `bytes`, against the ids seen, and remembers it when new. `oldest_ms` is the horizon's
    /// lower bound (watermark − horizon; `None` before the stream has a watermark).
    pub fn check(
        &mut self,
        stream: &str,
        id: &str,
        bytes: &[u8],
        event_time_ms: i64,
        oldest_ms: Option<i64>,
    ) -> Seen {
        let ids = match self.streams.get_mut(stream) {
            Some(ids) => ids,
            None => self.streams.entry(stream.to_string()).or_default(),
        };
        let id = stable_hash(id.as_bytes());
        let content = content_hash(bytes);
        match ids.index.get(&id) {
            Some(&first) if first == content => Seen::Duplicate,
            Some(_) => Seen::Conflict,
            None if oldest_ms.is_some_and(|oldest| event_time_ms < oldest) => Seen::BeyondHorizon,
            None => {
                ids.index.insert(id, content);
                ids.slots
                    .entry(event_time_ms.div_euclid(SLOT_MS) * SLOT_MS)
                    .or_default()
                    .push((id, content));
                Seen::New
            }
        }
    }

    /// Forgets the ids of `stream` in slots that end at or before `oldest_ms`.
    pub fn evict(&mut self, stream: &str, oldest_ms: i64) {
        let Some(ids) = self.streams.get_mut(stream) else {
            return;
        };
        let keep = ids
            .slots
            .split_off(&(oldest_ms.div_euclid(SLOT_MS) * SLOT_MS));
        for (_, entries) in std::mem::replace(&mut ids.slots, keep) {
            for (id, _) in entries {
                ids.index.remove(&id);
            }
        }
    }

    /// How many ids are remembered, over every stream.
    pub fn len(&self) -> usize {
        self.streams.values().map(|s| s.index.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_stable_and_tells_one_byte_apart() {
        assert_eq!(content_hash(b""), content_hash(b""));
        assert_ne!(content_hash(b"{\"a\":1}"), content_hash(b"{\"a\":2}"));
        assert_ne!(content_hash(b"12345678"), content_hash(b"123456789"));
        // Pinned: the state keeps these values, so they must not change between releases.
        assert_eq!(content_hash(b"{\"event_id\":\"x\"}"), 0x464a_7b9a);
    }

    #[test]
    fn first_copy_wins_and_conflicts_and_old_events_are_told_apart() {
        let mut d = DedupState::default();
        assert_eq!(d.check("t", "a", b"{1}", 1_000, None), Seen::New);
        assert_eq!(d.check("t", "a", b"{1}", 1_000, None), Seen::Duplicate);
        assert_eq!(d.check("t", "a", b"{2}", 1_000, None), Seen::Conflict);
        assert_eq!(
            d.check("u", "a", b"{1}", 1_000, None),
            Seen::New,
            "per stream"
        );
        assert_eq!(
            d.check("t", "b", b"{1}", 500, Some(900)),
            Seen::BeyondHorizon
        );
        assert_eq!(d.check("t", "b", b"{1}", 950, Some(900)), Seen::New);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn ids_are_forgotten_a_slot_at_a_time_and_survive_the_state_object() {
        let mut d = DedupState::default();
        for i in 0..30 {
            d.check("t", &format!("id-{i}"), b"x", i * 1_000, None);
        }
        let text = serde_json::to_string(&d).unwrap();
        let mut back: DedupState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            back.check("t", "id-29", b"x", 29_000, None),
            Seen::Duplicate
        );
        // Slot [0, 10 s) ends at 10 s: gone once the horizon's bound passes it; [10 s, 20 s)
        // is kept while the bound is inside it.
        back.evict("t", 15_000);
        assert_eq!(back.len(), 20);
        assert_eq!(
            back.check("t", "id-3", b"x", 3_000, Some(15_000)),
            Seen::BeyondHorizon
        );
        assert_eq!(
            back.check("t", "id-12", b"x", 12_000, Some(15_000)),
            Seen::Duplicate
        );
    }
}
