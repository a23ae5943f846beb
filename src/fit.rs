//! `porten fit`: which models fit in a memory budget, with weights, KV cache, overhead and
//! headroom, and the context lengths that fit; for store models, configured models, or a
//! hypothetical one (`--params 32B --quant q4_k_m`).

use anyhow::{bail, Context};
use porten_proxy::config::ModelSpec;
use porten_proxy::residency::estimate::{
    bits_per_weight, hypothetical_shape, parse_parameter_count, KNOWN_QUANTIZATIONS,
};
use porten_proxy::residency::{context_for, estimate, Device, LoadSettings, ModelShape};
use serde::Serialize;

use crate::cli::FitArgs;
use crate::config::Config;
use crate::progress::human_bytes;
use crate::sizing::{detect_devices, shape_of};

/// Contexts tried for "which context lengths fit".
const CONTEXT_STEPS: [u64; 8] = [2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144];

/// One model's answer.
#[derive(Debug, Serialize)]
pub struct FitRow {
    /// Its name (or `--params` for a hypothetical one).
    pub name: String,
    /// Parameters, all experts included.
    pub parameters: u64,
    /// Parameters per token.
    pub active_parameters: u64,
    /// Quantization, when known.
    pub quantization: Option<String>,
    /// Context per sequence the estimate is for.
    pub context: u64,
    /// Sequences at once.
    pub parallel: u64,
    /// Weight bytes.
    pub weights: u64,
    /// KV-cache bytes.
    pub kv_cache: u64,
    /// Bytes the prefix cache may hold (`prefix_cache_mb`).
    pub prefix_cache: u64,
    /// Runtime overhead bytes.
    pub overhead: u64,
    /// The sum.
    pub total: u64,
    /// Whether `total` fits the budget.
    pub fits: bool,
    /// Budget minus total (negative: how much is missing); absent without a budget.
    pub headroom: Option<i64>,
    /// Context lengths per sequence that fit at this parallelism.
    pub contexts_that_fit: Vec<u64>,
    /// The longest context the model was trained for, when known.
    pub trained_context: Option<u64>,
    /// Layer and head numbers were assumed from a reference model of similar size.
    pub assumed_architecture: bool,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct FitReport {
    /// The budget in bytes; absent means no limit.
    pub budget_bytes: Option<u64>,
    /// Where the budget came from.
    pub budget_source: String,
    /// The device the estimates are for.
    pub device: Device,
    /// One row per model.
    pub models: Vec<FitRow>,
}

/// Runs `porten fit`.
pub fn fit(config: &Config, args: &FitArgs) -> anyhow::Result<()> {
    if args.tiers {
        return crate::tiers::print(config, args);
    }
    let report = report(config, args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Computes the answer without printing it.
pub fn report(config: &Config, args: &FitArgs) -> anyhow::Result<FitReport> {
    let device = Device::of_this_build();
    let (budget, budget_source) = match args.vram_mb {
        Some(mb) => (Some(mb << 20), "--vram-mb".to_string()),
        None => {
            let setup = detect_devices(config, device, false);
            let largest = setup.largest();
            (
                largest.budget_bytes,
                format!("{}: {}", largest.name, largest.source),
            )
        }
    };
    let models: Vec<FitRow> = models_to_size(config, args, device)?
        .iter()
        .map(|(spec, shape, quantization)| {
            row(spec, shape, quantization.clone(), args, device, budget)
        })
        .collect();
    if models.is_empty() {
        bail!(
            "nothing to size: name store models, or describe one with --params 7B --quant q4_k_m"
        );
    }
    Ok(FitReport {
        budget_bytes: budget,
        budget_source,
        device,
        models,
    })
}

/// The models the command names: the hypothetical one `--params` describes, then configured
/// and store models, each with its shape and quantization.
pub(crate) fn models_to_size(
    config: &Config,
    args: &FitArgs,
    device: Device,
) -> anyhow::Result<Vec<(ModelSpec, ModelShape, Option<String>)>> {
    let mut models = Vec::new();
    if let Some(params) = &args.params {
        let parameters = parse_parameter_count(params).map_err(anyhow::Error::msg)?;
        let bits = bits_per_weight(&args.quant).with_context(|| {
            format!(
                "unknown quantization `{}`; known: {KNOWN_QUANTIZATIONS}",
                args.quant
            )
        })?;
        let active = args
            .moe_active
            .as_deref()
            .map(parse_parameter_count)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        if active.is_some_and(|a| a > parameters) {
            bail!("--moe-active cannot exceed --params");
        }
        let shape = hypothetical_shape(parameters, bits, active);
        let spec = ModelSpec::new(params.clone(), "");
        models.push((spec, shape, Some(args.quant.to_uppercase())));
    }
    models.extend(named_models(config, args, device)?);
    Ok(models)
}

/// Configured models and store models named on the command line (all of them when none is
/// named and no hypothetical model is asked about).
fn named_models(
    config: &Config,
    args: &FitArgs,
    device: Device,
) -> anyhow::Result<Vec<(ModelSpec, ModelShape, Option<String>)>> {
    let mut names = args.names.clone();
    if names.is_empty() && args.params.is_none() {
        names = config.models.iter().map(|m| m.id.clone()).collect();
        if names.is_empty() {
            let store = crate::store_cmd::open_store(config)?;
            for summary in store.list()? {
                names.push(summary.manifest.model.to_string());
            }
        }
    }
    let mut store = None;
    let mut found = Vec::new();
    for name in names {
        if let Some(hub) = porten_storage::hub::HubRef::parse(&name) {
            found.push(from_hub_listing(&hub?)?);
            continue;
        }
        let spec = config
            .models
            .iter()
            .find(|m| m.id == name)
            .cloned()
            .unwrap_or_else(|| ModelSpec::new(name.clone(), ""));
        let metadata = if spec.path.as_os_str().is_empty() {
            if store.is_none() {
                store = Some(crate::store_cmd::open_store(config)?);
            }
            let model = porten_storage::ModelRef::parse(&name)?;
            let manifest = store.as_ref().expect("opened above").manifest(&model)?;
            manifest.metadata.clone()
        } else {
            porten_storage::metadata::read_path(&spec.path)
                .with_context(|| format!("model `{name}`"))?
        };
        let shape = shape_of(&metadata, spec.dtype, device);
        found.push((spec, shape, metadata.quantization.clone()));
    }
    Ok(found)
}

/// A Hub model sized from its listing alone, before a byte is pulled: the chosen files' sizes
/// and quantization give the parameters, a reference architecture of that size the KV cache.
fn from_hub_listing(
    hub: &porten_storage::hub::HubRef,
) -> anyhow::Result<(ModelSpec, ModelShape, Option<String>)> {
    use porten_storage::hub::{select, Hub, HubSettings, Selection};
    let client = Hub::open(HubSettings::from_env(|name| std::env::var(name).ok()))?;
    let files = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(client.list(hub))
    })?;
    let selection = select(&files, hub.quant.as_deref())
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", hub.repo))?;
    let (quant, weights) = match &selection {
        Selection::Gguf { quant, files } => (quant.clone(), files.iter().map(|f| f.size).sum()),
        // Safetensors weights are 16-bit floats as published, almost always.
        Selection::Safetensors(files) => (
            "F16".to_string(),
            files
                .iter()
                .filter(|f| f.path.ends_with(".safetensors"))
                .map(|f| f.size)
                .sum::<u64>(),
        ),
    };
    let bits = bits_per_weight(&quant).unwrap_or(16.0);
    let parameters = (weights as f64 * 8.0 / bits) as u64;
    let mut shape = hypothetical_shape(parameters, bits, None);
    shape.weight_bytes = weights;
    let name = hub.model_ref(match selection {
        Selection::Gguf { .. } => Some(quant.as_str()),
        Selection::Safetensors(_) => None,
    })?;
    Ok((ModelSpec::new(name.to_string(), ""), shape, Some(quant)))
}

/// The usual context lengths, up to what `shape` was trained for, whose estimate (`total_at`
/// gives it in bytes for a context) fits `budget` (any, without one), shortest first.
pub(crate) fn contexts_that_fit(
    shape: &ModelShape,
    budget: Option<u64>,
    total_at: impl Fn(u64) -> u64,
) -> Vec<u64> {
    let longest = shape.trained_context.unwrap_or(u64::MAX);
    CONTEXT_STEPS
        .iter()
        .copied()
        .filter(|c| *c <= longest)
        .filter(|c| budget.is_none_or(|b| total_at(*c) <= b))
        .collect()
}

fn row(
    spec: &ModelSpec,
    shape: &ModelShape,
    quantization: Option<String>,
    args: &FitArgs,
    device: Device,
    budget: Option<u64>,
) -> FitRow {
    // A model's own configuration, else serve's defaults (ModelSpec::new).
    let parallel = args.parallel.unwrap_or(spec.max_concurrency as u64);
    let context = args
        .ctx
        .unwrap_or_else(|| context_for(spec.context_length, shape));
    let at = |context| {
        estimate(
            shape,
            &LoadSettings {
                context,
                sequences: parallel,
                device,
                prefix_cache_mb: spec.prefix_cache_mb,
            },
        )
    };
    let e = at(context);
    let contexts_that_fit = contexts_that_fit(shape, budget, |c| at(c).total);
    FitRow {
        name: spec.id.clone(),
        parameters: shape.parameters,
        active_parameters: shape.active_parameters,
        quantization,
        context,
        parallel,
        weights: e.weights,
        kv_cache: e.kv_cache,
        prefix_cache: e.prefix_cache,
        overhead: e.overhead,
        total: e.total,
        fits: budget.is_none_or(|b| e.total <= b),
        headroom: budget.map(|b| b as i64 - e.total as i64),
        contexts_that_fit,
        trained_context: shape.trained_context,
        assumed_architecture: shape.assumed_architecture,
    }
}

fn print_table(report: &FitReport) {
    match report.budget_bytes {
        Some(b) => println!(
            "budget {} on {} ({})",
            human_bytes(b),
            report.device.as_str(),
            report.budget_source
        ),
        None => println!(
            "no budget on {} ({})",
            report.device.as_str(),
            report.budget_source
        ),
    }
    println!(
        "{:<24} {:>8} {:>8} {:>7} {:>3} {:>10} {:>10} {:>10} {:>10} {:>10} {:>4} {:>11}",
        "MODEL",
        "PARAMS",
        "QUANT",
        "CTX",
        "PAR",
        "WEIGHTS",
        "KV CACHE",
        "PREFIX",
        "OVERHEAD",
        "TOTAL",
        "FITS",
        "HEADROOM"
    );
    for m in &report.models {
        let headroom = match m.headroom {
            Some(h) if h >= 0 => human_bytes(h as u64),
            Some(h) => format!("-{}", human_bytes(h.unsigned_abs())),
            None => "-".into(),
        };
        println!(
            "{:<24} {:>8} {:>8} {:>7} {:>3} {:>10} {:>10} {:>10} {:>10} {:>10} {:>4} {:>11}",
            m.name,
            short_count(m.parameters),
            m.quantization.as_deref().unwrap_or("?"),
            m.context,
            m.parallel,
            human_bytes(m.weights),
            human_bytes(m.kv_cache),
            human_bytes(m.prefix_cache),
            human_bytes(m.overhead),
            human_bytes(m.total),
            if m.fits { "yes" } else { "no" },
            headroom
        );
        if m.active_parameters < m.parameters {
            println!(
                "    mixture of experts: {} active per token (speed), all {} in memory",
                short_count(m.active_parameters),
                short_count(m.parameters)
            );
        }
        let contexts: Vec<String> = m.contexts_that_fit.iter().map(u64::to_string).collect();
        println!(
            "    contexts that fit x{}: {}{}",
            m.parallel,
            if contexts.is_empty() {
                "none".into()
            } else {
                contexts.join(" ")
            },
            m.trained_context
                .map(|t| format!(" (trained for {t})"))
                .unwrap_or_default()
        );
        if m.assumed_architecture {
            println!("    layers and KV heads assumed from a typical model of this size");
        }
    }
}

pub(crate) fn short_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.0}M", n as f64 / 1e6),
        n => n.to_string(),
    }
}
