//! Placement that keeps favourite models resident: when room is needed, the other idle models
//! go first (least recently used first), and a favourite goes only if unloading every other
//! candidate would not free enough. The favourites are fixed when the plugin is built:
//! `FAVOURITES=a,b cargo build ...` (default: `smollm2,tiny`).

wit_bindgen::generate!({ path: "../../../wit", world: "placement-policy" });

use exports::porten::policy::placement::{Candidate, Guest, Request};

const FAVOURITES: &str = match option_env!("FAVOURITES") {
    Some(list) => list,
    None => "smollm2,tiny",
};

struct PinnedFavourites;

impl Guest for PinnedFavourites {
    fn choose_victims(request: Request) -> Vec<String> {
        let favourites: Vec<&str> = FAVOURITES.split(',').map(str::trim).collect();
        // Others before favourites; within each, the longest idle first.
        let mut order: Vec<(bool, u64, &Candidate)> = request
            .candidates
            .iter()
            .map(|c| (favourites.contains(&c.model.as_str()), u64::MAX - c.idle_ms, c))
            .collect();
        order.sort_unstable_by(|a, b| (a.0, a.1, &a.2.model).cmp(&(b.0, b.1, &b.2.model)));
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for (_, _, candidate) in order {
            if freed >= request.shortfall_bytes {
                break;
            }
            freed += candidate.bytes;
            victims.push(candidate.model.clone());
        }
        victims
    }
}

export!(PinnedFavourites);
