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
        let favourite = |c: &Candidate| FAVOURITES.split(',').any(|f| f.trim() == c.model);
        let mut order: Vec<&Candidate> = request.candidates.iter().collect();
        // Others before favourites; within each, the longest idle first.
        order.sort_by(|a, b| {
            favourite(a)
                .cmp(&favourite(b))
                .then(b.idle_ms.cmp(&a.idle_ms))
                .then(a.model.cmp(&b.model))
        });
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for candidate in order {
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
