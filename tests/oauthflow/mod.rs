//! The OAuth flow of the PostgreSQL OAuth tests (tests/pg_oauth.rs, tests/pg_oauth_attacks.rs), as
//! raw HTTP to bridges sharing one public issuer URL: authorize, redeem, refresh, the token check.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openclaw_mcp::auth::pkce::challenge_of;
use serde_json::Value;

use crate::common::http::{ACCEPT_BOTH, HttpBridge, initialize_body, json_body};

pub const CLIENT_ID: &str = "openclaw";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";
pub const CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";
/// The public URL all replicas share (never contacted: it only names the issuer and audience).
pub const ISSUER: &str = "http://127.0.0.1:1";
pub const PASSWORD: &str = "open sesame please";

pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        json_body(&self.body)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub fn location_params(&self) -> HashMap<String, String> {
        let location = self.headers.get("location").unwrap().to_str().unwrap();
        url::Url::parse(location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(20))
        .finish()
}

pub async fn send(req: awc::ClientRequest, body: Option<String>) -> Reply {
    let mut response = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    }
    .unwrap();
    let body = response.body().limit(1 << 20).await.unwrap().to_vec();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

pub async fn form(url: &str, pairs: &[(&str, &str)]) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    send(
        client()
            .post(url)
            .insert_header(("content-type", "application/x-www-form-urlencoded")),
        Some(body),
    )
    .await
}

/// An MCP `initialize` with `token`: the status the token check gives.
pub async fn mcp(b: &HttpBridge, token: &str) -> u16 {
    send(
        client()
            .post(b.url("/mcp"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", ACCEPT_BOTH))
            .insert_header(("authorization", format!("Bearer {token}"))),
        Some(initialize_body(1)),
    )
    .await
    .status
}

pub fn verifier() -> String {
    URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()) + "-padding-to-be-long-enough"
}

pub fn authorize_query(client_id: &str, v: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
            ("code_challenge", &challenge_of(v)),
            ("code_challenge_method", "S256"),
            ("scope", "mcp:tools"),
            ("state", "xyz"),
        ])
        .finish()
}

/// A code for the configured client from `b`: (verifier, code).
pub async fn code_from(b: &HttpBridge) -> (String, String) {
    let v = verifier();
    let reply = send(
        client().get(b.url(&format!("/authorize?{}", authorize_query(CLIENT_ID, &v)))),
        None,
    )
    .await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let code = reply.location_params()["code"].clone();
    (v, code)
}

pub async fn redeem_at(b: &HttpBridge, code: &str, v: &str) -> Reply {
    form(
        &b.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", v),
            ("redirect_uri", CALLBACK),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
    )
    .await
}

pub async fn refresh_at(b: &HttpBridge, refresh: &str) -> Reply {
    form(
        &b.url("/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
    )
    .await
}

/// A login whose code comes from `a` and is redeemed at `b`: (access, refresh).
pub async fn login(a: &HttpBridge, b: &HttpBridge) -> (String, String) {
    let (v, code) = code_from(a).await;
    let reply = redeem_at(b, &code, &v).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = reply.json();
    (
        doc["access_token"].as_str().unwrap().to_string(),
        doc["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// The `kid` of an access token's header.
pub fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap_or_default().to_string()
}

/// How long until `probe` holds (checked every 10 ms), or `None` past `limit`.
pub async fn time_until<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
