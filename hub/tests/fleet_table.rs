//! The hub's fleet table: what it adds to the nodes' reports (loads it asked for, its own
//! requests), when a node drops out, and when a hot model gets a second copy.

use std::time::{Duration, Instant};

use porten_hub::{
    Fleet, HotSettings, ModelFacts, ModelState, NodeFacts, Offer, PlacementSettings, Target,
};

const GIB: u64 = 1 << 30;

fn node(name: &str, budget_gib: u64, loaded: &[(&str, u32)]) -> NodeFacts {
    let models: Vec<ModelFacts> = loaded
        .iter()
        .map(|(model, queued)| ModelFacts {
            model: model.to_string(),
            state: ModelState::Loaded,
            bytes: 6 * GIB,
            in_flight: 1,
            queued: *queued,
            idle_ms: 0,
            loaded_ms: 600_000,
        })
        .collect();
    NodeFacts {
        name: name.into(),
        budget_bytes: budget_gib * GIB,
        reserved_bytes: models.iter().map(|m| m.bytes).sum(),
        models,
        store: Vec::new(),
        catalog: ["a", "b", "c"]
            .iter()
            .map(|m| Offer {
                model: m.to_string(),
                bytes: 6 * GIB,
            })
            .collect(),
    }
}

fn decide(fleet: &mut Fleet, model: &str, now: Instant) -> Target {
    fleet
        .decide(
            model,
            now,
            &PlacementSettings::default(),
            &HotSettings::default(),
            &[],
        )
        .target
}

fn name_of(target: &Target) -> &str {
    match target {
        Target::Node { name, .. } => name,
        other => panic!("not a node: {other:?}"),
    }
}

#[test]
fn a_placement_holds_until_a_report_shows_it_and_its_room_is_taken() {
    let now = Instant::now();
    let mut fleet = Fleet::new(now);
    fleet.report(node("n1", 8, &[]), "10.0.0.1:1".into(), now);
    fleet.report(node("n2", 8, &[]), "10.0.0.2:1".into(), now);
    let first = decide(&mut fleet, "a", now);
    assert!(matches!(&first, Target::Node { evict: Some(e), .. } if e.is_empty()));
    let again = decide(&mut fleet, "a", now);
    assert_eq!(
        name_of(&again),
        name_of(&first),
        "queues where it was placed"
    );
    assert!(matches!(again, Target::Node { evict: None, .. }));
    let other = decide(&mut fleet, "b", now);
    assert_ne!(
        name_of(&other),
        name_of(&first),
        "the first node's room is taken"
    );
    assert_eq!(fleet.decisions().count(), 2);
    assert_eq!(
        decide(&mut fleet, "c", now),
        Target::Wait,
        "both nodes are full"
    );
    assert_eq!(decide(&mut fleet, "nope", now), Target::Unknown);
}

#[test]
fn a_refused_load_is_placed_elsewhere_and_a_silent_node_drops_out() {
    let now = Instant::now();
    let mut fleet = Fleet::new(now);
    fleet.report(node("n1", 8, &[]), "10.0.0.1:1".into(), now);
    fleet.report(node("n2", 7, &[]), "10.0.0.2:1".into(), now);
    let first = decide(&mut fleet, "a", now);
    assert_eq!(name_of(&first), "n1", "spread: the most free");
    fleet.refused("n1", "a");
    let excluded = vec!["n1".to_string()];
    let next = fleet
        .decide(
            "a",
            now,
            &PlacementSettings::default(),
            &HotSettings::default(),
            &excluded,
        )
        .target;
    assert_eq!(name_of(&next), "n2");
    let later = now + Duration::from_secs(2);
    fleet.report(node("n2", 7, &[("a", 0)]), "10.0.0.2:1".into(), later);
    let out = later + Duration::from_millis(1500);
    assert_eq!(fleet.live_count(out), 1, "n1 has been silent for 3.5 s");
    assert_eq!(name_of(&decide(&mut fleet, "a", out)), "n2");
}

#[test]
fn a_model_queued_on_every_copy_for_a_while_gets_a_second_copy() {
    let now = Instant::now();
    let mut fleet = Fleet::new(now);
    let hot = HotSettings {
        queued: 4,
        for_ms: 2000,
    };
    let settings = PlacementSettings::default();
    let report = |fleet: &mut Fleet, queued: u32, at: Instant| {
        fleet.report(node("n1", 8, &[("a", queued)]), "10.0.0.1:1".into(), at);
        fleet.report(node("n2", 8, &[]), "10.0.0.2:1".into(), at);
    };
    report(&mut fleet, 1, now);
    assert_eq!(
        fleet.decide("a", now, &settings, &hot, &[]).second_copy,
        None
    );
    report(&mut fleet, 6, now);
    assert_eq!(
        fleet.decide("a", now, &settings, &hot, &[]).second_copy,
        None,
        "not hot long enough"
    );
    let later = now + Duration::from_millis(2500);
    report(&mut fleet, 6, later);
    let decision = fleet.decide("a", later, &settings, &hot, &[]);
    assert_eq!(
        name_of(&decision.target),
        "n1",
        "the request goes to the loaded copy"
    );
    let (node, _, evict) = decision.second_copy.expect("a second copy");
    assert_eq!((node.as_str(), evict.len()), ("n2", 0));
    assert!(fleet
        .decisions()
        .any(|d| d.reason.starts_with("second copy")));
    assert_eq!(
        fleet.decide("a", later, &settings, &hot, &[]).second_copy,
        None,
        "one is loading already"
    );
}

/// A policy that names the fleet index it was built with.
struct Names(usize);

impl porten_hub::FleetPolicy for Names {
    fn name(&self) -> &str {
        "names"
    }

    fn choose_node(
        &self,
        _: &[NodeFacts],
        _: &str,
        _: u64,
        _: &[porten_hub::Candidate],
    ) -> Result<Option<usize>, porten_hub::PolicyFailure> {
        Ok(Some(self.0))
    }
}

#[test]
fn a_policy_places_where_it_says_unless_that_node_cannot_take_the_model() {
    let now = Instant::now();
    let report = |fleet: &mut Fleet, n2_loaded: &[(&str, u32)]| {
        fleet.report(node("n1", 24, &[]), "10.0.0.1:1".into(), now);
        fleet.report(node("n2", 8, n2_loaded), "10.0.0.2:1".into(), now);
    };
    let mut chosen = Fleet::new(now).with_policy(std::sync::Arc::new(Names(1)));
    report(&mut chosen, &[]);
    let decision = chosen.decide(
        "a",
        now,
        &PlacementSettings {
            min_age_ms: 0,
            ..PlacementSettings::default()
        },
        &HotSettings::default(),
        &[],
    );
    assert_eq!(decision.policy_failure, None);
    assert_eq!(name_of(&decision.target), "n2", "not the spread's n1");
    assert!(chosen
        .decisions()
        .any(|d| d.reason == "plugin names chose it"));
    // With a busy model on n2 it cannot make room, so the built-in policy decides.
    let mut refused = Fleet::new(now).with_policy(std::sync::Arc::new(Names(1)));
    report(&mut refused, &[("b", 0)]);
    let decision = refused.decide(
        "a",
        now,
        &PlacementSettings::default(),
        &HotSettings::default(),
        &[],
    );
    assert_eq!(name_of(&decision.target), "n1");
    assert_eq!(decision.policy_failure.unwrap().cause, "invalid_answer");
}
