//! [`OpenAiCompatible`]: the chat-completions API as served by OpenAI,
//! vLLM, Ollama and the llama.cpp server (feature `http`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use tuneloop_core::SamplingExtras;

use crate::error::{ProviderError, RouterError};
use crate::provider::Provider;
use crate::types::{
    Capabilities, FinishReason, GenerationRequest, GenerationResponse, Role, Tier, Usage,
};

/// Configuration of an [`OpenAiCompatible`] provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The provider's id.
    pub id: String,
    /// Online or local.
    pub tier: Tier,
    /// Base URL, up to and including the API version (e.g.
    /// `https://api.openai.com/v1`, `http://localhost:11434/v1`).
    pub base_url: String,
    /// Name of the environment variable holding the API key (`None`: no
    /// key, as for local servers). The key is read once, at construction,
    /// and never appears in logs, errors or `Debug` output.
    pub api_key_env: Option<String>,
    /// Models served (empty: any).
    pub models: Vec<String>,
    /// Context window, in tokens.
    pub context_window: u64,
    /// Largest response body accepted, in bytes (default 4 MiB).
    pub max_response_bytes: usize,
    /// Connection timeout (the router's deadline bounds the whole call).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (default 60 s), so a
    /// stalled server fails the call even without a router's deadline.
    pub read_timeout: Duration,
    /// Longest a whole call may take, from connecting to the last byte of
    /// the answer (default 300 s): a server that sends a byte a second
    /// never trips `read_timeout`, and is cut here (a timeout error).
    pub call_timeout: Duration,
    /// Ask for the answer as a stream of server-sent events (default
    /// off): the response then carries the time to the first token, and a
    /// deadline that passes mid-answer drops the stream and closes the
    /// connection.
    pub stream: bool,
    /// Server-specific sampling settings sent with every request, for
    /// those an arm leaves unset (default none: the server's own).
    pub extras: SamplingExtras,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            id: "openai".into(),
            tier: Tier::Online,
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: Some("OPENAI_API_KEY".into()),
            models: Vec::new(),
            context_window: 128_000,
            max_response_bytes: 4 << 20,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(300),
            stream: false,
            extras: SamplingExtras::default(),
        }
    }
}

/// An API key that never prints.
#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A provider speaking the OpenAI chat-completions protocol over HTTP(S).
///
/// Every field of the request's parameters is sent (`model`, `messages`,
/// `max_tokens`, `temperature`, `top_p`, both penalties, `stop`, `seed`),
/// and the [`SamplingExtras`] of the arm, or else of the configuration, as
/// `top_k`, `min_p` and `repeat_penalty`. With
/// [`OpenAiConfig::stream`] the answer comes as server-sent events and the
/// response records the time to its first token.
///
/// Responses are classified: 429 → rate limited (honouring
/// `Retry-After` in seconds), 401/403 → authentication, 400 mentioning the
/// context length → context length, other 4xx → permanent, a 500 whose
/// body reports a validation error (llama.cpp's server answers invalid
/// parameters so) → permanent, other 5xx and malformed bodies → transient,
/// bodies over the size limit → permanent, network timeouts → timeout.
pub struct OpenAiCompatible {
    config: OpenAiConfig,
    key: Option<Secret>,
    capabilities: Capabilities,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("id", &self.config.id)
            .field("base_url", &self.config.base_url)
            .field("api_key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// A provider as configured; reads the API key from its environment
    /// variable.
    ///
    /// # Errors
    /// [`RouterError::Config`] when the key's variable is unset or the HTTP
    /// client cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self, RouterError> {
        let key = match &config.api_key_env {
            Some(var) => Some(Secret(std::env::var(var).map_err(|_| {
                RouterError::Config(format!(
                    "provider `{}`: environment variable {var} is not set",
                    config.id
                ))
            })?)),
            None => None,
        };
        // No redirects: a 3xx would re-send the prompt (and the key) to
        // wherever the server points; it is an error instead.
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.call_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RouterError::Config(format!("provider `{}`: {e}", config.id)))?;
        let capabilities = Capabilities {
            models: config.models.clone(),
            context_window: config.context_window,
        };
        Ok(OpenAiCompatible {
            config,
            key,
            capabilities,
            client,
        })
    }

    /// `text` without the configured key or any bearer token: a server's
    /// error body may echo the request's headers.
    fn redact(&self, text: &str) -> String {
        let mut out = match &self.key {
            Some(Secret(k)) if !k.is_empty() => text.replace(k.as_str(), "<redacted>"),
            _ => text.to_owned(),
        };
        let mut from = 0;
        while let Some(i) = out[from..].to_ascii_lowercase().find("bearer ") {
            let start = from + i + "bearer ".len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .map_or(out.len(), |j| start + j);
            out.replace_range(start..end, "<redacted>");
            from = start + "<redacted>".len();
        }
        out
    }

    fn body(&self, request: &GenerationRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": m.content })
            })
            .collect();
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "frequency_penalty": request.frequency_penalty,
            "presence_penalty": request.presence_penalty,
        });
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        let extras = request.extras.or(&self.config.extras);
        if let Some(k) = extras.top_k {
            body["top_k"] = json!(k);
        }
        if let Some(m) = extras.min_p {
            body["min_p"] = json!(m);
        }
        if let Some(r) = extras.repeat_penalty {
            body["repeat_penalty"] = json!(r);
        }
        if self.config.stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({ "include_usage": true });
        }
        body
    }

    fn parse(
        &self,
        bytes: &[u8],
        request: &GenerationRequest,
        latency: Duration,
    ) -> Result<GenerationResponse, ProviderError> {
        let provider = self.config.id.clone();
        let malformed = |what: &str| ProviderError::Transient {
            provider: provider.clone(),
            message: format!("malformed response: {what}"),
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e.to_string()))?;
        let choice = v
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| malformed("no choices"))?;
        let text = choice
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no message content"))?
            .to_owned();
        let finish_reason = finish_reason(choice).unwrap_or(FinishReason::Other);
        Ok(GenerationResponse {
            text,
            usage: usage(&v).unwrap_or_default(),
            latency,
            time_to_first_token: None,
            finish_reason,
            provider: self.config.id.clone(),
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&request.model)
                .to_owned(),
        })
    }
}

