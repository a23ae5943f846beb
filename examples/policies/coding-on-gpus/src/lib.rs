//! Fleet placement for a team with GPU boxes and a Mac: coding models (a name with `code` in
//! it: `qwen2.5-coder-7b`, `codestral`) go to the GPU boxes (nodes named `gpu...`), the rest to
//! the other nodes; within the preferred ones, a node with the weights first, then the most
//! room (ties: the node listed first). When no preferred node can take the model, any node that can.

wit_bindgen::generate!({ path: "../../../wit/fleet", world: "fleet-placement-policy" });

use std::cell::RefCell;

use exports::porten::policy::fleet_placement::{Guest, Node, Request};

thread_local! {
    static NAMES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct CodingOnGpus;

impl Guest for CodingOnGpus {
    fn set_nodes(names: Vec<String>) {
        NAMES.with(|n| *n.borrow_mut() = names);
    }

    fn choose_node(request: Request) -> Option<u32> {
        let coding = request.model.to_ascii_lowercase().contains("code");
        NAMES.with(|names| {
            let names = names.borrow();
            let on_gpu = |node: &Node| {
                names
                    .get(node.index as usize)
                    .is_some_and(|name| name.starts_with("gpu"))
            };
            // Ties go to the node the hub listed first.
            let room = |node: &Node| {
                (
                    node.has_weights,
                    node.free_bytes + node.reclaimable_bytes,
                    std::cmp::Reverse(node.index),
                )
            };
            let preferred = request
                .nodes
                .iter()
                .filter(|node| on_gpu(node) == coding)
                .max_by_key(|node| room(node));
            preferred
                .or_else(|| request.nodes.iter().max_by_key(|node| room(node)))
                .map(|node| node.index)
        })
    }
}

export!(CodingOnGpus);
