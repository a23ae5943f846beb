//! Sampling parameters shared by every dialect: validated here, once, with the name of the
//! offending field in every error.

use std::collections::HashMap;

use mistralrs::{ModelGenerationDefaults, SamplingParams, StopTokens};

use crate::{Error, Result};

/// Most choices one request may ask for.
const MAX_N: u32 = 16;
/// Most stop sequences one request may give.
const MAX_STOP: usize = 16;

/// The sampling fields of a request, before validation.
#[derive(Debug, Clone, Default)]
pub struct SamplingRequest {
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `top_k`.
    pub top_k: Option<usize>,
    /// `min_p`.
    pub min_p: Option<f64>,
    /// The effective token limit and the field it came from.
    pub max_tokens: Option<(u64, &'static str)>,
    /// Stop sequences, and the field they came from (`stop`, `stop_sequences`).
    pub stop: Option<(Vec<String>, &'static str)>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f32>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f32>,
    /// `repetition_penalty`.
    pub repetition_penalty: Option<f32>,
    /// `logit_bias`.
    pub logit_bias: Option<HashMap<String, f32>>,
    /// `n`.
    pub n: Option<u32>,
    /// `top_logprobs`, when log probabilities were asked for.
    pub top_logprobs: Option<u32>,
}

fn check_range<T: PartialOrd + Copy + std::fmt::Display>(
    param: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<()> {
    match value {
        Some(v) if !(v >= min && v <= max) => Err(Error::invalid(
            param,
            format!("`{param}` must be between {min} and {max}; got {v}"),
        )),
        _ => Ok(()),
    }
}

impl SamplingRequest {
    /// Validates the fields and builds mistral.rs parameters. The request's values win over the
    /// model's `generation_config.json`; where neither says, OpenAI's defaults apply.
    pub fn into_params(self, defaults: Option<&ModelGenerationDefaults>) -> Result<SamplingParams> {
        check_range("temperature", self.temperature, 0.0, 2.0)?;
        check_range("top_p", self.top_p, f64::MIN_POSITIVE, 1.0)?;
        check_range("min_p", self.min_p, 0.0, 1.0)?;
        check_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        check_range(
            "repetition_penalty",
            self.repetition_penalty,
            f32::MIN_POSITIVE,
            10.0,
        )?;
        check_range("n", self.n, 1, MAX_N)?;
        check_range("top_logprobs", self.top_logprobs, 0, 20)?;
        if let Some((max, field)) = self.max_tokens {
            if max == 0 {
                return Err(Error::invalid(
                    field,
                    format!("`{field}` must be at least 1"),
                ));
            }
        }
        let stop = match self.stop {
            Some((v, field)) if v.len() > MAX_STOP => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "`{field}` may hold at most {MAX_STOP} sequences; got {}",
                        v.len()
                    ),
                ))
            }
            Some((v, field)) if v.iter().any(String::is_empty) => {
                return Err(Error::invalid(
                    field,
                    format!("`{field}` sequences must not be empty"),
                ))
            }
            Some((v, _)) if !v.is_empty() => Some(StopTokens::Seqs(v)),
            _ => None,
        };
        let logits_bias = self.logit_bias.map(parse_logit_bias).transpose()?;

