//! `logit_bias` applied to every sampled token. mistral.rs 0.8 takes a `logits_bias` in its
//! sampling parameters but never reads it, so a bias passed there changes nothing (a token
//! "forbidden" at -100 is still sampled); a logits processor is the engine's hook that runs
//! before every sampling step, greedy or not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mistralrs::{CustomLogitsProcessor, Tensor};

/// Adds each token's bias to its logit. The dense bias vector is made once per vocabulary size,
/// device and type (the first step), not per token.
pub(crate) struct LogitBias {
    bias: Vec<(u32, f32)>,
    dense: Mutex<Option<Tensor>>,
}

impl LogitBias {
    /// The processor for `bias` (token id to bias), to hand to the engine with a request.
    pub fn processor(bias: HashMap<u32, f32>) -> Arc<dyn CustomLogitsProcessor> {
        Arc::new(Self {
            bias: bias.into_iter().collect(),
            dense: Mutex::new(None),
        })
    }

    fn dense_for(&self, logits: &Tensor) -> mistralrs::Result<Tensor> {
        let vocab = logits.dim(logits.rank().saturating_sub(1))?;
        let mut dense = self.dense.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(made) = dense.as_ref() {
            if made.dim(0)? == vocab
                && made.dtype() == logits.dtype()
                && made.device().same_device(logits.device())
            {
                return Ok(made.clone());
            }
        }
        let mut values = vec![0f32; vocab];
        // Ids past the vocabulary bias nothing, as in OpenAI's API.
        for &(id, bias) in &self.bias {
            if let Some(value) = values.get_mut(id as usize) {
                *value += bias;
            }
        }
        let made = Tensor::from_vec(values, vocab, logits.device())?.to_dtype(logits.dtype())?;
        *dense = Some(made.clone());
        Ok(made)
    }
}

impl CustomLogitsProcessor for LogitBias {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        logits.broadcast_add(&self.dense_for(logits)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mistralrs::Device;

    #[test]
    fn each_token_gets_its_bias_and_the_rest_are_untouched() {
        let processor = LogitBias::processor(HashMap::from([(1, -100.0), (3, 5.0), (99, 1.0)]));
        let logits = Tensor::new(&[0.5f32, 0.5, 0.5, 0.5], &Device::Cpu).unwrap();
        for _ in 0..2 {
            let biased: Vec<f32> = processor.apply(&logits, &[]).unwrap().to_vec1().unwrap();
            assert_eq!(biased, [0.5, -99.5, 0.5, 5.5]);
        }
    }
}
