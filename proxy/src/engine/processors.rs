//! The logits processors porten hands the engine with a request: mistral.rs runs each once
//! before every sampling step of the sequence, greedy or not.
//!
//! - [`LogitBias`]: `logit_bias`. mistral.rs 0.8 takes a `logits_bias` in its sampling
//!   parameters but never reads it, so a bias passed there changes nothing (a token
//!   "forbidden" at -100 is still sampled).
//! - [`SampledTokens`]: how many tokens the sequence has sampled. A stream whose last token
//!   ends inside a UTF-8 character closes without its final chunk (mistral.rs withholds a delta
//!   that is not yet whole text, and the finish reason and usage ride on it), and counting
//!   chunks undercounts tokens; the count says whether the answer ran out of tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// The number of tokens a job's sequence has sampled, readable while and after it runs. Counts
/// only when the job has one sequence (`n` = 1), since the engine shares a request's
/// processors among its choices.
#[derive(Debug, Clone, Default)]
pub struct SampledTokens(Arc<Counter>);

#[derive(Debug, Default)]
struct Counter {
    sampled: AtomicUsize,
    counting: AtomicBool,
}

impl SampledTokens {
    /// The tokens sampled so far; `None` if the job was not counted.
    pub fn count(&self) -> Option<usize> {
        self.0
            .counting
            .load(Ordering::Acquire)
            .then(|| self.0.sampled.load(Ordering::Acquire))
    }

    /// The processor that counts, to hand to the engine with the job.
    pub(crate) fn processor(&self) -> Arc<dyn CustomLogitsProcessor> {
        self.0.counting.store(true, Ordering::Release);
        Arc::new(self.clone())
    }
}

impl CustomLogitsProcessor for SampledTokens {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        self.0.sampled.fetch_add(1, Ordering::AcqRel);
        Ok(logits.clone())
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

    #[test]
    fn a_count_is_known_only_for_a_job_that_counts() {
        let sampled = SampledTokens::default();
        assert_eq!(sampled.count(), None);
        let processor = sampled.processor();
        let logits = Tensor::new(&[0.5f32, 0.25], &Device::Cpu).unwrap();
        for _ in 0..3 {
            let same: Vec<f32> = processor.apply(&logits, &[]).unwrap().to_vec1().unwrap();
            assert_eq!(same, [0.5, 0.25]);
        }
        assert_eq!(sampled.count(), Some(3));
    }
}
