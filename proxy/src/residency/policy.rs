//! Which loaded models to unload when a requested one does not fit. The scheduler asks a
//! [`PlacementPolicy`] and checks its answer: only idle models may go, and they must free
//! enough; a wrong answer is logged and replaced by the built-in [`LeastRecentlyUsed`] choice.

use std::time::Duration;

use serde::Serialize;

use crate::telemetry::{instruments, PolicyOutcome};

/// A loaded model that could be unloaded: idle (no request running or waiting for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementCandidate {
    /// Its id.
    pub model: String,
    /// What unloading it frees, in bytes.
    pub bytes: u64,
    /// Time since its last request finished.
    pub idle_for: Duration,
    /// Requests it has served since it was first loaded.
    pub requests: u64,
}

/// The question put to a policy.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementRequest {
    /// The model that should be loaded.
    pub model: String,
    /// Bytes it needs.
    pub need: u64,
    /// The memory budget.
    pub budget: u64,
    /// Bytes free now, counting models already on their way out.
    pub free: u64,
    /// Idle loaded models; the answer must come from these.
    pub candidates: Vec<PlacementCandidate>,
}

impl PlacementRequest {
    /// Bytes the victims must free together.
    pub fn shortfall(&self) -> u64 {
        self.need.saturating_sub(self.free)
    }
}

/// Why a policy gave no answer at all (a plugin trapped, ran out of time or memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    /// A short cause for metrics: `timeout`, `memory`, `trap`, ...
    pub cause: &'static str,
    /// Details for the log.
    pub detail: String,
}

/// Decides which idle models to unload so that another one fits.
pub trait PlacementPolicy: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &str;

    /// The models to unload, which together must free at least `request.shortfall()` bytes.
    fn choose_victims(&self, request: &PlacementRequest) -> Vec<String>;

    /// [`Self::choose_victims`] for policies that can fail to answer (plugins); the scheduler
    /// calls this one, and a failure means the built-in policy decides.
    fn try_choose_victims(&self, request: &PlacementRequest) -> Result<Vec<String>, PolicyFailure> {
        Ok(self.choose_victims(request))
    }
}

/// The built-in policy: the idle models unused for longest go first.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastRecentlyUsed;

impl PlacementPolicy for LeastRecentlyUsed {
    fn name(&self) -> &str {
        "least-recently-used"
    }

    fn choose_victims(&self, request: &PlacementRequest) -> Vec<String> {
        let mut by_age: Vec<&PlacementCandidate> = request.candidates.iter().collect();
        by_age.sort_by(|a, b| b.idle_for.cmp(&a.idle_for).then(a.model.cmp(&b.model)));
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for candidate in by_age {
            if freed >= request.shortfall() {
                break;
            }
            freed += candidate.bytes;
            victims.push(candidate.model.clone());
        }
        victims
    }
}

/// The policy's answer if it is a valid one (distinct idle candidates freeing enough), else
/// the least-recently-used answer; `None` when even every candidate cannot free enough.
pub fn checked_victims(
    policy: &dyn PlacementPolicy,
    request: &PlacementRequest,
) -> Option<Vec<String>> {
    let freeable: u64 = request.candidates.iter().map(|c| c.bytes).sum();
    if freeable < request.shortfall() {
        return None;
    }
    let _span = tracing::info_span!(
        "policy.placement",
        policy = policy.name(),
        model = %request.model,
        candidates = request.candidates.len()
    )
    .entered();
    let answer = match policy.try_choose_victims(request) {
        Ok(answer) => answer,
        Err(failure) => {
            tracing::warn!(policy = policy.name(), cause = failure.cause, detail = %failure.detail, "placement policy failed; using least-recently-used");
            instruments().placement_decision(policy.name(), PolicyOutcome::Fallback(failure.cause));
            return Some(LeastRecentlyUsed.choose_victims(request));
        }
    };
    match validate(request, &answer) {
        Ok(()) => {
            instruments().placement_decision(policy.name(), PolicyOutcome::Accepted);
            Some(answer)
        }
        Err(Rejection { cause, why }) => {
            tracing::warn!(policy = policy.name(), %why, "placement policy answer rejected; using least-recently-used");
            instruments().placement_decision(policy.name(), PolicyOutcome::Fallback(cause));
            Some(LeastRecentlyUsed.choose_victims(request))
        }
    }
}

/// Why a policy's answer was refused: a short cause for metrics, the details for the log.
struct Rejection {
    cause: &'static str,
    why: String,
}

fn validate(request: &PlacementRequest, victims: &[String]) -> Result<(), Rejection> {
    let mut freed = 0u64;
    let mut seen = std::collections::HashSet::new();
    for victim in victims {
        let candidate = request
            .candidates
            .iter()
            .find(|c| &c.model == victim)
            .ok_or_else(|| Rejection {
                cause: "unknown_victim",
                why: format!("`{victim}` is not an idle loaded model"),
            })?;
        if !seen.insert(victim) {
            return Err(Rejection {
                cause: "duplicate_victim",
                why: format!("`{victim}` is named twice"),
            });
        }
        freed += candidate.bytes;
    }
    if freed < request.shortfall() {
        return Err(Rejection {
            cause: "too_few_bytes",
            why: format!(
                "the victims free {freed} bytes, {} are needed",
                request.shortfall()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(model: &str, bytes: u64, idle_secs: u64) -> PlacementCandidate {
        PlacementCandidate {
            model: model.into(),
            bytes,
            idle_for: Duration::from_secs(idle_secs),
            requests: 1,
        }
    }

    fn request(need: u64, free: u64) -> PlacementRequest {
        PlacementRequest {
            model: "new".into(),
            need,
            budget: 1000,
            free,
            candidates: vec![
                candidate("recent", 300, 1),
                candidate("old", 200, 60),
                candidate("older", 100, 600),
            ],
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_only_as_many_as_needed() {
        assert_eq!(
            checked_victims(&LeastRecentlyUsed, &request(400, 200)).unwrap(),
            ["older", "old"]
        );
        assert_eq!(
            checked_victims(&LeastRecentlyUsed, &request(250, 200)).unwrap(),
            ["older"]
        );
    }

    #[test]
    fn nothing_is_chosen_when_all_idle_models_would_not_free_enough() {
        assert_eq!(
            checked_victims(&LeastRecentlyUsed, &request(900, 200)),
            None
        );
    }

    struct Answer(Vec<&'static str>);
    impl PlacementPolicy for Answer {
        fn name(&self) -> &str {
            "fixed"
        }
        fn choose_victims(&self, _: &PlacementRequest) -> Vec<String> {
            self.0.iter().map(|s| s.to_string()).collect()
        }
    }

    #[test]
    fn a_valid_policy_answer_is_followed_and_a_wrong_one_replaced() {
        let r = request(400, 200);
        assert_eq!(
            checked_victims(&Answer(vec!["recent"]), &r).unwrap(),
            ["recent"]
        );
        // Too little, unknown, or twice the same: least-recently-used decides instead.
        for wrong in [vec!["older"], vec!["busy"], vec!["old", "old"]] {
            assert_eq!(
                checked_victims(&Answer(wrong), &r).unwrap(),
                ["older", "old"]
            );
        }
    }
}
