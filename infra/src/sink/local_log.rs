//! A file-backed partitioned log standing in for a Kinesis stream: N shards, each an
//! append-only file of framed records with increasing sequence numbers. It survives restarts:
//! opening an existing directory rebuilds the index, and a record torn by a crash mid-write is
//! cut off (it was never acknowledged).
//!
//! Frame: `u32 frame_len | u64 sequence | i64 arrival_ms | u16 key_len | key | data`, little
//! endian, `frame_len` covering everything after itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{EventSink, OutRecord, SendReport, SinkError, shard_for};

/// The same per-record limit as Kinesis.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
const HEADER: usize = 8 + 8 + 2;

/// One record as a consumer reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub shard: usize,
    pub sequence: u64,
    pub arrival_ms: i64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

struct Shard {
    file: File,
    /// Byte offset of every record, by sequence − 1.
    offsets: Vec<u64>,
    end: u64,
}

pub struct LocalStreamLog {
    dir: PathBuf,
    shards: Mutex<Vec<Shard>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl LocalStreamLog {
    /// Opens (or creates) a log with `shards` shards in `dir`. An existing log keeps its shard
    /// count; asking for a different one is an error rather than a silent reshard.
    pub fn open(dir: impl AsRef<Path>, shards: usize) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let meta = dir.join("shards");
        let count = match std::fs::read_to_string(&meta) {
            Ok(text) => {
                let existing: usize = text.trim().parse().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is corrupt", meta.display()),
                    )
                })?;
                if existing != shards {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{} has {existing} shards, not {shards}", dir.display()),
                    ));
                }
                existing
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(&meta, shards.to_string())?;
                shards
            }
            Err(e) => return Err(e),
        };
        let mut opened = Vec::with_capacity(count);
        for i in 0..count {
            opened.push(Self::open_shard(
                &dir.join(format!("{}.log", Self::shard_id(i))),
            )?);
        }
        Ok(Self {
            dir,
            shards: Mutex::new(opened),
        })
    }

    fn open_shard(path: &Path) -> std::io::Result<Shard> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut offsets = Vec::new();
        let mut at = 0u64;
        let mut frame_len = [0u8; 4];
        file.seek(SeekFrom::Start(0))?;
        while at + 4 <= len {
            file.read_exact(&mut frame_len)?;
            let n = u32::from_le_bytes(frame_len) as u64;
            if n < HEADER as u64 || at + 4 + n > len {
                break; // torn tail
            }
            offsets.push(at);
            at += 4 + n;
            file.seek(SeekFrom::Start(at))?;
        }
        if at != len {
            tracing::warn!(path = %path.display(), kept = at, dropped = len - at, "cutting torn record at end of log");
            file.set_len(at)?;
        }
        Ok(Shard {
            file,
            offsets,
            end: at,
        })
    }

    /// Kinesis-style shard id.
    pub fn shard_id(shard: usize) -> String {
        format!("shardId-{shard:012}")
    }

    pub fn shard_count(&self) -> usize {
        self.shards.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Last sequence number written to a shard (0 when empty).
    pub fn latest_sequence(&self, shard: usize) -> u64 {
        self.shards
            .lock()
            .ok()
            .and_then(|s| s.get(shard).map(|s| s.offsets.len() as u64))
            .unwrap_or(0)
    }

    /// Appends records, assigning shards and sequence numbers, and flushes before returning.
    pub fn append(&self, records: &[OutRecord]) -> Result<SendReport, SinkError> {
        for (index, r) in records.iter().enumerate() {
            if r.data.len() > MAX_RECORD_BYTES {
                return Err(SinkError::TooLarge {
                    index,
                    size: r.data.len(),
                    limit: MAX_RECORD_BYTES,
                });
            }
        }
        let arrival = now_ms();
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        let n = shards.len();
        let mut frames: Vec<Vec<u8>> = vec![Vec::new(); n];
        let mut pending: Vec<u64> = shards.iter().map(|s| s.offsets.len() as u64).collect();
        let mut new_offsets: Vec<Vec<u64>> = vec![Vec::new(); n];
        let mut bytes = 0;
        for r in records {
            let s = shard_for(&r.partition_key, n);
            pending[s] += 1;
            let key = r.partition_key.as_bytes();
            let key_len = key.len().min(u16::MAX as usize);
            let frame = &mut frames[s];
            new_offsets[s].push(shards[s].end + frame.len() as u64);
            frame.extend_from_slice(&((HEADER + key_len + r.data.len()) as u32).to_le_bytes());
            frame.extend_from_slice(&pending[s].to_le_bytes());
            frame.extend_from_slice(&arrival.to_le_bytes());
            frame.extend_from_slice(&(key_len as u16).to_le_bytes());
            frame.extend_from_slice(&key[..key_len]);
            frame.extend_from_slice(&r.data);
            bytes += r.data.len();
        }
        for (s, frame) in frames.iter().enumerate() {
            if frame.is_empty() {
                continue;
            }
            let shard = &mut shards[s];
            shard.file.seek(SeekFrom::Start(shard.end))?;
            shard.file.write_all(frame)?;
            shard.file.flush()?;
            shard.end += frame.len() as u64;
            shard.offsets.extend(&new_offsets[s]);
        }
        Ok(SendReport {
            records: records.len(),
            bytes,
            calls: 1,
            retried: 0,
        })
    }

    /// Up to `max` records of `shard` with sequence numbers after `after`, in order.
    pub fn read(&self, shard: usize, after: u64, max: usize) -> std::io::Result<Vec<LogRecord>> {
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = shards.get_mut(shard) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no shard {shard}"),
            ));
        };
        let first = after as usize;
        let last = (first + max).min(s.offsets.len());
        if first >= last {
            return Ok(Vec::new());
        }
        let start = s.offsets[first];
        let end = s.offsets.get(last).copied().unwrap_or(s.end);
        let mut buf = vec![0u8; (end - start) as usize];
        s.file.seek(SeekFrom::Start(start))?;
        s.file.read_exact(&mut buf)?;
        let mut out = Vec::with_capacity(last - first);
        let mut at = 0usize;
        let corrupt = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt log frame");
        while at < buf.len() {
            let n = u32::from_le_bytes(buf[at..at + 4].try_into().map_err(|_| corrupt())?) as usize;
            let f = buf.get(at + 4..at + 4 + n).ok_or_else(corrupt)?;
            let sequence = u64::from_le_bytes(f[0..8].try_into().map_err(|_| corrupt())?);
            let arrival_ms = i64::from_le_bytes(f[8..16].try_into().map_err(|_| corrupt())?);
            let key_len = u16::from_le_bytes(f[16..18].try_into().map_err(|_| corrupt())?) as usize;
            let key = f.get(18..18 + key_len).ok_or_else(corrupt)?;
            out.push(LogRecord {
                shard,
                sequence,
                arrival_ms,
                partition_key: String::from_utf8_lossy(key).into_owned(),
                data: f[18 + key_len..].to_vec(),
            });
            at += 4 + n;
        }
        Ok(out)
    }
}