        let mut params = SamplingParams::neutral();
        if let Some(defaults) = defaults {
            params.apply_model_defaults(defaults);
        }
        let model_chose_sampling = params.temperature.is_some() || params.top_k == Some(1);
        if let Some(t) = self.temperature {
            params.temperature = Some(t);
            if params.top_k == Some(1) && t > 0.0 {
                params.top_k = None;
            }
        } else if !model_chose_sampling {
            params.temperature = Some(1.0);
        }
        if self.top_p.is_some() {
            params.top_p = self.top_p;
        }
        if self.top_k.is_some() {
            params.top_k = self.top_k.filter(|k| *k > 0);
        }
        if self.min_p.is_some() {
            params.min_p = self.min_p;
        }
        if let Some((max, _)) = self.max_tokens {
            params.max_len = Some(usize::try_from(max).unwrap_or(usize::MAX));
        }
        params.presence_penalty = self.presence_penalty.or(params.presence_penalty);
        params.frequency_penalty = self.frequency_penalty.or(params.frequency_penalty);
        params.repetition_penalty = self.repetition_penalty.or(params.repetition_penalty);
        params.stop_toks = stop;
        params.logits_bias = logits_bias;
        params.n_choices = self.n.unwrap_or(1) as usize;
        params.top_n_logprobs = self.top_logprobs.unwrap_or(0) as usize;
        Ok(params)
    }
}

fn parse_logit_bias(bias: HashMap<String, f32>) -> Result<HashMap<u32, f32>> {
    bias.into_iter()
        .map(|(token, value)| {
            let id: u32 = token.parse().map_err(|_| {
                Error::invalid(
                    "logit_bias",
                    format!("`logit_bias` keys must be token ids; got `{token}`"),
                )
            })?;
            if !(-100.0..=100.0).contains(&value) {
                return Err(Error::invalid(
                    "logit_bias",
                    format!("`logit_bias` values must be between -100 and 100; got {value}"),
                ));
            }
            Ok((id, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_temperature_names_the_field() {
        let err = SamplingRequest {
            temperature: Some(3.5),
            ..Default::default()
        }
        .into_params(None)
        .unwrap_err();
        match err {
            Error::InvalidRequest { param, message } => {
                assert_eq!(param.as_deref(), Some("temperature"));
                assert!(message.contains("3.5"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn openai_default_temperature_applies_when_nobody_chose() {
        let params = SamplingRequest::default().into_params(None).unwrap();
        assert_eq!(params.temperature, Some(1.0));
        assert_eq!(params.n_choices, 1);
    }

    #[test]
    fn model_greedy_default_is_kept_until_the_request_asks_for_temperature() {
        let greedy = ModelGenerationDefaults {
            do_sample: Some(false),
            ..Default::default()
        };
        let params = SamplingRequest::default()
            .into_params(Some(&greedy))
            .unwrap();
        assert_eq!((params.temperature, params.top_k), (None, Some(1)));
        let params = SamplingRequest {
            temperature: Some(0.7),
            ..Default::default()
        }
        .into_params(Some(&greedy))
        .unwrap();
        assert_eq!((params.temperature, params.top_k), (Some(0.7), None));
    }

    #[test]
    fn logit_bias_keys_must_be_token_ids() {
        let bias = HashMap::from([("hello".to_string(), 1.0)]);
        let err = SamplingRequest {
            logit_bias: Some(bias),
            ..Default::default()
        }
        .into_params(None)
        .unwrap_err();
        assert!(err.to_string().contains("token ids"), "{err}");
        let bias = HashMap::from([("42".to_string(), -100.0)]);
        let params = SamplingRequest {
            logit_bias: Some(bias),
            ..Default::default()
        }
        .into_params(None)
        .unwrap();
        assert_eq!(params.logits_bias, Some(HashMap::from([(42, -100.0)])));
    }

    #[test]
    fn zero_max_tokens_is_rejected_under_its_own_name() {
        let err = SamplingRequest {
            max_tokens: Some((0, "max_completion_tokens")),
            ..Default::default()
        }
        .into_params(None)
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidRequest { param: Some(ref p), .. } if p == "max_completion_tokens")
        );
    }

    #[test]
    fn stop_strings_become_stop_sequences() {
        let params = SamplingRequest {
            stop: Some((vec!["\n\n".into()], "stop")),
            ..Default::default()
        }
        .into_params(None)
        .unwrap();
        assert!(matches!(params.stop_toks, Some(StopTokens::Seqs(ref s)) if s == &["\n\n"]));
    }
}
