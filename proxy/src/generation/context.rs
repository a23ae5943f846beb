//! The context-length check every generating endpoint makes before the engine takes a job: the
//! prompt is tokenized as the engine will see it (chat template and tools included), a prompt
//! that leaves no room for an answer is refused with its numbers, and an output limit larger
//! than the room left is clamped to it, as Ollama and llama.cpp do. The context is the one the
//! memory estimate sized the KV cache for, so the estimate keeps meaning what it says.

use crate::engine::EngineJob;
use crate::models::Admitted;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// The output limit in force: the request's, or what was left of the context.
    pub max_tokens: usize,
}

/// Counts `job`'s prompt on `model` and fits its output limit into `context` tokens. The
/// count is porten's own work before the engine takes the job, so `exchange` records its time.
/// Then makes room in the engine's prefix cache if its books are full.
pub async fn fit_context(
    model: &Admitted,
    job: &mut EngineJob,
    context: u64,
    exchange: &Exchange,
) -> Result<Fitted> {
    let counting = std::time::Instant::now();
    let prompt_tokens = model
        .count_tokens(&job.message, job.tools.as_deref())
        .await?;
    exchange.prompt_checked(counting.elapsed());
    let fitted = fit(prompt_tokens, job.sampling.max_len, context)?;
    job.sampling.max_len = Some(fitted.max_tokens);
    job.prompt_tokens = prompt_tokens;
    model.make_room_in_prefix_cache().await?;
    Ok(fitted)
}

/// The arithmetic of [`fit_context`]: at least one token must be left for the answer.
pub fn fit(prompt_tokens: usize, requested: Option<usize>, context: u64) -> Result<Fitted> {
    let limit = usize::try_from(context).unwrap_or(usize::MAX);
    if prompt_tokens >= limit {
        return Err(Error::ContextLengthExceeded {
            prompt_tokens,
            max_tokens: requested,
            limit,
        });
    }
    let room = limit - prompt_tokens;
    Ok(Fitted {
        prompt_tokens,
        max_tokens: requested.map_or(room, |asked| asked.min(room)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_limit_past_the_context_is_clamped_to_the_room_left() {
        let fitted = fit(1000, Some(32_000), 4096).unwrap();
        assert_eq!(fitted.max_tokens, 3096);
        assert_eq!(fit(1000, Some(10), 4096).unwrap().max_tokens, 10);
        assert_eq!(fit(1000, None, 4096).unwrap().max_tokens, 3096);
    }

    #[test]
    fn a_prompt_that_leaves_no_room_is_refused_with_its_numbers() {
        let error = fit(4096, Some(16), 4096).unwrap_err();
        let message = error.to_string();
        for number in ["4096 tokens", "16"] {
            assert!(message.contains(number), "{message}");
        }
        assert!(matches!(
            error,
            Error::ContextLengthExceeded {
                prompt_tokens: 4096,
                limit: 4096,
                ..
            }
        ));
        assert_eq!(fit(4095, Some(16), 4096).unwrap().max_tokens, 1);
    }
}
