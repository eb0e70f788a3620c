//! [async-openai](https://docs.rs/async-openai)'s chat completions
//! (feature `async-openai`, on the crate's `chat-completion-types`: the
//! types only; the client is the caller's, with its own features).
//!
//! ```
//! use async_openai::types::chat::{
//!     ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionResponse,
//! };
//! use tuneloop_adapters::async_openai::{apply, outcome};
//! use tuneloop::core::{FinishReason, ParameterSet};
//!
//! let params = ParameterSet::builder("gpt-4o-mini").temperature(0.2).max_tokens(256).build()?;
//! let mut request = CreateChatCompletionRequest {
//!     messages: vec![ChatCompletionRequestUserMessage::from("Capital of Peru?").into()],
//!     ..Default::default()
//! };
//! apply(&params, &mut request);
//! assert_eq!((request.model.as_str(), request.temperature, request.max_completion_tokens),
//!            ("gpt-4o-mini", Some(0.2), Some(256)));
//!
//! // ... let response = client.chat().create(request).await?; ...
//! # let response: CreateChatCompletionResponse = serde_json::from_str(r#"{"id": "c", "object": "chat.completion",
//! #   "created": 0, "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "length",
//! #   "message": {"role": "assistant", "content": "Lima"}}],
//! #   "usage": {"prompt_tokens": 12, "completion_tokens": 256, "total_tokens": 268}}"#)?;
//! let o = outcome(&response, std::time::Duration::from_millis(640), 1.0);
//! assert_eq!((o.prompt_tokens, o.completion_tokens, o.latency_ms), (12, 256, 640.0));
//! assert_eq!(o.finish_reason, Some(FinishReason::Length));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason as OpenAiFinish,
    StopConfiguration,
};
use tuneloop_core::{FinishReason, ParameterSet, TaskOutcome};

/// Sets every sampling field of `request` from `params`: `model`,
/// `temperature`, `top_p`, the token limit, `frequency_penalty`,
/// `presence_penalty`, `seed` (when set) and `stop` (when not empty).
/// Messages and everything else stay as they are.
///
/// The token limit goes in both fields servers read: `max_completion_tokens`
/// (OpenAI's) and `max_tokens` (deprecated by OpenAI, the only one
/// llama.cpp's server reads: with `max_completion_tokens` alone, an
/// 8-token arm got 99 tokens back). OpenAI's reasoning models refuse
/// `max_tokens`: for them, set `request.max_tokens = None` after this
/// call. An answer longer than the arm's limit is caught when it is
/// recorded anyway (`Resolution::Misapplied`: not learned).
///
/// The server-specific [`SamplingExtras`](tuneloop_core::SamplingExtras)
/// (`top_k`, `min_p`, `repeat_penalty`) have no field in async-openai's
/// request type: send them with its `create_byot` and a request of your
/// own, or use the `genai` adapter or tuneloop's provider, which send them.
///
pub fn apply(params: &ParameterSet, request: &mut CreateChatCompletionRequest) {
    request.model = params.model().to_owned();
    // The ranges are checked by ParameterSet; f32 holds them to 7 digits.
    request.temperature = Some(params.temperature() as f32);
    request.top_p = Some(params.top_p() as f32);
    request.max_completion_tokens = Some(params.max_tokens());
    #[allow(deprecated)]
    {
        request.max_tokens = Some(params.max_tokens());
    }
    request.frequency_penalty = Some(params.frequency_penalty() as f32);
    request.presence_penalty = Some(params.presence_penalty() as f32);
    // The API's seed is an i64; the bits of ours, so distinct seeds stay
    // distinct. OpenAI deprecated it; llama.cpp's and vLLM's servers honour it.
    #[allow(deprecated)]
    {
        request.seed = params.seed().map(|s| i64::from_ne_bytes(s.to_ne_bytes()));
    }
    request.stop = match params.stop() {
        [] => None,
        stop => Some(StopConfiguration::StringArray(stop.to_vec())),
    };
}

/// A successful call's outcome: `quality` (the caller's score of the
/// answer, in `[0, 1]`), the measured `latency`, the usage the server
/// reported (0 tokens when it sent none) and the first choice's finish
/// reason.
pub fn outcome(
    response: &CreateChatCompletionResponse,
    latency: Duration,
    quality: f64,
) -> TaskOutcome {
    let (prompt, completion) = response.usage.as_ref().map_or((0, 0), |u| {
        (u64::from(u.prompt_tokens), u64::from(u.completion_tokens))
    });
    let mut o =
        TaskOutcome::success(quality, crate::millis(latency)).with_tokens(prompt, completion);
    if let Some(reason) = response.choices.first().and_then(|c| c.finish_reason) {
        o = o.with_finish_reason(match reason {
            OpenAiFinish::Stop => FinishReason::Stop,
            OpenAiFinish::Length => FinishReason::Length,
            OpenAiFinish::ToolCalls | OpenAiFinish::FunctionCall => FinishReason::ToolCalls,
            OpenAiFinish::ContentFilter => FinishReason::ContentFilter,
        });
    }
    o
}

/// The first choice's text, if any.
pub fn answer(response: &CreateChatCompletionResponse) -> Option<&str> {
    response.choices.first()?.message.content.as_deref()
}
