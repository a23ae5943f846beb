//! A placement policy other than the built-in one (a WebAssembly plugin of the
//! `fleet-placement-policy` world): it picks which of the nodes that can take a model loads
//! it; the victims there are then the node's least recently used idle models, as the
//! built-in policy would choose them. Its answer is checked before use, and any failure
//! leaves the decision to the built-in policy.

use crate::facts::NodeFacts;
use crate::placement::unloadable;

/// A node that can take a model now, as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its index in the fleet.
    pub node: usize,
    /// Its budget.
    pub budget_bytes: u64,
    /// Bytes free without unloading.
    pub free_bytes: u64,
    /// Bytes its unloadable models would free.
    pub reclaimable_bytes: u64,
    /// Whether its store has the weights.
    pub has_weights: bool,
    /// Requests in flight and queued there.
    pub busy: u32,
}

/// Why a policy gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    /// `timeout`, `memory`, `trap`, `instantiate` or `invalid_answer`.
    pub cause: &'static str,
    /// For the log.
    pub detail: String,
}

/// A fleet placement policy.
pub trait FleetPolicy: Send + Sync {
    /// Its name, for logs, metrics and `/hub/status`.
    fn name(&self) -> &str;

    /// The node (an index into `fleet`) of those in `candidates` to load `model` on; `None`
    /// leaves it to the built-in policy.
    fn choose_node(
        &self,
        fleet: &[NodeFacts],
        model: &str,
        estimate: u64,
        candidates: &[Candidate],
    ) -> Result<Option<usize>, PolicyFailure>;
}

/// The nodes that can take `model` now (free memory and unloadable models together hold
/// `estimate`), never those whose budget cannot.
pub fn candidates(
    fleet: &[NodeFacts],
    model: &str,
    estimate: u64,
    min_age_ms: u64,
) -> Vec<Candidate> {
    let mut idle = Vec::new();
    fleet
        .iter()
        .enumerate()
        .filter(|(_, n)| n.budget_bytes >= estimate)
        .filter_map(|(i, n)| {
            unloadable(n, min_age_ms, &mut idle);
            let reclaimable = idle.iter().map(|m| m.bytes).sum::<u64>();
            (n.free_bytes().saturating_add(reclaimable) >= estimate).then(|| Candidate {
                node: i,
                budget_bytes: n.budget_bytes,
                free_bytes: n.free_bytes(),
                reclaimable_bytes: reclaimable,
                has_weights: n.has_weights(model),
                busy: n.models.iter().map(|m| m.in_flight + m.queued).sum(),
            })
        })
        .collect()
}
