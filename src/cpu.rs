//! The CPU features this binary was compiled to use, checked against the CPU it runs on before
//! anything else runs. candle picks its quantized kernels at compile time
//! (`#[cfg(target_feature = "avx2")]`), so porten is built for x86-64-v3 (`.cargo/config.toml`):
//! on a CPU without those features the binary would die of SIGILL at its first matrix product,
//! where this check says what is missing instead.

/// The x86-64-v3 level (AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE) and the v2 features under it,
/// as `is_x86_feature_detected!` names them: one list, so what is compiled in and what is
/// checked cannot drift apart.
macro_rules! x86_features {
    ($($name:tt),* $(,)?) => {
        /// The features of the list the compiler was allowed to use.
        pub fn compiled_features() -> Vec<&'static str> {
            [$(($name, cfg!(target_feature = $name))),*]
                .into_iter()
                .filter(|(_, compiled)| *compiled)
                .map(|(name, _)| name)
                .collect()
        }

        /// Whether the CPU running this has `feature` (a name from [`compiled_features`]).
        pub fn cpu_has(feature: &str) -> bool {
            #[cfg(target_arch = "x86_64")]
            {
                match feature {
                    $($name => std::arch::is_x86_feature_detected!($name),)*
                    _ => false,
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = feature;
                false
            }
        }
    };
}

x86_features!(
    "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2",
    "lzcnt", "movbe",
);

/// The error for a CPU that lacks some of `compiled`, judged by `has`; None when it has them all.
pub fn missing_features_error(compiled: &[&str], has: impl Fn(&str) -> bool) -> Option<String> {
    let missing: Vec<&str> = compiled.iter().copied().filter(|f| !has(f)).collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "this porten binary was built for CPUs with {}, and this CPU lacks {}: rebuild it for \
         this CPU with RUSTFLAGS=\"-C target-cpu=native\" cargo build --release (see README, \
         \"CPU builds\")",
        compiled.join(", "),
        missing.join(", ")
    ))
}

/// Checks the running CPU against what the binary was compiled for.
pub fn check() -> Result<(), String> {
    match missing_features_error(&compiled_features(), cpu_has) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// One line for the start-up log: which of candle's compile-time CPU kernels this build has.
pub fn kernels() -> String {
    let simd = if cfg!(target_feature = "avx2") {
        "avx2"
    } else if cfg!(target_feature = "avx") {
        "avx"
    } else if cfg!(target_feature = "neon") {
        "neon"
    } else if cfg!(target_feature = "simd128") {
        "simd128"
    } else {
        "none (scalar)"
    };
    format!(
        "quantized dot products: {simd}; f16 conversion: {}",
        if cfg!(target_feature = "f16c") {
            "f16c"
        } else {
            "software"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_without_avx2_is_refused_by_name() {
        let compiled = ["avx", "avx2", "fma", "f16c"];
        let error = missing_features_error(&compiled, |f| f != "avx2" && f != "fma").unwrap();
        assert!(error.contains("lacks avx2, fma"), "{error}");
        assert!(
            error.contains("built for CPUs with avx, avx2, fma, f16c"),
            "{error}"
        );
        assert!(error.contains("target-cpu=native"), "{error}");
    }

    #[test]
    fn a_cpu_with_every_feature_passes() {
        assert_eq!(missing_features_error(&["avx2", "fma"], |_| true), None);
        assert_eq!(missing_features_error(&[], |_| false), None);
    }

    #[test]
    fn the_release_build_is_for_x86_64_v3_and_this_cpu_has_it() {
        // .cargo/config.toml asks for x86-64-v3 on x86_64 Linux; the machines tests run on have
        // it, so the check passes here and names what it would refuse elsewhere.
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            let compiled = compiled_features();
            for feature in ["avx2", "fma", "f16c", "bmi2"] {
                assert!(compiled.contains(&feature), "{feature} not compiled in");
            }
            assert_eq!(check(), Ok(()));
            assert!(kernels().starts_with("quantized dot products: avx2"));
        }
    }
}
