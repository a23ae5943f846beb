//! `porten fit --tiers MODEL`: the hardware guide's table of GPU memory tiers, with the largest
//! model class that runs well at Q4 in each, and where MODEL fits and with how much context.
//! Every figure comes from the same estimator as `porten fit` and the scheduler, on a GPU
//! (2-byte KV cache, the CUDA/Metal context's fixed overhead).

use anyhow::bail;
use porten_proxy::residency::estimate::{bits_per_weight, hypothetical_shape};
use porten_proxy::residency::{estimate, Device, LoadSettings, ModelShape};
use serde::Serialize;

use crate::cli::FitArgs;
use crate::config::Config;
use crate::fit::{contexts_that_fit, models_to_size, short_count};
use crate::progress::human_bytes;

/// One row of the guide's table: a tier of GPU memory (or a Mac's GPU share of unified
/// memory, about three quarters of it) and hardware that has it.
#[derive(Debug, Clone, Copy)]
pub struct Tier {
    /// How the guide names it.
    pub label: &'static str,
    /// Its memory in GiB; a range is sized at its low end, so that what fits fits all of it.
    pub gib: u64,
    /// Example hardware.
    pub hardware: &'static str,
}

/// The guide's tiers.
pub const TIERS: [Tier; 8] = [
    Tier {
        label: "8-12 GB",
        gib: 8,
        hardware: "RTX 4060 / 5060 (8 GB), RTX 3060 (12 GB), a 16 GB Mac",
    },
    Tier {
        label: "16 GB",
        gib: 16,
        hardware: "RTX 4060 Ti / 5060 Ti 16 GB, RTX 4070 Ti Super, a 24 GB Mac",
    },
    Tier {
        label: "24 GB",
        gib: 24,
        hardware: "RTX 3090, RTX 4090, a 36 GB Mac",
    },
    Tier {
        label: "32 GB",
        gib: 32,
        hardware: "RTX 5090, a 48 GB Mac",
    },
    Tier {
        label: "48 GB",
        gib: 48,
        hardware: "RTX A6000 / 6000 Ada, L40S, a 64 GB Mac",
    },
    Tier {
        label: "64-96 GB",
        gib: 64,
        hardware: "H100 (80 GB), RTX PRO 6000 (96 GB), a 96 or 128 GB Mac",
    },
    Tier {
        label: "128 GB",
        gib: 128,
        hardware: "H200 (141 GB), DGX Spark, Ryzen AI Max+ 395 (128 GB), a 192 GB Mac",
    },
    Tier {
        label: "256 GB",
        gib: 256,
        hardware: "MI300X / B200-class (192-288 GB), a 512 GB Mac Studio",
    },
];

/// The model classes of the guide's "runs well at Q4" column, smallest first: a name,
/// parameters and, for a mixture of experts, parameters active per token.
pub const CLASSES: [(&str, f64, Option<f64>); 7] = [
    ("7-8B", 8e9, None),
    ("14B", 14e9, None),
    ("32B", 32e9, None),
    ("70B", 70e9, None),
    ("80B MoE", 80e9, Some(3e9)),
    ("120B MoE", 120e9, Some(5e9)),
    ("235B MoE", 235e9, Some(22e9)),
];

/// "Runs well": the weights, one sequence of this many tokens and porten's default prefix
/// cache fit: a coding agent's working context for one user.
pub const RUNS_WELL_CONTEXT: u64 = 8192;

/// One tier's answer.
#[derive(Debug, Serialize)]
pub struct TierRow {
    /// The guide's name for it.
    pub tier: &'static str,
    /// Memory it is sized at, in bytes.
    pub bytes: u64,
    /// Example hardware.
    pub hardware: &'static str,
    /// The largest class of [`CLASSES`] that runs well at Q4_K_M here.
    pub runs_well_at_q4: Option<&'static str>,
    /// Whether the model fits at the asked context and parallelism.
    pub fits: bool,
    /// The estimate at the asked context and parallelism, in bytes.
    pub total: u64,
    /// The longest of the usual context lengths that fits, if any.
    pub longest_context: Option<u64>,
}

/// The whole table for one model.
#[derive(Debug, Serialize)]
pub struct TierReport {
    /// The model.
    pub model: String,
    /// Its parameters, every expert included.
    pub parameters: u64,
    /// Its quantization, when known.
    pub quantization: Option<String>,
    /// The context per sequence `fits` and `total` are for.
    pub context: u64,
    /// Sequences at once.
    pub parallel: u64,
    /// One row per tier.
    pub tiers: Vec<TierRow>,
}

fn gpu_settings(context: u64, sequences: u64) -> LoadSettings {
    LoadSettings {
        context,
        sequences,
        device: Device::Cuda,
        prefix_cache_mb: None,
    }
}

