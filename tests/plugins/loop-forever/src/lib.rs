//! Never answers: porten's deadline must stop it.

wit_bindgen::generate!({ path: "../../../wit", world: "placement-policy" });

struct Spin;

impl exports::porten::policy::placement::Guest for Spin {
    fn choose_victims(request: exports::porten::policy::placement::Request) -> Vec<String> {
        let mut n = request.need_bytes;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
            if n == 0 && request.candidates.len() > usize::MAX / 2 {
                return Vec::new();
            }
        }
    }
}

export!(Spin);
