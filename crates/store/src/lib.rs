//! tuneloop's fleet mode on PostgreSQL: many processes of one agent system
//! share one decision log, their learning, one budget and outcomes through
//! one database. The facade's `tuneloop::fleet` (feature `postgres`) runs
//! the sharing; this crate is the database's side of it.
//!
//! - [`Store::connect`] opens a database and brings its schema to this
//!   crate's version with versioned [migrations](MIGRATIONS), applied in
//!   one transaction under an advisory lock (so processes starting together
//!   apply each once); a database of a newer version, or a table edited by
//!   hand, is an [`Error`] naming what is wrong.
//! - [`PgDecisionLog`] is a [`DecisionLog`](tuneloop_counterfactual::DecisionLog)
//!   for [`OptimizerBuilder::decision_log`](https://docs.rs/tuneloop): records
//!   go into a bounded buffer and a background thread writes them in
//!   batches (one multi-row `INSERT` each); while the database is
//!   unreachable it keeps the buffer and reconnects with backoff; a record
//!   is dropped, and counted, only when the buffer is full. Inserts are
//!   idempotent by decision id, so a batch retried after a lost
//!   acknowledgement is written once.
//! - [`Store::decisions`] reads the log back, oldest first; `tuneloop
//!   export` writes it as the JSON Lines every other command reads.
//! - [`Store::save_snapshot`] and [`Store::load_snapshot`] keep named
//!   snapshots (an optimizer's learned state, rollouts and budget).
//! - [`Store::exchange_learning`] keeps each member's contribution of
//!   sufficient statistics per task type and model and answers with their
//!   sum; [`Store::renew_lease`] grants budget leases that never pass the
//!   limit and reclaims expired ones; [`Store::post_outcome`] and
//!   [`Store::outcomes_for`] pass an outcome to the member that decided;
//!   [`Store::try_lead`], [`Store::publish_rollout`] and
//!   [`Store::rollouts`] carry the fleet's rollout (one leader under an
//!   advisory lock, its decisions and their events).
//!
//! Tests that need a server read its URL from `TUNELOOP_DATABASE_URL`
//! (`scripts/local-postgres start` prints one) and are skipped without it.

mod fleet;
mod log;

use std::time::Duration;

use tokio_postgres::{Client, NoTls};
use tuneloop_core::ErrorKind;
use tuneloop_counterfactual::LoggedDecision;

