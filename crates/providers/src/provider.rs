//! The [`Provider`] trait.

use async_trait::async_trait;

use crate::error::ProviderError;
use crate::types::{Capabilities, GenerationRequest, GenerationResponse, Tier};

/// An LLM backend. Object-safe: routers hold `Arc<dyn Provider>` chains of
/// different backends.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// A stable id ("openai", "local-llama", ...).
    fn id(&self) -> &str;

    /// Online or local.
    fn tier(&self) -> Tier;

    /// What it serves.
    fn capabilities(&self) -> &Capabilities;

    /// Generates an answer.
    ///
    /// # Errors
    /// A classified [`ProviderError`].
    async fn generate(
        &self,
        request: &GenerationRequest,
    ) -> Result<GenerationResponse, ProviderError>;
}
