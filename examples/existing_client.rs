//! Adding tuneloop to an agent that already has its own LLM client.
//!
//! Run with `cargo run --release --example existing_client`.
//!
//! `ChatClient` below stands for the client the agent already uses (an
//! OpenAI SDK, a local llama server, ...): it takes a request with a model,
//! a temperature and a token limit, and returns text and token usage. The
//! integration touches three places — building the request from the
//! recommendation, timing the call, and reporting how it went — and leaves
//! the client alone. Walk-through: `docs/integration.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tuneloop::core::hash::splitmix64;
use tuneloop::core::{ArmSet, ErrorClass, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::JsonlLog;
use tuneloop::{Optimizer, OptimizerSnapshot, RecommendOptions, Recommendation, TaskTypeConfig};

// ---------------------------------------------------------------------------
// The agent's existing client (a stand-in with the usual shape).
// ---------------------------------------------------------------------------

/// What the existing client sends.
#[derive(Debug, Clone)]
struct ChatRequest {
    model: String,
    system: String,
    user: String,
    temperature: f32,
    top_p: f32,
    max_tokens: u32,
}

/// What it gets back.
#[derive(Debug)]
struct ChatResponse {
    text: String,
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Its errors.
#[derive(Debug)]
enum ChatError {
    RateLimited,
    Timeout,
}

/// The client: here a deterministic fake whose answers are better at a
/// cool temperature for code and a warm one for prose.
struct ChatClient {
    state: std::sync::Mutex<u64>,
}

impl ChatClient {
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ChatError> {
        let u = {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *s = splitmix64(*s);
            (*s >> 11) as f64 / (1u64 << 53) as f64
        };
        if u < 0.01 {
            return Err(if u < 0.005 {
                ChatError::RateLimited
            } else {
                ChatError::Timeout
            });
        }
        let best = if req.system.contains("code") {
            0.1
        } else {
            0.8
        };
        // Narrow nucleus sampling costs a little quality in this fake.
        let q = (0.95 - (f64::from(req.temperature) - best).powi(2) + 0.1 * (u - 0.5)
            - 0.2 * (1.0 - f64::from(req.top_p)))
        .clamp(0.0, 1.0);
        let completion = (f64::from(req.max_tokens) * (0.3 + 0.4 * u)) as u32;
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(ChatResponse {
            text: format!("[{}] answer quality {q:.3}", req.model),
            prompt_tokens: (req.user.len() / 4) as u32,
            completion_tokens: completion,
        })
    }
}

// ---------------------------------------------------------------------------
// The integration.
// ---------------------------------------------------------------------------

/// Step 1: map the recommendation onto the client's own request type.
fn to_request(rec: &Recommendation, user: &str) -> ChatRequest {
    let p = &rec.params;
    // The prompt of the arm's prompt variant (registered with the task
    // type), or the usual one for arms without a variant.
    let system = rec
        .prompt
        .as_deref()
        .unwrap_or("You are a helpful assistant.");
    ChatRequest {
        model: p.model().to_owned(),
        system: system.to_owned(),
        user: user.to_owned(),
        temperature: p.temperature() as f32,
        top_p: p.top_p() as f32,
        max_tokens: p.max_tokens(),
    }
}

/// Step 2: turn the call's result into an outcome. Quality comes from whatever
/// the agent already uses to judge an answer: tests passing, a user's
/// thumbs-up, a grader model. Here the fake reports it in its text.
fn to_outcome(
    result: &Result<ChatResponse, ChatError>,
    latency: Duration,
    price_per_token: f64,
) -> TaskOutcome {
    let ms = latency.as_secs_f64() * 1000.0;
    match result {
        Ok(r) => {
            let quality = r
                .text
                .rsplit(' ')
                .next()
                .and_then(|q| q.parse::<f64>().ok())
                .unwrap_or(0.0);
            let tokens = u64::from(r.prompt_tokens) + u64::from(r.completion_tokens);
            TaskOutcome::success(quality, ms)
                .with_tokens(u64::from(r.prompt_tokens), u64::from(r.completion_tokens))
                .with_cost(tokens as f64 * price_per_token)
        }
        Err(ChatError::RateLimited) => TaskOutcome::failure(ErrorClass::RateLimited, ms),
        Err(ChatError::Timeout) => TaskOutcome::failure(ErrorClass::Timeout, ms),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?
        .block_on(agent())
}

async fn agent() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let snapshot_path = dir.path().join("tuneloop-snapshot.json");

    // Step 3: at start-up: one optimizer for the whole process, arms per task
    // type, a decision log, and the last snapshot if there is one.
    let code_arms = ArmSet::grid()
        .models(["gpt-4o-mini"])
        .temperatures([0.0, 0.2, 0.5, 0.8])
        .max_tokens([512, 1024])
        .prompt_variants([Some("terse"), Some("explain")])
        .build()?;
    let prose_arms = ArmSet::grid()
        .models(["gpt-4o-mini"])
        .temperatures([0.3, 0.6, 0.9])
        .max_tokens([256, 512])
        .build()?;
    let build =
        |snapshot: Option<OptimizerSnapshot>| -> Result<Optimizer, Box<dyn std::error::Error>> {
            let mut b = Optimizer::builder()
                .task_type(
                    "code",
                    TaskTypeConfig::new(code_arms.clone())
                        .prompt("terse", "You write code. Reply with code only.")
                        .prompt("explain", "You write code and explain it briefly."),
                )
                .task_type("prose", TaskTypeConfig::new(prose_arms.clone()))
                .decision_log(Arc::new(JsonlLog::open(
                    dir.path().join("decisions.jsonl"),
                    64 << 20,
                    3,
                )?))
                .seed(7);
            if let Some(s) = snapshot {
                b = b.restore(s);
            }
            Ok(b.build()?)
        };
    let optimizer = build(None)?;
    let client = ChatClient {
        state: std::sync::Mutex::new(1),
    };

    let mut rewards: HashMap<&str, (f64, u32)> = HashMap::new();
    for i in 0..2_000u32 {
        let (task, user) = if i % 2 == 0 {
            ("code", "Write a function that reverses a string.")
        } else {
            ("prose", "Write a short product description for a kettle.")
        };
        let features = TaskFeatures {
            description_length: user.len() as u64,
            ..TaskFeatures::default()
        };
        // recommend_parameters and record_outcome do no I/O: call them
        // straight from async code.
        let rec = optimizer.recommend_parameters(task, &features, &RecommendOptions::default())?;
        let request = to_request(&rec, user);
        let started = Instant::now();
        let result = client.chat(&request).await;
        let outcome = to_outcome(&result, started.elapsed(), 0.6e-6);
        let recorded = optimizer.record_outcome(rec.decision_id, &outcome)?;
        if i >= 1_600 {
            let e = rewards.entry(task).or_default();
            e.0 += recorded.reward;
            e.1 += 1;
        }
    }
    for (task, (sum, n)) in &rewards {
        println!(
            "{task}: average reward over the last 400 calls {:.3}",
            sum / f64::from(*n)
        );
    }

    // Step 4: persist what was learned (atomically) and restore it next start.
    optimizer.save_snapshot(&snapshot_path)?;
    drop(optimizer);
    let restored = build(Some(OptimizerSnapshot::load(&snapshot_path)?))?;
    let rec = restored.recommend_parameters(
        "code",
        &TaskFeatures::default(),
        &RecommendOptions::default(),
    )?;
    println!(
        "after a restart, code gets temperature {} with prompt variant {:?} (decision {})",
        rec.params.temperature(),
        rec.params.prompt_variant(),
        rec.decision_id
    );
    Ok(())
}
