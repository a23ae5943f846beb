//! Loading a GGUF file with the activation dtype porten chooses. mistral.rs 0.8.1's
//! `GgufModelBuilder` always asks for its automatic dtype, which is F16 on the CPU, where
//! every norm, rotary embedding and attention step then converts between F16 and F32; this is
//! the same pipeline, built with the dtype passed in.

use mistralrs::core::{
    AddModelConfig, AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting, EngineConfig,
    GGUFLoaderBuilder, GGUFSpecificConfig, SchedulerConfig,
};
use mistralrs::{best_device, Model, ModelDType, TokenSource};

/// How one GGUF model is loaded.
pub struct GgufLoad<'a> {
    /// The file's directory.
    pub dir: &'a str,
    /// The file's name.
    pub file: &'a str,
    /// Sequences the engine runs at once.
    pub max_sequences: usize,
    /// The activation dtype.
    pub dtype: ModelDType,
    /// mistral.rs's own prefix cache. porten serves with it off (see
    /// [`super::load::load_model`]); `benches/prefix_cache.rs` turns it on to measure why.
    pub prefix_cache: bool,
    /// The CUDA device to put the whole model on; `None`: mistral.rs's own choice.
    pub gpu: Option<usize>,
}

/// Reads and prepares the weights (seconds) and starts the engine.
pub async fn load(load: GgufLoad<'_>) -> anyhow::Result<Model> {
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        load.dir.to_string(),
        split_parts(std::path::Path::new(load.dir), load.file)?,
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let (device, mapping) = match load.gpu {
        Some(ordinal) => (
            mistralrs::Device::new_cuda(ordinal)?,
            DeviceMapSetting::dummy(),
        ),
        None => (
            best_device(false)?,
            DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
        ),
    };
    let pipeline = loader.load_model_from_hf(
        None,
        TokenSource::None,
        &load.dtype,
        &device,
        true,
        mapping,
        None,
        None,
    )?;
    let scheduler = SchedulerConfig::DefaultScheduler {
        method: DefaultSchedulerMethod::Fixed(load.max_sequences.try_into()?),
    };
    let engine_config = EngineConfig {
        no_prefix_cache: !load.prefix_cache,
        ..EngineConfig::default()
    };
    let config = AddModelConfig {
        engine_config,
        mcp_client_config: None,
        loader_config: None,
    };
    Ok(
        mistralrs::model_builder_trait::build_model_from_pipeline(pipeline, scheduler, config)
            .await,
    )
}

/// The files of a GGUF model: `file` alone, or, for the first part of a split file
/// (`NAME-00001-of-00003.gguf`, llama.cpp's naming), every part in order. mistral.rs reads
/// the parts as one model (metadata merged, each tensor found in its part).
pub fn split_parts(dir: &std::path::Path, file: &str) -> anyhow::Result<Vec<String>> {
    let Some((base, total, width)) = first_part(file) else {
        return Ok(vec![file.to_string()]);
    };
    let parts: Vec<String> = (1..=total)
        .map(|k| format!("{base}-{k:0width$}-of-{total:0width$}.gguf"))
        .collect();
    if let Some(missing) = parts.iter().find(|p| !dir.join(p).is_file()) {
        anyhow::bail!("{file} is split in {total} parts, but {missing} is not beside it");
    }
    Ok(parts)
}

/// `NAME`, the part count and the digits' width, for `NAME-00001-of-0000N.gguf`.
fn first_part(file: &str) -> Option<(&str, usize, usize)> {
    let stem = file.strip_suffix(".gguf")?;
    let (rest, total) = stem.rsplit_once("-of-")?;
    let (base, index) = rest.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(index) || !digits(total) || index.parse::<usize>().ok()? != 1 {
        return None;
    }
    Some((base, total.parse().ok()?, total.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_part_names_every_part_and_others_stand_alone() {
        let dir = tempfile::tempdir().unwrap();
        for k in 1..=3 {
            std::fs::write(
                dir.path().join(format!("m-Q4_K_M-0000{k}-of-00003.gguf")),
                b"",
            )
            .unwrap();
        }
        let parts = split_parts(dir.path(), "m-Q4_K_M-00001-of-00003.gguf").unwrap();
        assert_eq!(parts[2], "m-Q4_K_M-00003-of-00003.gguf");
        assert_eq!(
            split_parts(dir.path(), "plain.gguf").unwrap(),
            ["plain.gguf"]
        );
        std::fs::remove_file(dir.path().join("m-Q4_K_M-00002-of-00003.gguf")).unwrap();
        let error = split_parts(dir.path(), "m-Q4_K_M-00001-of-00003.gguf").unwrap_err();
        assert!(error.to_string().contains("00002-of-00003"), "{error}");
    }
}
