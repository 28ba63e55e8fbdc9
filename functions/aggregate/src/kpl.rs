//! Records the Kinesis Producer Library aggregated: several user records in one Kinesis record.
//!
//! Format (<https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>):
//! the magic bytes `F3 89 9A C2`, a protobuf `AggregatedRecord`, then the 16-byte MD5 of the
//! protobuf bytes. Each user record names its partition key by index into the aggregate's
//! table; its position is the Kinesis record's sequence number and its index, the
//! sub-sequence number. The three messages are written out here with `prost` derives, from
//! the format's `.proto` (proto2), without a build script.

use md5::{Digest, Md5};

/// The first four bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<UserRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UserRecord {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Whether `data` is an aggregated record (magic bytes and room for the digest); a plain
/// record that happens to start with the magic bytes is read as aggregated, as the KCL does.
pub fn is_aggregated(data: &[u8]) -> bool {
    data.len() >= MAGIC.len() + DIGEST_LEN && data.starts_with(&MAGIC)
}

/// One user record: its partition key and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Unpacked {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Why an aggregated record cannot be read: it is quarantined with its bytes and this reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KplError {
    #[error("KPL aggregated record whose MD5 does not match its contents (corrupted or truncated)")]
    Digest,
    #[error("KPL aggregated record whose protobuf is unreadable: {0}")]
    Protobuf(String),
    #[error("KPL aggregated record: user record {index} names partition key {key_index} of {keys}")]
    PartitionKey {
        index: usize,
        key_index: u64,
        keys: usize,
    },
}

/// The user records of an aggregated record (see [`is_aggregated`]), in order: user record
/// `i` has sub-sequence number `i`.
pub fn unpack(data: &[u8]) -> Result<Vec<Unpacked>, KplError> {
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return Err(KplError::Digest);
    }
    let aggregate = <AggregatedRecord as prost::Message>::decode(body)
        .map_err(|e| KplError::Protobuf(e.to_string()))?;
    let keys = aggregate.partition_key_table;
    aggregate
        .records
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            let key = usize::try_from(r.partition_key_index)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or(KplError::PartitionKey {
                    index,
                    key_index: r.partition_key_index,
                    keys: keys.len(),
                })?;
            Ok(Unpacked {
                partition_key: key.clone(),
                data: r.data,
            })
        })
        .collect()
}

/// An aggregated record of `records` (partition key, data), as the KPL writes it: for tests
/// and the benchmarks.
pub fn pack(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut keys: Vec<String> = Vec::new();
    let users = records
        .iter()
        .map(|(key, data)| {
            let index = keys.iter().position(|k| k == key).unwrap_or_else(|| {
                keys.push(key.to_string());
                keys.len() - 1
            });
            UserRecord {
                partition_key_index: index as u64,
                explicit_hash_key_index: None,
                data: data.to_vec(),
                tags: Vec::new(),
            }
        })
        .collect();
    let body = prost::Message::encode_to_vec(&AggregatedRecord {
        partition_key_table: keys,
        explicit_hash_key_table: Vec::new(),
        records: users,
    });
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_and_refuses_a_bad_digest() {
        let packed = pack(&[
            ("AAPL", b"{\"a\":1}"),
            ("MSFT", b"{\"b\":2}"),
            ("AAPL", b"{}"),
        ]);
        assert!(is_aggregated(&packed));
        let unpacked = unpack(&packed).unwrap();
        assert_eq!(
            unpacked
                .iter()
                .map(|u| u.partition_key.as_str())
                .collect::<Vec<_>>(),
            ["AAPL", "MSFT", "AAPL"]
        );
        assert_eq!(unpacked[1].data, b"{\"b\":2}");
        let mut corrupt = packed.clone();
        corrupt[6] ^= 1;
        assert_eq!(unpack(&corrupt), Err(KplError::Digest));
        assert!(!is_aggregated(b"{\"scenario\":\"trades\"}"));
        assert!(!is_aggregated(&MAGIC), "too short for a digest");
    }
}