pub use fleet::{FleetBudget, FleetRollout, Lease, LeaseRequest, LogCursor, LoggedRollout};
pub use log::{PgDecisionLog, PgLogConfig, PgLogStats};

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a PostgreSQL connection string.
    #[error("database URL `{url}` is not valid: {message}")]
    InvalidUrl {
        /// The URL, with any password hidden.
        url: String,
        /// Why.
        message: String,
    },
    /// The database cannot be reached or refused the connection.
    #[error("cannot connect to the database at {target}: {message}")]
    Connect {
        /// Host and port (no password).
        target: String,
        /// Why (the server's message when it sent one).
        message: String,
        /// The client's error, when there is one.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The database's schema is of a version this crate does not know.
    #[error(
        "the database's tuneloop schema is version {found}, newer than this build's {supported}: upgrade tuneloop"
    )]
    SchemaVersion {
        /// The version found.
        found: i32,
        /// The newest this build knows.
        supported: i32,
    },
    /// A table does not look as the schema says (edited by hand?).
    #[error("table `{table}` does not match tuneloop's schema: {problem}")]
    Schema {
        /// The table.
        table: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A stored record that is not a decision (or a snapshot that is not
    /// one).
    #[error("{decision_id} in the database is not a valid record: {message}")]
    BadRecord {
        /// `decision ID` or `snapshot NAME`, as stored.
        decision_id: String,
        /// Why.
        message: String,
    },
    /// A query failed.
    #[error("database query failed ({what}): {message}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The server's or the client's message.
        message: String,
        /// The client's error (its `code()` is the server's SQLSTATE).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The store's runtime or thread could not start.
    #[error("cannot start the store's background work: {0}")]
    Runtime(String),
}

impl Error {
    /// What kind of failure it is: a URL, a schema or a stored record at
    /// fault is [`BadInput`](ErrorKind::BadInput) (the database's content
    /// is read as a file's is); a connection, a query or the store's
    /// thread is [`Io`](ErrorKind::Io).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl { .. }
            | Error::SchemaVersion { .. }
            | Error::Schema { .. }
            | Error::BadRecord { .. } => ErrorKind::BadInput,
            Error::Connect { .. } | Error::Query { .. } | Error::Runtime(_) => ErrorKind::Io,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The schema, one migration per version (index + 1), applied in order.
pub const MIGRATIONS: &[&str] = &[
    // 1: the decision log. `record` is `json`, not `jsonb`: the server
    // checks it and keeps the text as written (floats exactly as
    // serialized), where `jsonb` converts every number to `numeric`, which
    // for a record of 1 KB costs about 25 µs and caps a writer near 31,000
    // records a second (`json`: 76,000). `->` and `->>` work on both.
    "CREATE TABLE tuneloop_decisions (
        decision_id uuid PRIMARY KEY,
        task_type text NOT NULL,
        decided_at timestamptz NOT NULL,
        record json NOT NULL,
        written_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX tuneloop_decisions_decided_at ON tuneloop_decisions (decided_at);",
    // 2: named snapshots (an optimizer's learned state, rollouts, budget).
    "CREATE TABLE tuneloop_snapshots (
        name text PRIMARY KEY,
        snapshot jsonb NOT NULL,
        saved_at timestamptz NOT NULL DEFAULT now()
    );",
    // 3: what a fleet shares: each member's learning (sufficient
    // statistics, `json` to keep every float as written) per task type and
    // model (the fingerprint of the arms and the learner: members of
    // another deployment do not mix their sums with these), budget windows
    // and their leases, outcomes left for the member that decided, each
    // task type's rollout phase as the fleet's leader decided it, and the
    // leader's rollout events (the fleet's provenance of its changes).
    "CREATE TABLE tuneloop_learning (
        task_type text NOT NULL,
        model text NOT NULL,
        member text NOT NULL,
        updates bigint NOT NULL,
        statistics json NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (task_type, model, member)
    );
    CREATE TABLE tuneloop_budgets (
        name text NOT NULL,
        window_start timestamptz NOT NULL,
        token_limit bigint,
        cost_limit double precision,
        PRIMARY KEY (name, window_start)
    );
    CREATE TABLE tuneloop_leases (
        budget text NOT NULL,
        window_start timestamptz NOT NULL,
        member text NOT NULL,
        granted_tokens bigint NOT NULL,
        granted_cost double precision NOT NULL,
        used_tokens bigint NOT NULL,
        used_cost double precision NOT NULL,
        margin_tokens bigint NOT NULL,
        margin_cost double precision NOT NULL,
        expires_at timestamptz NOT NULL,
        reclaimed boolean NOT NULL DEFAULT false,
        PRIMARY KEY (budget, window_start, member)
    );
    CREATE TABLE tuneloop_outcomes (
        decision_id uuid PRIMARY KEY,
        outcome json NOT NULL,
        posted_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX tuneloop_decisions_written_at ON tuneloop_decisions (written_at, decision_id);
    CREATE TABLE tuneloop_rollouts (
        task_type text PRIMARY KEY,
        generation bigint NOT NULL,
        phase text NOT NULL,
        held boolean NOT NULL,
        leader text NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE tuneloop_rollout_events (
        id bigserial PRIMARY KEY,
        task_type text NOT NULL,
        generation bigint NOT NULL,
        leader text NOT NULL,
        event json NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    );",
];

/// The columns of each table as migrations leave them: name and type.
const TABLES: &[(&str, &[(&str, &str)])] = &[
    (
        "tuneloop_decisions",
        &[
            ("decision_id", "uuid"),
            ("task_type", "text"),
            ("decided_at", "timestamp with time zone"),
            ("record", "json"),
            ("written_at", "timestamp with time zone"),
        ],
    ),
    (
        "tuneloop_snapshots",
        &[
            ("name", "text"),
            ("snapshot", "jsonb"),
            ("saved_at", "timestamp with time zone"),
        ],
    ),
    (
        "tuneloop_learning",
        &[
            ("task_type", "text"),
            ("model", "text"),
            ("member", "text"),
            ("updates", "bigint"),
            ("statistics", "json"),
            ("updated_at", "timestamp with time zone"),
        ],
    ),
    (
        "tuneloop_budgets",
        &[
            ("name", "text"),
            ("window_start", "timestamp with time zone"),
            ("token_limit", "bigint"),
            ("cost_limit", "double precision"),
        ],
    ),
    (
        "tuneloop_leases",
        &[
            ("budget", "text"),
            ("window_start", "timestamp with time zone"),
            ("member", "text"),
            ("granted_tokens", "bigint"),
            ("granted_cost", "double precision"),
            ("used_tokens", "bigint"),
            ("used_cost", "double precision"),
            ("margin_tokens", "bigint"),
            ("margin_cost", "double precision"),
            ("expires_at", "timestamp with time zone"),
            ("reclaimed", "boolean"),
        ],
    ),
    (
        "tuneloop_outcomes",
        &[
            ("decision_id", "uuid"),
            ("outcome", "json"),
            ("posted_at", "timestamp with time zone"),
        ],
    ),
    (
        "tuneloop_rollouts",
        &[
            ("task_type", "text"),
            ("generation", "bigint"),
            ("phase", "text"),
            ("held", "boolean"),
            ("leader", "text"),
            ("changed_at", "timestamp with time zone"),
        ],
    ),
    (
        "tuneloop_rollout_events",
        &[
            ("id", "bigint"),
            ("task_type", "text"),
            ("generation", "bigint"),
            ("leader", "text"),
            ("event", "json"),
            ("recorded_at", "timestamp with time zone"),
        ],
    ),
];

/// The newest schema version this build knows.
pub fn schema_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `url` with its password, if any, replaced by `***`: for messages and
/// titles.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn query_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Query {
        what,
        message: db_message(&e),
        source: e,
    }
}

