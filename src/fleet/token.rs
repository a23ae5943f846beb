//! The fleet's join token, checked both ways: a node sends it with every report (the hub
//! refuses one without it), and the hub answers each report with a proof that it holds the
//! token too (the node refuses a hub without one), so that neither side trusts a stranger.
//! The proof is a keyed hash of the node's name: it shows the token without sending it.

use subtle::ConstantTimeEq;

/// The header a hub's proof comes in.
pub const PROOF_HEADER: &str = "x-porten-hub-proof";

/// What a hub holding `token` answers a report from `node` with.
pub fn proof(token: &str, node: &str) -> String {
    let key = blake3::derive_key("porten 2026 fleet join token", token.as_bytes());
    blake3::keyed_hash(&key, node.as_bytes())
        .to_hex()
        .to_string()
}

/// Whether a report's `Authorization` header carries `token`.
pub fn authorized(expected: &str, authorization: Option<&str>) -> bool {
    let given = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Whether a hub's answer to `node`'s report proves it holds `token`.
pub fn proven(token: &str, node: &str, answer: Option<&str>) -> bool {
    let expected = proof(token, node);
    answer
        .unwrap_or("")
        .as_bytes()
        .ct_eq(expected.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_passes_either_way() {
        assert!(authorized("s3cret", Some("Bearer s3cret")));
        assert!(!authorized("s3cret", Some("Bearer s3cre")));
        assert!(!authorized("s3cret", None));
        let answer = proof("s3cret", "gpu-1");
        assert!(proven("s3cret", "gpu-1", Some(&answer)));
        assert!(
            !proven("s3cret", "gpu-2", Some(&answer)),
            "bound to the node's name"
        );
        assert!(!proven("other", "gpu-1", Some(&answer)));
        assert!(!proven("s3cret", "gpu-1", None));
    }
}
