//! An agent on async-openai with tuneloop choosing its parameters.
//!
//! ```sh
//! cargo run --release --example async_openai_agent -p tuneloop-adapters --features async-openai
//! # against a real OpenAI-compatible server:
//! TUNELOOP_OPENAI_BASE_URL=http://127.0.0.1:8080/v1 TUNELOOP_MODEL=smollm2 \
//!     cargo run --release --example async_openai_agent -p tuneloop-adapters --features async-openai
//! ```
//!
//! Without `TUNELOOP_OPENAI_BASE_URL` a stand-in server on 127.0.0.1
//! answers (`examples/support/stand_in_llm.rs`). The lines between the
//! `tuneloop` markers are all the integration there is.

#[path = "support/stand_in_llm.rs"]
mod stand_in_llm;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{ChatCompletionRequestUserMessage, CreateChatCompletionRequest};
use tuneloop::core::{ArmSet, ErrorClass, TaskFeatures, TaskOutcome};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_adapters::{async_openai::*, timed};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_stand_in, stand_in_url) = stand_in_llm::start().await;
    let base = std::env::var("TUNELOOP_OPENAI_BASE_URL").unwrap_or(stand_in_url);
    let model = std::env::var("TUNELOOP_MODEL").unwrap_or_else(|_| "small".into());
    let rounds: usize = std::env::var("TUNELOOP_ROUNDS").map_or(Ok(400), |r| r.parse())?;
    let client = async_openai::Client::with_config(
        OpenAIConfig::new()
            .with_api_base(base)
            .with_api_key("sk-local"),
    );
    // tuneloop: the choices, and the optimizer.
    let arms = ArmSet::grid()
        .models([model.as_str()])
        .temperatures([0.0, 0.7, 1.2])
        .max_tokens([8, 32])
        .build()?;
    let optimizer = Optimizer::builder()
        .task_type("qa", TaskTypeConfig::new(arms))
        .build()?;
    let mut right = Vec::new();
    for (question, expected) in stand_in_llm::QUESTIONS.iter().cycle().take(rounds) {
        // tuneloop: a decision, applied to the request; its outcome, recorded.
        let decision =
            optimizer.recommend("qa", &TaskFeatures::default(), &RecommendOptions::default())?;
        let mut request = CreateChatCompletionRequest {
            messages: vec![ChatCompletionRequestUserMessage::from(*question).into()],
            ..Default::default()
        };
        apply(decision.params(), &mut request);
        let (response, latency) = timed(client.chat().create(request)).await;
        let outcome = match &response {
            Ok(r) => {
                let quality = f64::from(u8::from(answer(r).is_some_and(|a| a.contains(expected))));
                right.push(quality);
                outcome(r, latency, quality)
            }
            Err(_) => TaskOutcome::failure(ErrorClass::Transient, latency.as_secs_f64() * 1e3),
        };
        decision.record(&outcome)?;
    }
    optimizer.shutdown().await;
    // tuneloop: end.
    println!("{}", stand_in_llm::summary(&right));
    let counters = optimizer.counters();
    println!(
        "outcomes recorded: {}, log dropped: {}",
        counters.outcomes, counters.log_dropped
    );
    Ok(())
}
