//! `POST /v1/embeddings`: one vector per input, as floats or base64.

use base64::Engine as _;
use futures::future::try_join_all;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mistralrs::RequestMessage;

use super::wire::{
    Embedding, EmbeddingInput, EmbeddingList, EmbeddingRequest, EmbeddingUsage, EmbeddingVector,
    EncodingFormat,
};
use crate::dialects::check_embedding_inputs;
use crate::engine::ModelKind;
use crate::generation::{admit, require_kind};
use crate::http::respond::{json, Body};
use crate::http::{read_json, ServerState};
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// Serves one embeddings request.
pub async fn embeddings(
    state: &ServerState,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: EmbeddingRequest = read_json(req, &state.config).await?;
    let inputs: Vec<RequestMessage> = match request.input {
        EmbeddingInput::Text(t) => vec![text_input(t)],
        EmbeddingInput::Texts(ts) => ts.into_iter().map(text_input).collect(),
        EmbeddingInput::Tokens(ids) => vec![RequestMessage::EmbeddingTokens { prompt: ids }],
        EmbeddingInput::TokenLists(lists) => lists
            .into_iter()
            .map(|prompt| RequestMessage::EmbeddingTokens { prompt })
            .collect(),
    };
    let empty: Vec<bool> = inputs
        .iter()
        .map(|i| match i {
            RequestMessage::Embedding { prompt } => prompt.is_empty(),
            RequestMessage::EmbeddingTokens { prompt } => prompt.is_empty(),
            _ => false,
        })
        .collect();
    check_embedding_inputs(&empty, request.dimensions)?;
    let model = admit(
        &state.models,
        exchange,
        "embeddings",
        &request.model,
        request.keep_alive,
    )
    .await?;
    require_kind(&model, ModelKind::Embedding, &request.model)?;
    let vectors = try_join_all(inputs.into_iter().map(|input| model.embed(input))).await?;
    let format = request.encoding_format.unwrap_or_default();
    let mut usage = EmbeddingUsage::default();
    let mut data = Vec::with_capacity(vectors.len());
    for (index, (vector, tokens)) in vectors.into_iter().enumerate() {
        if let Some(d) = request.dimensions.filter(|d| *d != vector.len()) {
            return Err(Error::invalid(
                "dimensions",
                format!(
                    "`{}` makes {}-dimensional vectors and cannot shorten them; got dimensions = {d}",
                    request.model,
                    vector.len()
                ),
            ));
        }
        usage.prompt_tokens += tokens;
        usage.total_tokens += tokens;
        data.push(Embedding {
            object: "embedding",
            index,
            embedding: encode(vector, format),
        });
    }
    exchange.usage(Some(usage.prompt_tokens), 0);
    Ok(json(
        StatusCode::OK,
        &EmbeddingList {
            object: "list",
            data,
            model: request.model,
            usage,
        },
    ))
}

fn text_input(prompt: String) -> RequestMessage {
    RequestMessage::Embedding { prompt }
}

fn encode(vector: Vec<f32>, format: EncodingFormat) -> EmbeddingVector {
    match format {
        EncodingFormat::Float => EmbeddingVector::Float(vector),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
            EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        let EmbeddingVector::Base64(b) = encode(vec![1.0, -2.5], EncodingFormat::Base64) else {
            panic!("not base64")
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        let back: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, vec![1.0, -2.5]);
    }
}