/// The largest class that runs well in `bytes`.
pub fn runs_well_at_q4(bytes: u64) -> Option<&'static str> {
    let q4 = bits_per_weight("q4_k_m").expect("a known quantization");
    CLASSES
        .iter()
        .rev()
        .find(|(_, parameters, active)| {
            let shape = hypothetical_shape(*parameters as u64, q4, active.map(|a| a as u64));
            estimate(&shape, &gpu_settings(RUNS_WELL_CONTEXT, 1)).total <= bytes
        })
        .map(|(name, _, _)| *name)
}

/// The table for `shape` at `context` x `parallel`.
pub fn rows(shape: &ModelShape, context: u64, parallel: u64) -> Vec<TierRow> {
    let total = estimate(shape, &gpu_settings(context, parallel)).total;
    let total_at = |c| estimate(shape, &gpu_settings(c, parallel)).total;
    TIERS
        .iter()
        .map(|tier| {
            let bytes = tier.gib << 30;
            let longest_context = contexts_that_fit(shape, Some(bytes), total_at)
                .last()
                .copied();
            TierRow {
                tier: tier.label,
                bytes,
                hardware: tier.hardware,
                runs_well_at_q4: runs_well_at_q4(bytes),
                fits: total <= bytes,
                total,
                longest_context,
            }
        })
        .collect()
}

/// Computes the table for the one model the command names.
pub fn report(config: &Config, args: &FitArgs) -> anyhow::Result<TierReport> {
    let mut models = models_to_size(config, args, Device::Cuda)?;
    if models.len() != 1 {
        bail!("--tiers sizes one model: name it, or describe it with --params 32B --quant q4_k_m");
    }
    let (spec, shape, quantization) = models.remove(0);
    let context = args.ctx.unwrap_or(RUNS_WELL_CONTEXT);
    let parallel = args.parallel.unwrap_or(1);
    Ok(TierReport {
        model: spec.id,
        parameters: shape.parameters,
        quantization,
        context,
        parallel,
        tiers: rows(&shape, context, parallel),
    })
}

/// Runs `porten fit --tiers`.
pub fn print(config: &Config, args: &FitArgs) -> anyhow::Result<()> {
    let report = report(config, args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} ({} parameters, {}) at {} tokens x{} on a GPU",
        report.model,
        short_count(report.parameters),
        report.quantization.as_deref().unwrap_or("?"),
        report.context,
        report.parallel
    );
    println!(
        "{:<9} {:<10} {:>10} {:>5} {:>9}  EXAMPLE HARDWARE",
        "TIER", "RUNS WELL", "NEEDS", "FITS", "MAX CTX"
    );
    for row in &report.tiers {
        println!(
            "{:<9} {:<10} {:>10} {:>5} {:>9}  {}",
            row.tier,
            row.runs_well_at_q4.unwrap_or("-"),
            human_bytes(row.total),
            if row.fits { "yes" } else { "no" },
            row.longest_context.map_or("-".into(), |c| c.to_string()),
            row.hardware
        );
    }
    println!(
        "RUNS WELL: the largest model class whose Q4_K_M weights, {RUNS_WELL_CONTEXT} tokens \
         of context and the default prefix cache fit the tier; a Mac's tier is its GPU's \
         share of unified memory (about three quarters)."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's "runs well at Q4" column.
    const GUIDE: [(&str, &str); 8] = [
        ("8-12 GB", "7-8B"),
        ("16 GB", "14B"),
        ("24 GB", "32B"),
        ("32 GB", "32B"),
        ("48 GB", "70B"),
        ("64-96 GB", "80B MoE"),
        ("128 GB", "120B MoE"),
        ("256 GB", "235B MoE"),
    ];

    #[test]
    fn the_estimator_reproduces_the_guides_runs_well_column() {
        for (tier, (label, class)) in TIERS.iter().zip(GUIDE) {
            assert_eq!(tier.label, label);
            assert_eq!(runs_well_at_q4(tier.gib << 30), Some(class), "{label}");
        }
    }

    /// Each class fits from its own tier on and not in the one below.
    #[test]
    fn each_class_first_fits_in_its_tier() {
        let q4 = bits_per_weight("q4_k_m").unwrap();
        for (name, first_tier) in [
            ("7-8B", "8-12 GB"),
            ("14B", "16 GB"),
            ("32B", "24 GB"),
            ("70B", "48 GB"),
            ("80B MoE", "64-96 GB"),
        ] {
            let (_, parameters, active) = CLASSES.iter().find(|c| c.0 == name).unwrap();
            let shape = hypothetical_shape(*parameters as u64, q4, active.map(|a| a as u64));
            let table = rows(&shape, RUNS_WELL_CONTEXT, 1);
            let first = table.iter().find(|r| r.fits).map(|r| r.tier);
            assert_eq!(first, Some(first_tier), "{name}");
            assert!(
                table.iter().skip_while(|r| !r.fits).all(|r| r.fits),
                "{name} fits every larger tier"
            );
            let at_first = table.iter().find(|r| r.fits).unwrap();
            assert!(at_first.longest_context.unwrap() >= RUNS_WELL_CONTEXT);
        }
    }
}
