//! The cost of checking a bearer token on every MCP request: JWT signature, issuer, expiry and
//! audience, the revoked-grant lookup and the scope check (`Auth::authenticate`). Run with
//! `cargo bench --bench auth`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};
use openclaw_mcp::{
    auth::{
        Auth, Place,
        tokens::{Claims, SigningKey},
    },
    cli::Cli,
    config::Settings,
    sqlite::Location,
};

const KEY: &str = "bench-signing-key-bench-signing-key-0123";

fn bench_authenticate(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let cli = Cli::try_parse_from(["openclaw-mcp", "--transport", "http"]).unwrap();
    let settings = Settings::load_from(&cli, |k| match k {
        "AUTH_ENABLED" => Some("true".into()),
        "MCP_CLIENT_ID" => Some("openclaw".into()),
        "MCP_CLIENT_SECRET" => Some("0123456789abcdef0123456789abcdef".into()),
        "MCP_TOKEN_SIGNING_KEY" => Some(KEY.into()),
        _ => None,
    })
    .unwrap();
    let issuer = "https://bridge.example";
    let auth = system.block_on(async {
        Auth::start(&settings.auth, issuer, Place::Local(&Location::Memory))
            .await
            .unwrap()
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = SigningKey::new(KEY.as_bytes()).sign(&Claims {
        iss: issuer.into(),
        aud: format!("{issuer}/mcp"),
        sub: "openclaw".into(),
        scope: "mcp:tools".into(),
        exp: now + 3600,
        iat: now,
        jti: "bench".into(),
        gid: "bench-grant".into(),
    });
    let header = format!("Bearer {token}");
    assert!(auth.authenticate(Some(&header)).is_ok());
    c.bench_function("authenticate a bearer token (JWT HS256 + checks)", |b| {
        b.iter(|| auth.authenticate(Some(&header)).unwrap())
    });
    let forged = format!("Bearer {}x", token);
    c.bench_function("refuse a forged bearer token", |b| {
        b.iter(|| auth.authenticate(Some(&forged)).unwrap_err())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench_authenticate
}
criterion_main!(benches);