/// Why generation stopped, from a choice's `finish_reason`.
fn finish_reason(choice: &Value) -> Option<FinishReason> {
    Some(match choice.get("finish_reason")?.as_str()? {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    })
}

/// The `usage` object of a response or of a stream's last chunk.
fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    let count = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    })
}

/// Whether a 500's body reports invalid parameters rather than a fault:
/// llama.cpp's server (llama-cpp-python) answers a request that fails
/// validation with a 500 naming the validation error; retrying it cannot
/// help.
fn is_validation_error(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("validation error") || b.contains("validationerror") || b.contains("input should be")
}

/// Why a stream ended early.
enum StreamFault {
    Network(reqwest::Error),
    TooLarge,
}

impl OpenAiCompatible {
    /// A network failure, described without the URL's query or any header.
    fn network_error(&self, e: reqwest::Error, start: Instant) -> ProviderError {
        if e.is_timeout() {
            ProviderError::Timeout {
                provider: self.config.id.clone(),
                after: start.elapsed(),
            }
        } else {
            ProviderError::Transient {
                provider: self.config.id.clone(),
                message: format!("request failed: {}", e.without_url()),
            }
        }
    }

    fn too_large(&self) -> ProviderError {
        ProviderError::Permanent {
            provider: self.config.id.clone(),
            message: format!(
                "response larger than {} bytes",
                self.config.max_response_bytes
            ),
        }
    }

