//! An agent on genai with tuneloop choosing its parameters.
//!
//! ```sh
//! cargo run --release --example genai_agent -p tuneloop-adapters --features genai
//! # against a real OpenAI-compatible server:
//! TUNELOOP_OPENAI_BASE_URL=http://127.0.0.1:8080/v1 TUNELOOP_MODEL=smollm2 \
//!     cargo run --release --example genai_agent -p tuneloop-adapters --features genai
//! ```
//!
//! Without `TUNELOOP_OPENAI_BASE_URL` a stand-in server on 127.0.0.1
//! answers (`examples/support/stand_in_llm.rs`). The lines between the
//! `tuneloop` markers are all the integration there is.

#[path = "support/stand_in_llm.rs"]
mod stand_in_llm;

use genai::adapter::AdapterKind;
use genai::chat::{ChatMessage, ChatRequest};
use genai::resolver::{AuthData, Endpoint};
use genai::{ModelIden, ServiceTarget};
use tuneloop::core::{ArmSet, ErrorClass, TaskFeatures, TaskOutcome};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_adapters::{genai::*, timed};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_stand_in, stand_in_url) = stand_in_llm::start().await;
    let base = std::env::var("TUNELOOP_OPENAI_BASE_URL").unwrap_or(stand_in_url);
    let model = std::env::var("TUNELOOP_MODEL").unwrap_or_else(|_| "small".into());
    let rounds: usize = std::env::var("TUNELOOP_ROUNDS").map_or(Ok(400), |r| r.parse())?;
    let client = genai::Client::new()?;
    // An OpenAI-compatible server at `base`, whatever the model's name.
    let target = |model: &str| ServiceTarget {
        model: ModelIden::new(AdapterKind::OpenAI, model),
        endpoint: Endpoint::from_owned(format!("{base}/")),
        auth: AuthData::from_single("sk-local"),
    };
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
        let request = ChatRequest::new(vec![ChatMessage::user(*question)]);
        let options = chat_options(decision.params());
        let call = client.exec_chat(target(decision.params().model()), request, Some(&options));
        let (response, latency) = timed(call).await;
        let outcome = match &response {
            Ok(r) => {
                let quality = f64::from(u8::from(
                    r.first_text().is_some_and(|a| a.contains(expected)),
                ));
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
    Ok(())
}
