//! blake3 digests and the two ways bytes get hashed: a whole file in place (memory-mapped, on all
//! cores, like `b3sum`), and a copy that hashes what it writes.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
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

/// Bytes moved per step of [`copy_hashing`]: large enough for the multi-threaded hasher to pay.
const COPY_CHUNK: usize = 8 << 20;

/// Copies `from` into the open file `to`, hashing the bytes as they are written (the hash of one
/// chunk runs beside the write of the same chunk); reports progress after each chunk.
pub fn copy_hashing(
    from: &Path,
    to: &mut File,
    to_path: &Path,
    mut on_bytes: impl FnMut(u64),
) -> Result<(BlobId, u64)> {
    let mut source = File::open(from).io("cannot open", from)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut source, &mut buf).io("cannot read", from)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let (written, ()) = rayon::join(
            || to.write_all(chunk),
            || {
                hasher.update_rayon(chunk);
            },
        );
        written.io("cannot write", to_path)?;
        total += n as u64;
        on_bytes(n as u64);
    }
    Ok((hasher.finalize().into(), total))
}

fn read_full(source: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_agree_with_the_reference_digest() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let data: Vec<u8> = (0..(COPY_CHUNK * 2 + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&src, &data).unwrap();
        let expected = BlobId::from(blake3::hash(&data));
        assert_eq!(hash_file(&src).unwrap(), expected);
        let dst = dir.path().join("dst");
        let mut out = File::create(&dst).unwrap();
        let mut seen = 0;
        let (id, n) = copy_hashing(&src, &mut out, &dst, |b| seen += b).unwrap();
        assert_eq!(
            (id, n, seen),
            (expected, data.len() as u64, data.len() as u64)
        );
        assert_eq!(std::fs::read(&dst).unwrap(), data);
    }

    #[test]
    fn ids_round_trip_through_hex_and_refuse_junk() {
        let id = BlobId::from(blake3::hash(b"x"));
        assert_eq!(id.hex().parse::<BlobId>().unwrap(), id);
        assert!("ABC".parse::<BlobId>().is_err());
        assert!(id.hex().to_uppercase().parse::<BlobId>().is_err());
    }
}