    /// Reads a streamed answer: `data:` events of chat-completion chunks
    /// up to `[DONE]`. The text is the chunks' `delta.content` in order;
    /// the time to the first token is when the first non-empty content
    /// arrived; usage comes from the last chunk when the server sends it
    /// (`stream_options.include_usage`), else the completion tokens are
    /// the number of content chunks (one token each on llama.cpp and
    /// vLLM) and the prompt tokens are unknown (0). A stream without a
    /// finish reason was cut short: a transient error. Dropping the future (a
    /// deadline) drops the stream and closes the connection.
    async fn read_stream(
        &self,
        response: reqwest::Response,
        request: &GenerationRequest,
        start: Instant,
    ) -> Result<GenerationResponse, ProviderError> {
        let provider = || self.config.id.clone();
        let malformed = |what: String| ProviderError::Transient {
            provider: provider(),
            message: format!("malformed stream: {what}"),
        };
        let limit = self.config.max_response_bytes;
        let mut received = 0usize;
        // The byte count is checked before the event parser buffers a
        // line, so an endless line cannot outgrow the limit.
        let mut events = response
            .bytes_stream()
            .map(move |chunk| {
                let chunk = chunk.map_err(StreamFault::Network)?;
                received = received.saturating_add(chunk.len());
                if received > limit {
                    Err(StreamFault::TooLarge)
                } else {
                    Ok(chunk)
                }
            })
            .eventsource();
        let mut text = String::new();
        let mut first_token = None;
        let mut finish = None;
        let mut reported = None;
        let mut content_chunks = 0u64;
        let mut model = None;
        let mut done = false;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| match e {
                eventsource_stream::EventStreamError::Transport(StreamFault::Network(e)) => {
                    self.network_error(e, start)
                }
                eventsource_stream::EventStreamError::Transport(StreamFault::TooLarge) => {
                    self.too_large()
                }
                eventsource_stream::EventStreamError::Utf8(e) => malformed(e.to_string()),
                eventsource_stream::EventStreamError::Parser(e) => malformed(e.to_string()),
            })?;
            let data = event.data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(data).map_err(|e| malformed(e.to_string()))?;
            if let Some(err) = v.get("error") {
                let message = self.redact(&err.to_string());
                return Err(if is_validation_error(&message) {
                    ProviderError::Permanent {
                        provider: provider(),
                        message,
                    }
                } else {
                    ProviderError::Transient {
                        provider: provider(),
                        message,
                    }
                });
            }
            if model.is_none() {
                model = v.get("model").and_then(Value::as_str).map(str::to_owned);
            }
            if let Some(u) = usage(&v) {
                reported = Some(u);
            }
            let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
                continue;
            };
            if let Some(piece) = choice
                .get("delta")
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
                && !piece.is_empty()
            {
                if first_token.is_none() {
                    first_token = Some(start.elapsed());
                }
                content_chunks += 1;
                text.push_str(piece);
            }
            if let Some(f) = finish_reason(choice) {
                finish = Some(f);
            }
        }
        if !done {
            return Err(malformed("the stream ended before [DONE]".into()));
        }
        // A complete answer says why it ended; llama.cpp's server (with its
        // default `interrupt_requests`) ends a stream it cuts short for a
        // newer request with a bare [DONE].
        let Some(finish) = finish else {
            return Err(ProviderError::Transient {
                provider: provider(),
                message: "the stream ended without a finish reason (interrupted by the server)"
                    .into(),
            });
        };
        Ok(GenerationResponse {
            text,
            usage: reported.unwrap_or(Usage {
                prompt_tokens: 0,
                completion_tokens: content_chunks,
            }),
            latency: start.elapsed(),
            time_to_first_token: first_token,
            finish_reason: finish,
            provider: provider(),
            model: model.unwrap_or_else(|| request.model.clone()),
        })
    }
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn id(&self) -> &str {
        &self.config.id
    }
    fn tier(&self) -> Tier {
        self.config.tier
    }
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn generate(
        &self,
        request: &GenerationRequest,
    ) -> Result<GenerationResponse, ProviderError> {
        let provider = self.config.id.clone();
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut call = self.client.post(&url).json(&self.body(request));
        if let Some(key) = &self.key {
            call = call.bearer_auth(&key.0);
        }
        let start = Instant::now();
        let mut response = call
            .send()
            .await
            .map_err(|e| self.network_error(e, start))?;
        let status = response.status();
        if status.is_success() && self.config.stream {
            return self.read_stream(response, request, start).await;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.network_error(e, start))?
        {
            if body.len() + chunk.len() > self.config.max_response_bytes {
                return Err(self.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let latency = start.elapsed();
        let snippet = || self.redact(&String::from_utf8_lossy(&body[..body.len().min(200)]));
        match status.as_u16() {
            200..=299 => self.parse(&body, request, latency),
            429 => Err(ProviderError::RateLimited {
                provider,
                retry_after,
            }),
            401 | 403 => Err(ProviderError::Authentication { provider }),
            300..=399 => Err(ProviderError::Permanent {
                provider,
                message: format!("HTTP {status}: redirects are not followed"),
            }),
            400 | 413
                if {
                    let s = snippet().to_lowercase();
                    s.contains("context_length")
                        || s.contains("context length")
                        || s.contains("maximum context")
                } =>
            {
                Err(ProviderError::ContextLength {
                    provider,
                    message: snippet(),
                })
            }
            400..=499 => Err(ProviderError::Permanent {
                provider,
                message: format!("HTTP {status}: {}", snippet()),
            }),
            500 if is_validation_error(&String::from_utf8_lossy(&body)) => {
                Err(ProviderError::Permanent {
                    provider,
                    message: format!("HTTP {status}, a validation error: {}", snippet()),
                })
            }
            _ => Err(ProviderError::Transient {
                provider,
                message: format!("HTTP {status}"),
            }),
        }
    }
}
