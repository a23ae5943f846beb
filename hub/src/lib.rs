//! porten's hub: a fleet of `porten serve` nodes behind one endpoint. This crate holds the
//! fleet's facts as nodes report them and the decision of where a request for a model goes:
//! to a node that has it loaded, to one loading it, or to one the hub asks to load it. It
//! depends on nothing of the engine: the decisions are pure functions of the facts, so they
//! can be tested and simulated at fleet scale.
#![deny(missing_docs)]

pub mod facts;
pub mod fleet;
pub mod placement;
pub mod policy;

pub use facts::{ModelFacts, ModelState, NodeFacts, Offer};
pub use fleet::{Decision, Fleet, HotSettings, Member, PlacementRecord, Target};
pub use placement::{route, Placement, PlacementSettings, Route, Strategy};
pub use policy::{Candidate, FleetPolicy, PolicyFailure};
