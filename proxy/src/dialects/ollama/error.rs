//! The one place an [`Error`] becomes Ollama's error shape, `{"error": "..."}`, with the
//! statuses Ollama uses (404 for a model it does not have, in its own words), which the
//! `ollama` clients raise as `ResponseError(error, status_code)`.

use http::Response;
use serde::Serialize;

use crate::http::respond::{add_error_headers, client_message, json, status, Body};
use crate::Error;

/// Ollama's error body, as a response or as a stream's last line.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorLine {
    /// What went wrong.
    pub error: String,
}

/// The error body for `error`.
pub fn error_line(error: &Error) -> ErrorLine {
    let error = match error {
        // Ollama's words, which tools match on to offer a pull.
        Error::ModelNotFound(model) => format!("model \"{model}\" not found, try pulling it first"),
        other => client_message(other),
    };
    ErrorLine { error }
}

/// The response for a failed request.
pub fn error_response(error: &Error) -> Response<Body> {
    let mut response = json(status(error), &error_line(error));
    add_error_headers(error, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_model_is_a_404_in_ollama_s_words() {
        let error = Error::ModelNotFound("llama3:8b".into());
        assert_eq!(error_response(&error).status(), 404);
        assert_eq!(
            error_line(&error).error,
            "model \"llama3:8b\" not found, try pulling it first"
        );
    }

    #[test]
    fn bad_requests_and_busy_models_keep_their_statuses() {
        assert_eq!(
            error_response(&Error::invalid("messages", "bad")).status(),
            400
        );
        assert_eq!(
            error_response(&Error::ModelBusy("loaded".into())).status(),
            409
        );
        assert_eq!(error_response(&Error::Unauthorized("no key")).status(), 401);
    }
}
