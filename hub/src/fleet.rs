//! The hub's table of the fleet: each node's last report, when it came and where the node is
//! reached, plus what the hub itself knows sooner than the next report (the requests it has
//! in flight, the loads it asked for). Nothing here outlives the process: a restarted hub
//! learns the fleet again from the next second's reports.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::facts::{ModelFacts, ModelState, NodeFacts};
use crate::placement::{place_on, route, Placement, PlacementSettings, Route};
use crate::policy::{candidates, FleetPolicy, PolicyFailure};

/// How often nodes report.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// A node silent for this long is out of routing.
pub const OUT_AFTER: Duration = Duration::from_secs(3);
/// How long a load the hub asked for counts as under way before a report shows it: past
/// this, the node did not take it (or its report says otherwise) and the model can be placed
/// again.
pub const ASKED_PATIENCE: Duration = Duration::from_secs(120);
/// Placement decisions kept for `/hub/status`.
const DECISIONS_KEPT: usize = 64;

/// When a model gets another copy: every copy has at least `queued` requests waiting, for at
/// least `for_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HotSettings {
    /// Requests waiting on every copy.
    pub queued: u32,
    /// For this long, in milliseconds.
    pub for_ms: u64,
}

impl Default for HotSettings {
    fn default() -> Self {
        Self {
            queued: 4,
            for_ms: 3_000,
        }
    }
}

/// A node as the hub knows it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its last report.
    pub facts: NodeFacts,
    /// Where the hub sends its requests (`host:port`).
    pub address: String,
    /// When the last report came.
    pub seen: Instant,
    /// A request to it failed before it answered: out of routing until its next report.
    pub lost: bool,
}

impl Member {
    /// Whether it reported within [`OUT_AFTER`] and no request to it has failed since.
    pub fn is_live(&self, now: Instant) -> bool {
        !self.lost && now.saturating_duration_since(self.seen) < OUT_AFTER
    }
}

/// A load the hub asked a node for that no report shows yet.
#[derive(Debug, Clone)]
struct Asked {
    node: String,
    model: String,
    bytes: u64,
    evict: Vec<String>,
    at: Instant,
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Send it to this node.
    Node {
        /// The node's name.
        name: String,
        /// Where it is reached.
        address: String,
        /// Set when the hub places the model there with this request: the node unloads
        /// these models first.
        evict: Option<Vec<String>>,
    },
    /// Every node that could hold it is full of busy or young models: wait and ask again.
    Wait,
    /// No node's budget can ever hold it.
    Never {
        /// The estimate, in bytes.
        need: u64,
        /// The largest budget among nodes that offer it.
        largest_budget: u64,
    },
    /// No reporting node offers it.
    Unknown,
}

/// A decision: where the request goes, and a second copy to load beside it when the model is
/// hot (the node's name, its address and what it unloads first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Where the request goes.
    pub target: Target,
    /// Another copy to start loading now.
    pub second_copy: Option<(String, String, Vec<String>)>,
    /// The placement plugin failed this decision (the built-in policy made it).
    pub policy_failure: Option<PolicyFailure>,
}

/// One placement, for `/hub/status`.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementRecord {
    /// Milliseconds since the hub started.
    pub at_ms: u64,
    /// The model placed.
    pub model: String,
    /// The node asked to load it.
    pub node: String,
    /// Idle models it unloads first.
    pub evict: Vec<String>,
    /// Whether it pulls the weights.
    pub pull: bool,
    /// Why: the built-in policy's words, with `second copy` for a hot model's extra copy.
    pub reason: String,
}

/// The fleet.
#[derive(Debug)]
pub struct Fleet {
    members: BTreeMap<String, Member>,
    asked: Vec<Asked>,
    /// Requests the hub has in flight, by (node, model).
    in_flight: HashMap<(String, String), u32>,
    /// When the hub last saw a request end, by (node, model): fresher than the reports'
    /// idle times.
    last_done: HashMap<(String, String), Instant>,
    /// Since when every copy of a model has been hot.
    hot_since: HashMap<String, Instant>,
    decisions: VecDeque<PlacementRecord>,
    started: Instant,
    policy: Option<Arc<dyn FleetPolicy>>,
}

impl std::fmt::Debug for dyn FleetPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FleetPolicy({})", self.name())
    }
}

impl Fleet {
    /// An empty fleet, as a hub starts.
    pub fn new(now: Instant) -> Self {
        Self {
            members: BTreeMap::new(),
            asked: Vec::new(),
            in_flight: HashMap::new(),
            last_done: HashMap::new(),
            hot_since: HashMap::new(),
            decisions: VecDeque::new(),
            started: now,
            policy: None,
        }
    }

