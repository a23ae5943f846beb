//! Placement that keeps favourite models resident: when room is needed, the other idle models
//! go first (least recently used first), and a favourite goes only if unloading every other
//! candidate would not free enough. The favourites are fixed when the plugin is built:
//! `FAVOURITES=a,b cargo build ...` (default: `smollm2,tiny`).
//!
//! A `porten:policy@0.2.0` plugin: model names arrive once (`set-models`), so whether a model
//! is a favourite is worked out once per name, not on every decision.

wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "placement-policy" });

use std::cell::RefCell;

use exports::porten::policy::placement::{Guest, Request};

const FAVOURITES: &str = match option_env!("FAVOURITES") {
    Some(list) => list,
    None => "smollm2,tiny",
};

thread_local! {
    /// Whether each model, by the index porten names it by, is a favourite.
    static FAVOURITE: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

struct PinnedFavourites;

impl Guest for PinnedFavourites {
    fn set_models(names: Vec<String>) {
        let favourites: Vec<&str> = FAVOURITES.split(',').map(str::trim).collect();
        FAVOURITE.with(|f| {
            *f.borrow_mut() = names
                .iter()
                .map(|name| favourites.contains(&name.as_str()))
                .collect()
        });
    }

    fn choose_victims(request: Request) -> Vec<u32> {
        let c = &request.candidates;
        FAVOURITE.with(|favourite| {
            let favourite = favourite.borrow();
            let is_favourite = |at: usize| favourite.get(c.model[at] as usize) == Some(&true);
            // Others before favourites; within each, the longest idle first (ties: by index).
            let mut order: Vec<usize> = (0..c.model.len()).collect();
            order.sort_unstable_by_key(|&at| {
                (is_favourite(at), u64::MAX - c.idle_ms[at], c.model[at])
            });
            let mut freed = 0u64;
            let mut victims = Vec::new();
            for at in order {
                if freed >= request.shortfall_bytes {
                    break;
                }
                freed += c.bytes[at];
                victims.push(c.model[at]);
            }
            victims
        })
    }
}

export!(PinnedFavourites);
