//! Traps (a Rust panic aborts to `unreachable`): porten must fall back.

wit_bindgen::generate!({ path: "../../../wit", world: "eviction-policy" });

struct Crash;

impl exports::porten::policy::eviction::Guest for Crash {
    fn choose_victims(request: exports::porten::policy::eviction::Request) -> Vec<String> {
        let first = &request.candidates[request.candidates.len() + 1];
        vec![first.model.clone()]
    }
}

export!(Crash);