#[async_trait]
impl EventSink for LocalStreamLog {
    async fn send(&self, records: Vec<OutRecord>) -> Result<SendReport, SinkError> {
        self.append(&records)
    }

    fn describe(&self) -> String {
        format!("local log {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, data: &str) -> OutRecord {
        OutRecord {
            partition_key: key.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn appends_reads_and_survives_restart_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalStreamLog::open(dir.path(), 2).unwrap();
        let keys = ["AAPL", "MSFT", "TSLA", "AMZN", "GOOGL"];
        let batch: Vec<OutRecord> = (0..50)
            .map(|i| rec(keys[i % 5], &format!("r{i}")))
            .collect();
        log.append(&batch).unwrap();
        let total: usize = (0..2).map(|s| log.read(s, 0, 1000).unwrap().len()).sum();
        assert_eq!(total, 50);
        // One key always lands on one shard, in order.
        for s in 0..2 {
            let recs = log.read(s, 0, 1000).unwrap();
            assert!(recs.windows(2).all(|w| w[1].sequence == w[0].sequence + 1));
            assert!(recs.iter().all(|r| shard_for(&r.partition_key, 2) == s));
        }
        let before: Vec<_> = log.read(0, 3, 4).unwrap();
        assert_eq!(before.first().map(|r| r.sequence), Some(4));
        drop(log);

        // Simulate a crash mid-write: a half frame at the end of shard 0.
        let path = dir
            .path()
            .join(format!("{}.log", LocalStreamLog::shard_id(0)));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);

        let log = LocalStreamLog::open(dir.path(), 2).unwrap();
        assert_eq!(log.read(0, 3, 4).unwrap(), before);
        let n0 = log.latest_sequence(0);
        log.append(&[rec("AAPL", "after"), rec("MSFT", "after")])
            .unwrap();
        let all: usize = (0..2).map(|s| log.read(s, 0, 1000).unwrap().len()).sum();
        assert_eq!(all, 52);
        assert!(log.latest_sequence(0) >= n0);
        assert!(
            LocalStreamLog::open(dir.path(), 3).is_err(),
            "shard count is fixed"
        );
    }

    #[test]
    fn keys_spread_over_shards() {
        let counts = (0..1000).fold([0usize; 4], |mut c, i| {
            c[shard_for(&format!("user-{i}"), 4)] += 1;
            c
        });
        assert!(counts.iter().all(|&c| c > 180), "{counts:?}");
    }
}
