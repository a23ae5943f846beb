//! Answers nonsense: a model that does not exist, and (for placement, where it exports the
//! world too) victims that free too few bytes. porten must check and refuse both.

wit_bindgen::generate!({ path: "../../../wit", world: "eviction-policy" });

struct Nonsense;

impl exports::porten::policy::eviction::Guest for Nonsense {
    fn choose_victims(_request: exports::porten::policy::eviction::Request) -> Vec<String> {
        vec!["no-such-model:latest".to_string()]
    }
}

export!(Nonsense);