    /// Places models with `policy` (a plugin) where it answers, the built-in policy else.
    pub fn with_policy(mut self, policy: Arc<dyn FleetPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// A node's report. Loads the hub asked of it that the report shows (loading or loaded)
    /// are settled.
    pub fn report(&mut self, facts: NodeFacts, address: String, now: Instant) {
        self.asked.retain(|a| {
            a.node != facts.name
                || (facts.model(&a.model).is_none()
                    && now.saturating_duration_since(a.at) < ASKED_PATIENCE)
        });
        let name = facts.name.clone();
        self.members.insert(
            name,
            Member {
                facts,
                address,
                seen: now,
                lost: false,
            },
        );
    }

    /// Every node that reported, live or not, by name.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The nodes in routing now.
    pub fn live(&self, now: Instant) -> impl Iterator<Item = &Member> {
        self.members.values().filter(move |m| m.is_live(now))
    }

    /// A request to `node` failed before it answered: it is out of routing until it reports
    /// again (its report proves it is back).
    pub fn lost(&mut self, node: &str) {
        if let Some(member) = self.members.get_mut(node) {
            member.lost = true;
        }
    }

    /// How many nodes are live.
    pub fn live_count(&self, now: Instant) -> usize {
        self.live(now).count()
    }

    /// The recent placement decisions, oldest first.
    pub fn decisions(&self) -> impl Iterator<Item = &PlacementRecord> {
        self.decisions.iter()
    }

    /// A request for `model` starts on `node`.
    pub fn started(&mut self, node: &str, model: &str) {
        *self
            .in_flight
            .entry((node.to_string(), model.to_string()))
            .or_default() += 1;
    }

    /// A request for `model` on `node` is over, at `now`.
    pub fn finished(&mut self, node: &str, model: &str, now: Instant) {
        let key = (node.to_string(), model.to_string());
        self.last_done.insert(key.clone(), now);
        if let Some(n) = self.in_flight.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&key);
            }
        }
    }

    /// `node` did not take the load of `model` the hub asked for (it refused, or failed
    /// before answering): the model may be placed elsewhere at once.
    pub fn refused(&mut self, node: &str, model: &str) {
        self.asked.retain(|a| a.node != node || a.model != model);
    }

    /// Where a request for `model` goes, never to a node in `excluded` (ones that already
    /// failed this request). A placement is remembered, so the requests after it queue on
    /// the same node until its report shows the model.
    pub fn decide(
        &mut self,
        model: &str,
        now: Instant,
        settings: &PlacementSettings,
        hot: &HotSettings,
        excluded: &[String],
    ) -> Decision {
        let (view, addresses) = self.view(model, now, excluded);
        let Some(estimate) = view.iter().filter_map(|n| n.offer(model)).max() else {
            return Decision {
                target: Target::Unknown,
                second_copy: None,
                policy_failure: None,
            };
        };
        let mut policy_failure = None;
        let target = match route(&view, model, estimate, settings) {
            Route::Serve { node } | Route::Queue { node } => Target::Node {
                name: view[node].name.clone(),
                address: addresses[node].clone(),
                evict: None,
            },
            Route::Place(builtin) => {
                let placement = match self.by_policy(&view, model, estimate, settings.min_age_ms) {
                    Ok(Some(chosen)) => chosen,
                    Ok(None) => builtin,
                    Err(failure) => {
                        policy_failure = Some(failure);
                        builtin
                    }
                };
                let evict = placement.evict.clone();
                let (name, address) = (
                    view[placement.node].name.clone(),
                    addresses[placement.node].clone(),
                );
                self.ask(&view, model, estimate, placement, now);
                Target::Node {
                    name,
                    address,
                    evict: Some(evict),
                }
            }
            Route::Wait => Target::Wait,
            Route::Never { largest_budget } => Target::Never {
                need: estimate,
                largest_budget,
            },
        };
        let second_copy = match &target {
            Target::Node { evict: None, .. } if self.is_hot(&view, model, now, hot) => {
                self.second_copy(&view, &addresses, model, estimate, settings, now)
            }
            _ => None,
        };
        Decision {
            target,
            second_copy,
            policy_failure,
        }
    }

    /// The plugin's placement, checked: a node it names must be one that can take the model.
    fn by_policy(
        &self,
        view: &[NodeFacts],
        model: &str,
        estimate: u64,
        min_age_ms: u64,
    ) -> Result<Option<Placement>, PolicyFailure> {
        let Some(policy) = &self.policy else {
            return Ok(None);
        };
        let able = candidates(view, model, estimate, min_age_ms);
        let Some(node) = policy.choose_node(view, model, estimate, &able)? else {
            return Ok(None);
        };
        let invalid = |detail: String| PolicyFailure {
            cause: "invalid_answer",
            detail,
        };
        if !able.iter().any(|c| c.node == node) {
            return Err(invalid(format!(
                "it chose node {node}, which is not one of the {} that can take `{model}`",
                able.len()
            )));
        }
        let reason = format!("plugin {} chose it", policy.name());
        place_on(view, node, model, estimate, min_age_ms, reason)
            .map(Some)
            .ok_or_else(|| invalid(format!("node {node} cannot make room for `{model}`")))
    }

    /// The live nodes but `excluded` that offer `model`, with what the hub knows beyond their
    /// reports: the loads it asked for (loading there, their victims gone), its own requests
    /// in flight (when more than the node last said) and when it last saw one end. Their
    /// addresses alongside.
    fn view(
        &self,
        model: &str,
        now: Instant,
        excluded: &[String],
    ) -> (Vec<NodeFacts>, Vec<String>) {
        let mut view = Vec::new();
        let mut addresses = Vec::new();
        for member in self.live(now) {
            let name = &member.facts.name;
            if excluded.contains(name) || member.facts.offer(model).is_none() {
                continue;
            }
            let mut facts = member.facts.clone();
            for asked in self.asked.iter().filter(|a| &a.node == name) {
                let freed: u64 = facts
                    .models
                    .iter()
                    .filter(|m| asked.evict.contains(&m.model))
                    .map(|m| m.bytes)
                    .sum();
                facts.models.retain(|m| !asked.evict.contains(&m.model));
                facts.reserved_bytes = facts.reserved_bytes.saturating_sub(freed) + asked.bytes;
                facts.models.push(ModelFacts {
                    model: asked.model.clone(),
                    state: ModelState::Loading,
                    bytes: asked.bytes,
                    in_flight: 0,
                    queued: 0,
                    idle_ms: 0,
                    loaded_ms: 0,
                });
            }
            for m in facts.models.iter_mut() {
                let key = (name.clone(), m.model.clone());
                if let Some(&ours) = self.in_flight.get(&key) {
                    m.in_flight = m.in_flight.max(ours);
                }
                if let Some(&done) = self.last_done.get(&key) {
                    let since = now.saturating_duration_since(done).as_millis() as u64;
                    m.idle_ms = m.idle_ms.min(since);
                }
            }
            view.push(facts);
            addresses.push(member.address.clone());
        }
        (view, addresses)
    }

    fn ask(
        &mut self,
        view: &[NodeFacts],
        model: &str,
        estimate: u64,
        placement: Placement,
        now: Instant,
    ) {
        let node = view[placement.node].name.clone();
        self.asked.push(Asked {
            node: node.clone(),
            model: model.to_string(),
            bytes: estimate,
            evict: placement.evict.clone(),
            at: now,
        });
        if self.decisions.len() == DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        self.decisions.push_back(PlacementRecord {
            at_ms: now.saturating_duration_since(self.started).as_millis() as u64,
            model: model.to_string(),
            node,
            evict: placement.evict,
            pull: placement.pull,
            reason: placement.reason,
        });
    }

    /// Whether every loaded copy of `model` has had `hot.queued` requests waiting for
    /// `hot.for_ms` (and no copy is loading already).
    fn is_hot(&mut self, view: &[NodeFacts], model: &str, now: Instant, hot: &HotSettings) -> bool {
        let copies: Vec<&ModelFacts> = view.iter().filter_map(|n| n.model(model)).collect();
        let hot_now = !copies.is_empty()
            && copies
                .iter()
                .all(|m| m.state == ModelState::Loaded && m.queued >= hot.queued);
        if !hot_now {
            self.hot_since.remove(model);
            return false;
        }
        let since = *self.hot_since.entry(model.to_string()).or_insert(now);
        now.saturating_duration_since(since) >= Duration::from_millis(hot.for_ms)
    }

    /// A placement of another copy of `model` on a node that holds none, when one can take it.
    fn second_copy(
        &mut self,
        view: &[NodeFacts],
        addresses: &[String],
        model: &str,
        estimate: u64,
        settings: &PlacementSettings,
        now: Instant,
    ) -> Option<(String, String, Vec<String>)> {
        let (others, their_addresses): (Vec<NodeFacts>, Vec<String>) = view
            .iter()
            .zip(addresses)
            .filter(|(n, _)| n.model(model).is_none())
            .map(|(n, a)| (n.clone(), a.clone()))
            .unzip();
        let Route::Place(mut placement) = route(&others, model, estimate, settings) else {
            return None;
        };
        placement.reason = format!("second copy: every copy is busy; {}", placement.reason);
        self.hot_since.remove(model);
        let name = others[placement.node].name.clone();
        let address = their_addresses[placement.node].clone();
        let evict = placement.evict.clone();
        self.ask(&others, model, estimate, placement, now);
        Some((name, address, evict))
    }
}
