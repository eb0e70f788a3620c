//! [`OpenAiCompatible`]: the chat-completions API as served by OpenAI,
//! vLLM, Ollama and the llama.cpp server (feature `http`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

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
/// Responses are classified: 429 → rate limited (honouring
/// `Retry-After` in seconds), 401/403 → authentication, 400 mentioning the
/// context length → context length, other 4xx → permanent, 5xx and
/// malformed bodies → transient, bodies over the size limit → permanent,
/// network timeouts → timeout.
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

    fn body(request: &GenerationRequest) -> Value {
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
        let finish_reason = match choice.get("finish_reason").and_then(Value::as_str) {
            Some("stop") => FinishReason::Stop,
            Some("length") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        };
        let usage = v.get("usage");
        let count = |k: &str| {
            usage
                .and_then(|u| u.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Ok(GenerationResponse {
            text,
            usage: Usage {
                prompt_tokens: count("prompt_tokens"),
                completion_tokens: count("completion_tokens"),
            },
            latency,
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
        let mut call = self.client.post(&url).json(&Self::body(request));
        if let Some(key) = &self.key {
            call = call.bearer_auth(&key.0);
        }
        let start = Instant::now();
        // Network errors are described without the URL's query or any header.
        let net = |e: reqwest::Error| {
            if e.is_timeout() {
                ProviderError::Timeout {
                    provider: provider.clone(),
                    after: start.elapsed(),
                }
            } else {
                ProviderError::Transient {
                    provider: provider.clone(),
                    message: format!("request failed: {}", e.without_url()),
                }
            }
        };
        let mut response = call.send().await.map_err(net)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(net)? {
            if body.len() + chunk.len() > self.config.max_response_bytes {
                return Err(ProviderError::Permanent {
                    provider,
                    message: format!(
                        "response larger than {} bytes",
                        self.config.max_response_bytes
                    ),
                });
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
            _ => Err(ProviderError::Transient {
                provider,
                message: format!("HTTP {status}"),
            }),
        }
    }
}
