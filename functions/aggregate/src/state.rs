//! Where a shard's state lives, as generations that a bad object cannot block.
//!
//! Each commit writes a new generation, `{prefix}/{stream}/{shard}/{generation}.json` (twenty
//! digits, so keys sort by number), with a does-not-exist condition: of two invocations that
//! read generation N, only one can write N + 1. The two generations before the newest are kept
//! to fall back to, older ones deleted after the commit.
//!
//! Loading reads the newest generation that can be read:
//! - an unreadable one (not JSON, not this layout) is moved aside to
//!   `{prefix}/_quarantine/{stream}/{shard}/{generation}.json`, counted in `state_fallbacks`
//!   and logged as an error (the alarm), and the previous generation is used. What the lost
//!   generation published stays in the lake under object names carrying the shard and
//!   sequence range (`part-{shard}-{first}-{last}`): its events are in raw, but the open
//!   windows of the generation used do not hold them.
//! - one written by a newer release (a rollback; see [`STATE_FORMAT`]) is refused with
//!   [`HandlerError::NewerState`], never read as this layout or silently reset.
//!
//! State written before generations (`{prefix}/{stream}/{shard}.json`) is read as generation 0
//! and deleted once generation 1 is committed.

use sluice_core::shard::{STATE_FORMAT, ShardState};
use sluice_infra::metrics::Metrics;
use sluice_infra::store::{ETag, StoreError};

use crate::{COLUMNS_DIR, Deps, HandlerError};

/// Directory, under the state prefix, where unreadable generations are moved.
pub const QUARANTINE_DIR: &str = "_quarantine";

/// Generations kept besides the newest, to fall back to.
const KEEP_PREVIOUS: u64 = 2;

/// The directory of one shard's generations: `{prefix}/{stream}/{shard}`, the stream taken
/// from the event source ARN (`default` without one).
pub fn state_dir(prefix: &str, event_source_arn: Option<&str>, shard_id: &str) -> String {
    shard_dir(prefix, stream_name(event_source_arn), shard_id)
}

/// `{prefix}/{stream}/{shard}`, for a stream (or Kafka cluster) named directly.
pub fn shard_dir(prefix: &str, stream: &str, shard_id: &str) -> String {
    format!("{}/{stream}/{shard_id}", prefix.trim_end_matches('/'))
}

/// A Kinesis stream's name, from its ARN (`default` without one).
pub fn stream_name(event_source_arn: Option<&str>) -> &str {
    event_source_arn
        .and_then(|arn| arn.rsplit_once("stream/").map(|(_, name)| name))
        .map(|name| name.split('/').next().unwrap_or(name))
        .filter(|name| !name.is_empty())
        .unwrap_or("default")
}

fn generation_key(dir: &str, generation: u64) -> String {
    format!("{dir}/{generation:020}.json")
}

