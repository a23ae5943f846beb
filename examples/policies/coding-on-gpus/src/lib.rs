//! Fleet placement for a team with GPU boxes and a Mac: coding models (a name with `code` in
//! it: `qwen2.5-coder-7b`, `codestral`) go to the GPU boxes (nodes named `gpu...`), the rest to
//! the other nodes; within the preferred ones, a node with the weights first, then the most
//! room (ties: the node listed first). When no preferred node can take the model, any node that can.

wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "fleet-placement-policy" });

use std::cell::RefCell;

use exports::porten::policy::fleet_placement::{Guest, Request};

thread_local! {
    /// Whether each node, by the index the hub names it by, is a GPU box: worked out once per
    /// name, when the hub sends the names, not on every decision.
    static ON_GPU: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

struct CodingOnGpus;

impl Guest for CodingOnGpus {
    fn set_nodes(names: Vec<String>) {
        ON_GPU.with(|g| *g.borrow_mut() = names.iter().map(|n| n.starts_with("gpu")).collect());
    }

    fn choose_node(request: Request) -> Option<u32> {
        let coding = request.model.to_ascii_lowercase().contains("code");
        let nodes = &request.nodes;
        ON_GPU.with(|on_gpu| {
            let on_gpu = on_gpu.borrow();
            let gpu = |at: usize| on_gpu.get(nodes.index[at] as usize) == Some(&true);
            // Ties go to the node the hub listed first.
            let room = |at: &usize| {
                (
                    nodes.has_weights[*at],
                    nodes.free_bytes[*at] + nodes.reclaimable_bytes[*at],
                    std::cmp::Reverse(nodes.index[*at]),
                )
            };
            let all = 0..nodes.index.len();
            let preferred = all.clone().filter(|&at| gpu(at) == coding).max_by_key(room);
            preferred
                .or_else(|| all.max_by_key(room))
                .map(|at| nodes.index[at])
        })
    }
}

export!(CodingOnGpus);
