//! Allocates without end: porten's memory limit must stop it.

wit_bindgen::generate!({ path: "../../../wit", world: "eviction-policy" });

struct Hoard;

impl exports::porten::policy::eviction::Guest for Hoard {
    fn choose_victims(_request: exports::porten::policy::eviction::Request) -> Vec<String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export!(Hoard);
