//! The benchmark's reference (`qrhub bench-reference`): the cheapest durable request this
//! stack serves, so that the hub's flows per second can be reported as a ratio to something
//! measured on the same machine in the same run.
//!
//! One route, `POST /qr/v1/payments`: the body is parsed as the hub parses a `pay` (the same
//! typed model), and one row is committed through sqlx to the same PostgreSQL, with a pool
//! of the same size as the hub's. No authentication, no state machine, no partner: what is
//! left is HTTP, JSON, one round trip and one commit, the floor under every durable request.
//! The benchmark script drives it with `wrk` at the hub run's concurrency.
//!
//! Its SQL lives here rather than in `store/`: the table is the benchmark's, not the hub's,
//! and nothing of the hub reads it.

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use sqlx::PgPool;
use std::net::SocketAddr;

use crate::model::PaymentRequest;

/// `qrhub bench-reference` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReferenceOptions {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    pub listen: SocketAddr,
    /// The PostgreSQL database to commit to (its table `bench_reference` is created).
    #[arg(long)]
    pub database_url: String,
    /// Pool size: the hub's `database.max_connections` for a like-for-like figure.
    #[arg(long, default_value_t = 16)]
    pub max_connections: u32,
}

/// Serves until Ctrl-C or SIGTERM.
pub(crate) async fn command(options: ReferenceOptions) -> anyhow::Result<()> {
    let pool = crate::store::postgres_pool_options(options.max_connections)
        .connect(&options.database_url)
        .await
        .with_context(|| format!("cannot connect to {}", options.database_url))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_reference (id uuid PRIMARY KEY, message_id text NOT \
         NULL, tran_id text NOT NULL, amount_minor bigint NOT NULL, currency text NOT NULL, \
         at timestamptz NOT NULL)",
    )
    .execute(&pool)
    .await
    .context("cannot create the reference's table")?;
    let router = Router::new()
        .route("/qr/v1/payments", post(pay))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    println!("reference serving on http://{}", options.listen);
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::app::shutdown_signal())
        .await
        .context("the reference server failed")
}

/// Parse, one insert (its own transaction and commit), 201 with a small JSON body.
async fn pay(
    State(pool): State<PgPool>,
    Json(request): Json<PaymentRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), (StatusCode, String)> {
    let (amount, currency) = request
        .amounts
        .request_amount
        .as_ref()
        .map(|a| (a.amount, a.currency.clone()))
        .unwrap_or_default();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO bench_reference (id, message_id, tran_id, amount_minor, currency, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&request.id)
    .bind(&request.tran_id)
    .bind(amount)
    .bind(currency)
    .bind(chrono::Utc::now())
    .execute(&pool)
    .await
    .map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("insert failed: {e}"),
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": request.id, "tranId": request.tran_id})),
    ))
}
