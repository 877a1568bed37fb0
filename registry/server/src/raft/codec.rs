//! Binary encoding for the Raft log, snapshots and peer RPCs: MessagePack
//! with field names, so optional fields can be skipped and added over time.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    rmp_serde::from_slice(bytes).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}
