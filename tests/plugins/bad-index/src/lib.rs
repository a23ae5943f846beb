//! A 0.2.0 eviction plugin that misuses indices: it answers a real index and then one it was
//! never sent, which porten must refuse whole. It also holds porten to the protocol: it traps
//! when asked to decide before it was given the names (`set-models`), and when asked to free
//! nothing, so a test can make its instance fail and see the next one given the names afresh.

wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "eviction-policy" });

use std::cell::Cell;

use exports::porten::policy::eviction::{Guest, Request};

thread_local! {
    static NAMED: Cell<bool> = const { Cell::new(false) };
}

struct Nonsense;

impl Guest for Nonsense {
    fn set_models(_names: Vec<String>) {
        NAMED.with(|named| named.set(true));
    }

    fn choose_victims(request: Request) -> Vec<u32> {
        assert!(NAMED.with(Cell::get), "choose-victims before set-models");
        assert!(request.bytes_needed > 0, "asked to free nothing");
        let real = request.candidates.model.first().copied();
        real.into_iter().chain([u32::MAX]).collect()
    }
}

export!(Nonsense);
