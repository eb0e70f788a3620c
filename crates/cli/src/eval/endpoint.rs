//! `--provider openai-compatible --base-url URL --model NAME`: one
//! server named on the command line instead of a `--providers` file.

#[cfg(feature = "http")]
use std::sync::Arc;

#[cfg(feature = "http")]
use tuneloop::providers::Tier;

use tuneloop_core::ParameterSet;

use super::Providers;
use crate::error::{CliError, CliResult};

/// One OpenAI-compatible server named on the command line, instead of a
/// `--providers` file: `--provider openai-compatible --base-url URL
/// --model NAME` (feature `http`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Endpoint {
    /// `openai-compatible` (with --base-url and --model): one server
    /// instead of a --providers file; its id is `openai-compatible`.
    #[arg(long, value_parser = ["openai-compatible"], requires_all = ["base_url", "model"], conflicts_with = "providers")]
    pub(crate) provider: Option<String>,
    /// The server's base URL, up to the API version
    /// (`http://127.0.0.1:8080/v1`).
    #[arg(long, requires = "provider")]
    pub(crate) base_url: Option<String>,
    /// The model it serves; the default parameter sets call it.
    #[arg(long, requires = "provider")]
    pub(crate) model: Option<String>,
    /// The environment variable holding its API key (default: no key).
    #[arg(long, requires = "provider")]
    pub(crate) api_key_env: Option<String>,
}

/// The id of the provider an [`Endpoint`] names.
pub(super) const ENDPOINT_ID: &str = "openai-compatible";

impl Endpoint {
    /// The provider and model, when one was named.
    pub(super) fn providers(&self) -> CliResult<Option<(Providers, String)>> {
        let (Some(url), Some(model)) = (&self.base_url, &self.model) else {
            return Ok(None);
        };
        #[cfg(feature = "http")]
        {
            let p = tuneloop::providers::OpenAiCompatible::new(tuneloop::providers::OpenAiConfig {
                id: ENDPOINT_ID.into(),
                tier: Tier::Local,
                base_url: url.clone(),
                api_key_env: self.api_key_env.clone(),
                models: vec![model.clone()],
                read_timeout: std::time::Duration::from_secs(300),
                ..tuneloop::providers::OpenAiConfig::default()
            })
            .map_err(|e| CliError::bad(format!("--base-url {url}: {e}")))?;
            Ok(Some((
                Providers {
                    list: vec![Arc::new(p)],
                    simulated: false,
                },
                model.clone(),
            )))
        }
        #[cfg(not(feature = "http"))]
        {
            let _ = (url, model, ENDPOINT_ID);
            Err(CliError::bad(
                "--provider openai-compatible: this build has no HTTP providers: build with --features http",
            ))
        }
    }
}

/// The default parameter sets on a named server's model: temperatures 0.2
/// and 0.7, 256 tokens (the suites' answers are short).
pub(super) fn endpoint_parameters(model: &str) -> CliResult<Vec<ParameterSet>> {
    [0.2, 0.7]
        .into_iter()
        .map(|t| {
            Ok(ParameterSet::builder(model)
                .temperature(t)
                .max_tokens(256)
                .build()?)
        })
        .collect()
}
