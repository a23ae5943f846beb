//! blake3 digests, and hashing a file where it lies: memory-mapped and on all cores, like `b3sum`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::Result;

/// A blob's name: the blake3 digest of its bytes, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// The digest as hex.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.hex()[..12])
    }
}

impl FromStr for BlobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("`{s}` is not 64 lowercase hex digits"));
        }
        blake3::Hash::from_hex(s)
            .map(|h| BlobId(*h.as_bytes()))
            .map_err(|e| e.to_string())
    }
}

impl From<BlobId> for String {
    fn from(id: BlobId) -> String {
        id.hex()
    }
}

impl TryFrom<String> for BlobId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<blake3::Hash> for BlobId {
    fn from(h: blake3::Hash) -> Self {
        BlobId(*h.as_bytes())
    }
}

/// Hashes a file where it lies: memory-mapped and split across threads when it is large, which is
/// what `b3sum` does and the fastest way to read it.
pub fn hash_file(path: &Path) -> Result<BlobId> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path).io("cannot hash", path)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_to_the_reference_digest() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let data: Vec<u8> = (0..(3 << 20) + 12345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&src, &data).unwrap();
        assert_eq!(hash_file(&src).unwrap(), BlobId::from(blake3::hash(&data)));
    }

    #[test]
    fn ids_round_trip_through_hex_and_refuse_junk() {
        let id = BlobId::from(blake3::hash(b"x"));
        assert_eq!(id.hex().parse::<BlobId>().unwrap(), id);
        assert!("ABC".parse::<BlobId>().is_err());
        assert!(id.hex().to_uppercase().parse::<BlobId>().is_err());
    }
}
