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
}

/// Reads and prepares the weights (seconds) and starts the engine. The prefix cache stays off:
/// see [`super::load::load_model`].
pub async fn load(load: GgufLoad<'_>) -> anyhow::Result<Model> {
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        load.dir.to_string(),
        vec![load.file.to_string()],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let device = best_device(false)?;
    let pipeline = loader.load_model_from_hf(
        None,
        TokenSource::None,
        &load.dtype,
        &device,
        true,
        DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
        None,
        None,
    )?;
    let scheduler = SchedulerConfig::DefaultScheduler {
        method: DefaultSchedulerMethod::Fixed(load.max_sequences.try_into()?),
    };
    let engine_config = EngineConfig {
        no_prefix_cache: true,
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