/// The generation a key under `dir/` names.
fn generation_of(dir: &str, key: &str) -> Option<u64> {
    let name = key
        .strip_prefix(dir)?
        .strip_prefix('/')?
        .strip_suffix(".json")?;
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

fn legacy_key(dir: &str) -> String {
    format!("{dir}.json")
}

/// The shard directories under the state prefix, from a listing of it (generations and
/// states written before generations), sorted.
pub fn shard_dirs(prefix: &str, keys: &[String]) -> Vec<String> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let skip = [
        format!("{prefix}{COLUMNS_DIR}/"),
        format!("{prefix}{QUARANTINE_DIR}/"),
    ];
    let mut dirs: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with(&prefix) && !skip.iter().any(|s| k.starts_with(s)))
        .filter_map(|k| {
            let (dir, _) = k.rsplit_once('/')?;
            if generation_of(dir, k).is_some() {
                Some(dir.to_string())
            } else {
                // `{prefix}/{stream}/{shard}.json`: two segments below the prefix.
                let rest = k.strip_prefix(&prefix)?.strip_suffix(".json")?;
                (rest.matches('/').count() == 1).then(|| format!("{prefix}{rest}"))
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A shard's committed state, as loaded.
pub struct Loaded {
    /// The newest readable generation; `None` for a shard never committed.
    pub state: Option<ShardState>,
    /// Its key and ETag (for the publish memo).
    pub key: Option<(String, ETag)>,
    /// Its size in bytes.
    pub bytes: usize,
    /// The key the next commit writes (does-not-exist).
    pub next_key: String,
    /// Keys to delete once the next generation is committed.
    pub superseded: Vec<String>,
}

/// Loads the newest readable generation of the shard in `dir` (see the module docs).
pub async fn load(deps: &Deps, dir: &str) -> Result<Loaded, HandlerError> {
    let mut generations: Vec<(u64, String)> = deps
        .store
        .list(&format!("{dir}/"))
        .await?
        .into_iter()
        .filter_map(|k| generation_of(dir, &k).map(|g| (g, k)))
        .collect();
    generations.sort_by_key(|g| std::cmp::Reverse(g.0));
    let newest = generations.first().map_or(0, |g| g.0);
    let next = newest + 1;
    let mut superseded: Vec<String> = generations
        .iter()
        .filter(|(g, _)| g + KEEP_PREVIOUS < next)
        .map(|(_, k)| k.clone())
        .collect();
    if next == KEEP_PREVIOUS + 1 {
        // The state from before generations counts as generation 0: deleted with the others
        // of its age (once; a missing key deletes fine).
        superseded.push(legacy_key(dir));
    }
    let mut candidates = generations;
    candidates.push((0, legacy_key(dir)));
    for (generation, key) in candidates {
        let Some(object) = deps.store.get(&key).await? else {
            continue;
        };
        match serde_json::from_slice::<ShardState>(&object.body) {
            Ok(state) if state.format > STATE_FORMAT => {
                return Err(HandlerError::NewerState {
                    key,
                    format: state.format,
                });
            }
            Ok(state) => {
                return Ok(Loaded {
                    state: Some(state),
                    bytes: object.body.len(),
                    key: Some((key, object.etag)),
                    next_key: generation_key(dir, next),
                    superseded,
                });
            }
            Err(e) => move_aside(deps, dir, generation, &key, object.body, &e).await?,
        }
    }
    Ok(Loaded {
        state: None,
        bytes: 0,
        key: None,
        next_key: generation_key(dir, next),
        superseded,
    })
}

/// Moves an unreadable generation to the quarantine directory, counted and logged.
async fn move_aside(
    deps: &Deps,
    dir: &str,
    generation: u64,
    key: &str,
    body: Vec<u8>,
    error: &serde_json::Error,
) -> Result<(), HandlerError> {
    let prefix = deps.settings.state_prefix.trim_end_matches('/');
    let relative = dir.strip_prefix(prefix).unwrap_or(dir).trim_matches('/');
    let aside = format!("{prefix}/{QUARANTINE_DIR}/{relative}/{generation:020}.json");
    Metrics::add(&deps.metrics.state_fallbacks, 1);
    tracing::error!(
        state = key,
        moved_to = aside,
        error = %error,
        "unreadable shard state moved aside; continuing from the previous generation (the events of the batch it committed are in raw but not in the open windows)"
    );
    deps.store.put(&aside, body).await?;
    deps.store.delete(key).await?;
    Ok(())
}

/// Deletes generations the newest commit superseded, best effort: one left behind is deleted
/// by a later commit.
pub async fn clean_up(deps: &Deps, superseded: &[String]) {
    for key in superseded {
        if let Err(e) = deps.store.delete(key).await {
            tracing::warn!(state = key, error = %e, "could not delete a superseded state generation");
        }
    }
}

/// Whether an error means another writer committed the generation first.
pub fn lost_race(e: &HandlerError) -> bool {
    matches!(
        e,
        HandlerError::Store(StoreError::PreconditionFailed { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_sort_as_numbers_and_dirs_are_found_from_a_listing() {
        let dir = state_dir(
            "state/aggregate",
            Some("arn:aws:kinesis:eu-west-1:123456789012:stream/sluice-events"),
            "shardId-000000000003",
        );
        assert_eq!(dir, "state/aggregate/sluice-events/shardId-000000000003");
        assert_eq!(state_dir("s/", None, "x"), "s/default/x");
        let key = generation_key(&dir, 12);
        assert_eq!(
            key,
            "state/aggregate/sluice-events/shardId-000000000003/00000000000000000012.json"
        );
        assert!(generation_key(&dir, 9) < generation_key(&dir, 10));
        assert_eq!(generation_of(&dir, &key), Some(12));
        assert_eq!(generation_of(&dir, &format!("{dir}/x.json")), None);
        let keys: Vec<String> = [
            key.as_str(),
            "state/aggregate/sluice-events/shardId-000000000001.json",
            "state/aggregate/_columns/trades.json",
            "state/aggregate/_quarantine/sluice-events/shardId-000000000003/00000000000000000011.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            shard_dirs("state/aggregate", &keys),
            [
                "state/aggregate/sluice-events/shardId-000000000001",
                "state/aggregate/sluice-events/shardId-000000000003"
            ]
        );
    }
}
