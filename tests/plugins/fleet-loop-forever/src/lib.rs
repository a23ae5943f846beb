//! A fleet placement plugin that never answers: porten's deadline must stop it.

wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "fleet-placement-policy" });

use exports::porten::policy::fleet_placement::{Guest, Request};

struct Spin;

impl Guest for Spin {
    fn set_nodes(_names: Vec<String>) {}

    fn choose_node(request: Request) -> Option<u32> {
        let mut n = request.estimate_bytes;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
            if n == 0 && request.nodes.index.len() > usize::MAX / 2 {
                return None;
            }
        }
    }
}

export!(Spin);