/// The server's message when there is one (the client's `Display` says
/// only "db error").
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Parses `url` and connects, spawning the connection on the current
/// runtime.
pub(crate) async fn connect_client(url: &str) -> Result<Client> {
    let mut config: tokio_postgres::Config =
        url.parse()
            .map_err(|e: tokio_postgres::Error| Error::InvalidUrl {
                url: redact(url),
                message: e.to_string(),
            })?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("tuneloop");
    let target = format!("{:?}:{:?}", config.get_hosts(), config.get_ports());
    let (client, connection) = config.connect(NoTls).await.map_err(|e| Error::Connect {
        target,
        message: db_message(&e),
        source: Some(e),
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// A connection to a tuneloop database, its schema current.
#[derive(Debug)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) runtime: tokio::runtime::Runtime,
    /// Whether this connection holds the fleet's leader lock.
    pub(crate) leading: bool,
}

impl Store {
    /// Connects to `url` (`postgres://user@host:port/db`) and migrates the
    /// schema to [`schema_version`]. Blocking: it runs its own runtime.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::Connect`], [`Error::SchemaVersion`]
    /// for a database of a newer schema, [`Error::Schema`] for a table
    /// that does not match, [`Error::Query`].
    pub fn connect(url: &str) -> Result<Store> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let client = runtime.block_on(async {
            let mut client = connect_client(url).await?;
            migrate(&mut client).await?;
            Ok::<_, Error>(client)
        })?;
        Ok(Store {
            client,
            runtime,
            leading: false,
        })
    }

    /// Whether the connection is gone (the server stopped, the network
    /// failed): every call fails until the store is connected again.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Every decision in the log, oldest first (by decision time).
    ///
    /// # Errors
    /// [`Error::BadRecord`] naming a stored record that is not a decision,
    /// [`Error::Query`].
    pub fn decisions(&self) -> Result<Vec<LoggedDecision>> {
        self.runtime.block_on(async {
            let rows = self
                .client
                .query(
                    "SELECT decision_id::text, record::text FROM tuneloop_decisions ORDER BY decided_at, decision_id",
                    &[],
                )
                .await
                .map_err(query_error("reading decisions"))?;
            rows.iter()
                .map(|row| parse_decision(&row.get::<_, String>(0), &row.get::<_, String>(1)))
                .collect()
        })
    }

    /// Saves `snapshot` (an `OptimizerSnapshot`, say) under `name`,
    /// replacing the one saved before, in one statement: a reader sees the
    /// old snapshot or the new one, never a mix.
    ///
    /// # Errors
    /// [`Error::Query`]; [`Error::BadRecord`] when it does not serialize.
    pub fn save_snapshot<T: serde::Serialize>(&self, name: &str, snapshot: &T) -> Result<()> {
        let json = serde_json::to_string(snapshot).map_err(|e| Error::BadRecord {
            decision_id: format!("snapshot {name}"),
            message: e.to_string(),
        })?;
        self.runtime.block_on(async {
            self.client
                .execute(
                    "INSERT INTO tuneloop_snapshots (name, snapshot) VALUES ($1, $2::text::jsonb)
                     ON CONFLICT (name) DO UPDATE SET snapshot = excluded.snapshot, saved_at = now()",
                    &[&name, &json],
                )
                .await
                .map_err(query_error("saving a snapshot"))?;
            Ok(())
        })
    }

    /// The snapshot saved under `name`, if any.
    ///
    /// # Errors
    /// [`Error::BadRecord`] when the stored snapshot is not a `T` (the
    /// message names it), [`Error::Query`].
    pub fn load_snapshot<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.runtime.block_on(async {
            let row = self
                .client
                .query_opt(
                    "SELECT snapshot::text FROM tuneloop_snapshots WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(query_error("loading a snapshot"))?;
            row.map(|r| {
                let text: String = r.get(0);
                serde_json::from_str(&text).map_err(|e| Error::BadRecord {
                    decision_id: format!("snapshot {name}"),
                    message: e.to_string(),
                })
            })
            .transpose()
        })
    }

    /// Decisions in the log.
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn count(&self) -> Result<u64> {
        self.runtime.block_on(async {
            let row = self
                .client
                .query_one("SELECT count(*) FROM tuneloop_decisions", &[])
                .await
                .map_err(query_error("counting decisions"))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }
}

/// A stored record, `text`, of the row whose id is `id`: a valid decision
/// of that id, or [`Error::BadRecord`] naming it.
pub(crate) fn parse_decision(id: &str, text: &str) -> Result<LoggedDecision> {
    let bad = |message: String| Error::BadRecord {
        decision_id: format!("decision {id}"),
        message,
    };
    // The decision log's one way of reading a record.
    let d = LoggedDecision::from_json(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if d.decision_id.to_string() != id {
        return Err(bad(format!("its record says it is {}", d.decision_id)));
    }
    Ok(d)
}

/// Brings the schema to [`schema_version`] in one transaction, under an
/// advisory lock; then checks every table's columns.
async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(query_error("starting the migration"))?;
    // One process migrates at a time (the key is "tuneloop" in ASCII).
    tx.execute("SELECT pg_advisory_xact_lock(8391171244232945520)", &[])
        .await
        .map_err(query_error("locking the schema"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tuneloop_schema (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(query_error("creating the schema table"))?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM tuneloop_schema", &[])
        .await
        .map_err(query_error("reading the schema version"))?
        .get(0);
    let supported = schema_version();
    if found > supported {
        return Err(Error::SchemaVersion { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(query_error("applying a migration"))?;
        tx.execute(
            "INSERT INTO tuneloop_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(query_error("recording a migration"))?;
        tracing::info!(version, "tuneloop schema migrated");
    }
    for (table, columns) in TABLES {
        let rows = tx
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[table],
            )
            .await
            .map_err(query_error("reading the tables' columns"))?;
        let have: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if have.is_empty() {
            return Err(Error::Schema {
                table,
                problem: "the table is missing".into(),
            });
        }
        for (name, ty) in *columns {
            match have.iter().find(|(n, _)| n == name) {
                None => {
                    return Err(Error::Schema {
                        table,
                        problem: format!("column `{name}` is missing"),
                    });
                }
                Some((_, t)) if t != ty => {
                    return Err(Error::Schema {
                        table,
                        problem: format!("column `{name}` is `{t}`, expected `{ty}`"),
                    });
                }
                Some(_) => {}
            }
        }
    }
    tx.commit()
        .await
        .map_err(query_error("committing the migration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn a_bad_url_is_named() {
        let e = Store::connect("postgres://u:pw@host:notaport/db").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("postgres://u:***@host:notaport/db"), "{m}");
        assert!(!m.contains("pw"), "{m}");
    }
}
