//! OAuth 2.1 in HTTP mode, one test per rule, each attack included: the real binary on a
//! loopback port, raw HTTP for the OAuth endpoints, rmcp's client for the tools.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{
    FakeGateway, call,
    http::{ACCEPT_BOTH, HttpBridge, initialize_body, json_body},
    json_of, text,
};
use openclaw_mcp::auth::{
    pkce::challenge_of,
    tokens::{Claims, SigningKey},
};
use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

const CLIENT_ID: &str = "openclaw";
const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";
const SIGNING_KEY: &str = "test-signing-key-test-signing-key-0123456789";
const CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";

struct Http {
    client: awc::Client,
}

struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        json_body(&self.body)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    fn location(&self) -> url::Url {
        url::Url::parse(&self.header("location").expect("a Location header")).unwrap()
    }
    fn location_params(&self) -> HashMap<String, String> {
        self.location().query_pairs().into_owned().collect()
    }
}

impl Http {
    fn new() -> Self {
        Http {
            client: awc::Client::builder()
                .disable_redirects()
                .timeout(std::time::Duration::from_secs(20))
                .finish(),
        }
    }

    async fn send(&self, req: awc::ClientRequest, body: Option<String>) -> Reply {
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

    async fn get(&self, url: &str) -> Reply {
        self.send(self.client.get(url), None).await
    }

    /// A GET as if from `from` (with `TRUST_PROXY=true`, the client address).
    async fn get_from(&self, url: &str, from: &str) -> Reply {
        self.send(
            self.client
                .get(url)
                .insert_header(("x-forwarded-for", from)),
            None,
        )
        .await
    }

    async fn form(&self, url: &str, pairs: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
        self.form_from(url, pairs, basic, None).await
    }

    /// A form POST, as if from `from` when given (see [`Http::get_from`]).
    async fn form_from(
        &self,
        url: &str,
        pairs: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        from: Option<&str>,
    ) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut req = self
            .client
            .post(url)
            .insert_header(("content-type", "application/x-www-form-urlencoded"));
        if let Some(from) = from {
            req = req.insert_header(("x-forwarded-for", from));
        }
        if let Some((id, secret)) = basic {
            req = req.insert_header((
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
                ),
            ));
        }
        self.send(req, Some(body)).await
    }

    async fn mcp(&self, url: &str, token: Option<&str>) -> Reply {
        let mut req = self
            .client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", ACCEPT_BOTH));
        if let Some(token) = token {
            req = req.insert_header(("authorization", format!("Bearer {token}")));
        }
        self.send(req, Some(initialize_body(1))).await
    }
}

fn auth_env<'a>(gw: &'a FakeGateway, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("OPENCLAW_URL", gw.url.as_str()),
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", CLIENT_ID),
        ("MCP_CLIENT_SECRET", SECRET),
        ("MCP_TOKEN_SIGNING_KEY", SIGNING_KEY),
    ];
    env.extend_from_slice(extra);
    env
}

async fn bridge(gw: &FakeGateway, extra: &[(&str, &str)]) -> HttpBridge {
    HttpBridge::spawn(&[], &auth_env(gw, extra)).await
}

fn verifier() -> String {
    URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()) + "-padding-to-be-long-enough"
}

/// Authorization request parameters of a well-behaved client.
fn authorize_params(challenge: &str, redirect: &str) -> Vec<(String, String)> {
    vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), CLIENT_ID.into()),
        ("redirect_uri".into(), redirect.into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
        ("scope".into(), "mcp:tools".into()),
        ("state".into(), "xyz".into()),
    ]
}

fn query(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The consent id in a consent page's form.
fn consent_id(page: &str) -> String {
    page.split("name=\"consent_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

async fn authorize(http: &Http, b: &HttpBridge, pairs: &[(String, String)]) -> Reply {
    http.get(&b.url(&format!("/authorize?{}", query(pairs))))
        .await
}

/// Runs the authorization-code flow; returns (verifier, code).
async fn get_code(http: &Http, b: &HttpBridge) -> (String, String) {
    let v = verifier();
    let reply = authorize(http, b, &authorize_params(&challenge_of(&v), CALLBACK)).await;
    assert_eq!(
        reply.status,
        302,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let code = reply.location_params()["code"].clone();
    (v, code)
}

async fn redeem(http: &Http, b: &HttpBridge, code: &str, v: &str) -> Reply {
    http.form(
        &b.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", v),
            ("redirect_uri", CALLBACK),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
        None,
    )
    .await
}

/// A refresh-token grant by the configured client (HTTP Basic), from `from` when given.
async fn refresh(http: &Http, b: &HttpBridge, token: &str, from: Option<&str>) -> Reply {
    http.form_from(
        &b.url("/token"),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        Some((CLIENT_ID, SECRET)),
        from,
    )
    .await
}

/// Polls `probe` (at most every 20 ms) until it is true or `within` has passed; whether it
/// became true.
async fn within<F, Fut>(within: std::time::Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if probe().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Registers a client by DCR; (client_id, client_secret).
async fn register(
    http: &Http,
    b: &HttpBridge,
    name: &str,
    method: &str,
) -> (String, Option<String>) {
    let registered = http
        .send(
            http.client
                .post(b.url("/register"))
                .insert_header(("content-type", "application/json")),
            Some(
                json!({"client_name": name, "redirect_uris": [CALLBACK], "token_endpoint_auth_method": method})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(
        registered.status,
        201,
        "{}",
        String::from_utf8_lossy(&registered.body)
    );
    let doc = registered.json();
    (
        doc["client_id"].as_str().unwrap().to_string(),
        doc["client_secret"].as_str().map(str::to_string),
    )
}

/// The authorization request of `client_id` (else as [`authorize_params`]).
fn authorize_params_for(client_id: &str, challenge: &str) -> Vec<(String, String)> {
    authorize_params(challenge, CALLBACK)
        .into_iter()
        .map(|(k, v)| {
            if k == "client_id" {
                (k, client_id.to_string())
            } else {
                (k, v)
            }
        })
        .collect()
}

async fn tokens(http: &Http, b: &HttpBridge) -> Value {
    let (v, code) = get_code(http, b).await;
    let reply = redeem(http, b, &code, &v).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    reply.json()
}

fn forge(b: &HttpBridge, key: &str, edit: impl FnOnce(&mut Claims)) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = Claims {
        iss: b.base.clone(),
        aud: b.url("/mcp"),
        sub: CLIENT_ID.into(),
        scope: "mcp:tools".into(),
        exp: now + 600,
        iat: now,
        jti: "forged".into(),
        gid: "no-such-grant".into(),
    };
    edit(&mut claims);
    SigningKey::new(key.as_bytes()).sign(&claims)
}

async fn authed_client(
    b: &HttpBridge,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    openclaw_mcp::app::install_crypto_provider();
    let config = StreamableHttpClientTransportConfig::with_uri(b.url("/mcp")).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("authenticated session")
}

#[actix_rt::test]
async fn metadata_documents_describe_the_authorization_server_and_the_resource() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let asm = http
        .get(&b.url("/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(asm.status, 200);
    let doc = asm.json();
    assert_eq!(doc["issuer"], b.base);
    assert_eq!(doc["authorization_endpoint"], b.url("/authorize"));
    assert_eq!(doc["token_endpoint"], b.url("/token"));
    assert_eq!(doc["revocation_endpoint"], b.url("/revoke"));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_secret_basic"))
    );
    assert!(doc.get("registration_endpoint").is_none(), "DCR is off");
    let prm = http
        .get(&b.url("/.well-known/oauth-protected-resource/mcp"))
        .await
        .json();
    assert_eq!(prm["resource"], b.url("/mcp"));
    assert_eq!(prm["authorization_servers"], json!([b.base]));
    let root = http
        .get(&b.url("/.well-known/oauth-protected-resource"))
        .await
        .json();
    assert_eq!(root["resource"], b.base);
}

#[actix_rt::test]
async fn a_missing_token_gets_401_with_resource_metadata() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let reply = http.mcp(&b.url("/mcp"), None).await;
    assert_eq!(reply.status, 401);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            b.base
        )),
        "{challenge}"
    );
    assert_eq!(reply.json()["error"], "invalid_token");
    for path in ["/sse", "/messages?sessionId=x"] {
        let r = if path == "/sse" {
            http.get(&b.url(path)).await
        } else {
            http.mcp(&b.url(path), None).await
        };
        assert_eq!(r.status, 401, "{path}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("resource_metadata=")
        );
    }
}

#[actix_rt::test]
async fn health_and_the_oauth_routes_stay_open() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    // Without a token, /health says only whether the bridge is up.
    let health = b.health().await;
    assert_eq!(health["status"], "ok");
    assert!(health.get("auth").is_none(), "{health}");
    let http = Http::new();
    assert_eq!(
        http.get(&b.url("/.well-known/oauth-authorization-server"))
            .await
            .status,
        200
    );
}

#[actix_rt::test]
async fn a_malformed_authorization_header_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    for value in ["Basic abc", "Bearer", "Bearer not-a-jwt", "Token x"] {
        let req = http
            .client
            .post(b.url("/mcp"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", ACCEPT_BOTH))
            .insert_header(("authorization", value));
        let reply = http.send(req, Some(initialize_body(1))).await;
        assert_eq!(reply.status, 401, "{value}");
    }
}

#[actix_rt::test]
async fn the_full_flow_gives_a_token_that_works_for_the_tools() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let t = tokens(&http, &b).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "mcp:tools");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "a JWT");
    let client = authed_client(&b, access).await;
    let result = client
        .call_tool(call("openclaw_chat", json!({"message": "authorized"})))
        .await
        .unwrap();
    assert_eq!(text(&result), "echo: authorized");
    assert!(!b.logs().contains(access), "tokens never reach the logs");
    assert!(!b.logs().contains(SECRET));
}

#[actix_rt::test]
async fn javascript_data_and_remote_http_redirects_are_refused_without_a_redirect() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    for uri in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://evil.example.com/cb",
    ] {
        let reply = authorize(
            &http,
            &b,
            &authorize_params(&challenge_of(&verifier()), uri),
        )
        .await;
        assert_eq!(reply.status, 400, "{uri}");
        assert!(reply.header("location").is_none(), "{uri}");
    }
    let loopback = authorize(
        &http,
        &b,
        &authorize_params(
            &challenge_of(&verifier()),
            "http://127.0.0.1:6276/oauth/callback",
        ),
    )
    .await;
    assert_eq!(loopback.status, 302);
}

#[actix_rt::test]
async fn an_allow_list_matches_exactly_except_loopback_ports() {
    let gw = FakeGateway::start();
    let b = bridge(
        &gw,
        &[(
            "MCP_REDIRECT_URIS",
            "https://claude.ai/api/mcp/auth_callback,http://localhost:1/cb",
        )],
    )
    .await;
    let http = Http::new();
    let c = challenge_of(&verifier());
    assert_eq!(
        authorize(&http, &b, &authorize_params(&c, CALLBACK))
            .await
            .status,
        302
    );
    assert_eq!(
        authorize(&http, &b, &authorize_params(&c, "https://claude.ai/other"))
            .await
            .status,
        400
    );
    assert_eq!(
        authorize(&http, &b, &authorize_params(&c, "http://localhost:9999/cb"))
            .await
            .status,
        302
    );
    let reply = authorize(
        &http,
        &b,
        &authorize_params(&c, "https://claude.com/api/mcp/auth_callback"),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["error_description"],
        "Unregistered redirect_uri"
    );
}

#[actix_rt::test]
async fn pkce_s256_is_required_with_a_43_to_128_character_challenge() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (
            authorize_params("", CALLBACK)
                .into_iter()
                .filter(|(k, _)| k != "code_challenge")
                .collect(),
            "missing challenge",
        ),
        (
            authorize_params(&"a".repeat(42), CALLBACK),
            "short challenge",
        ),
        (
            authorize_params(&"a".repeat(129), CALLBACK),
            "long challenge",
        ),
        (
            authorize_params(&challenge_of(&verifier()), CALLBACK)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_challenge_method" {
                        (k, "plain".to_string())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "plain method",
        ),
    ];
    for (pairs, what) in cases {
        let reply = authorize(&http, &b, &pairs).await;
        assert_eq!(reply.status, 302, "{what}");
        let params = reply.location_params();
        assert_eq!(params["error"], "invalid_request", "{what}");
        assert_eq!(params["state"], "xyz", "{what}: state is kept on errors");
        assert!(!params.contains_key("code"), "{what}");
    }
}

#[actix_rt::test]
async fn an_unknown_scope_is_invalid_scope() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let pairs: Vec<(String, String)> = authorize_params(&challenge_of(&verifier()), CALLBACK)
        .into_iter()
        .map(|(k, v)| {
            if k == "scope" {
                (k, "mcp:tools admin".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let reply = authorize(&http, &b, &pairs).await;
    assert_eq!(reply.location_params()["error"], "invalid_scope");
}

#[actix_rt::test]
async fn state_and_an_existing_redirect_query_are_preserved() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let reply = authorize(
        &http,
        &b,
        &authorize_params(
            &challenge_of(&verifier()),
            "https://claude.ai/cb?tenant=acme",
        ),
    )
    .await;
    assert_eq!(reply.status, 302);
    let params = reply.location_params();
    assert_eq!(params["tenant"], "acme");
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], b.base);
    assert!(params.contains_key("code"));
    assert_eq!(reply.location().path(), "/cb");
}

#[actix_rt::test]
async fn a_code_replay_is_refused_and_revokes_what_the_first_redemption_issued() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let (v, code) = get_code(&http, &b).await;
    let first = redeem(&http, &b, &code, &v).await;
    assert_eq!(first.status, 200);
    let first = first.json();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(http.mcp(&b.url("/mcp"), Some(access)).await.status, 200);
    let again = redeem(&http, &b, &code, &v).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");
    // RFC 6749 §4.1.2: the tokens issued from the code are revoked.
    assert_eq!(
        http.mcp(&b.url("/mcp"), Some(access)).await.status,
        401,
        "the first redemption's access token"
    );
    let refreshed = refresh(&http, &b, first["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(refreshed.status, 400);
    assert_eq!(refreshed.json()["error"], "invalid_grant");
}

#[actix_rt::test]
async fn a_pkce_mismatch_burns_the_code_so_the_right_verifier_fails_after() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let (v, code) = get_code(&http, &b).await;
    let wrong = redeem(&http, &b, &code, &verifier()).await;
    assert_eq!(wrong.json()["error"], "invalid_grant");
    let right = redeem(&http, &b, &code, &v).await;
    assert_eq!(right.status, 400);
    assert_eq!(
        right.json()["error"],
        "invalid_grant",
        "1.7.0 accepted this retry"
    );
}

#[actix_rt::test]
async fn a_redirect_uri_swap_at_the_token_endpoint_is_refused() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let (v, code) = get_code(&http, &b).await;
    let swapped = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &v),
                ("redirect_uri", "https://claude.ai/elsewhere"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ],
            None,
        )
        .await;
    assert_eq!(swapped.status, 400);
    assert_eq!(swapped.json()["error"], "invalid_grant");
    assert_eq!(redeem(&http, &b, &code, &v).await.status, 400, "burned");
}

#[actix_rt::test]
async fn a_wrong_secret_by_post_gets_401_invalid_client() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let (v, code) = get_code(&http, &b).await;
    let reply = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &v),
                ("redirect_uri", CALLBACK),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong-secret-wrong-secret-wrong-secret"),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "invalid_client");
    let unknown = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
            None,
        )
        .await;
    assert_eq!(unknown.status, 401);
}

#[actix_rt::test]
async fn a_wrong_secret_by_basic_gets_401_with_a_basic_challenge() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let (v, code) = get_code(&http, &b).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", v.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    let wrong = http
        .form(&b.url("/token"), &pairs, Some((CLIENT_ID, "nope")))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    // The failed attempt was client authentication, before the code was looked at: a right one
    // with a fresh code works by Basic.
    let (v, code) = get_code(&http, &b).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", v.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    let right = http
        .form(&b.url("/token"), &pairs, Some((CLIENT_ID, SECRET)))
        .await;
    assert_eq!(
        right.status,
        200,
        "{}",
        String::from_utf8_lossy(&right.body)
    );
}

#[actix_rt::test]
async fn a_tampered_jwt_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let access = tokens(&http, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = access.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = "someone-else".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert_eq!(http.mcp(&b.url("/mcp"), Some(&tampered)).await.status, 401);
    assert_eq!(http.mcp(&b.url("/mcp"), Some(&access)).await.status, 200);
}

#[actix_rt::test]
async fn alg_none_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let access = tokens(&http, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let payload = access.split('.').nth(1).unwrap().to_string();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(
        http.mcp(&b.url("/mcp"), Some(&format!("{header}.{payload}.")))
            .await
            .status,
        401
    );
}

#[actix_rt::test]
async fn a_forged_signature_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let forged = forge(&b, "another-key-another-key-another-key-1234", |_| {});
    assert_eq!(http.mcp(&b.url("/mcp"), Some(&forged)).await.status, 401);
}

#[actix_rt::test]
async fn an_expired_token_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let expired = forge(&b, SIGNING_KEY, |c| c.exp = c.iat - 1);
    let reply = http.mcp(&b.url("/mcp"), Some(&expired)).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("expired")
    );
}

#[actix_rt::test]
async fn a_wrong_audience_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let other = forge(&b, SIGNING_KEY, |c| {
        c.aud = "https://other.example/mcp".into()
    });
    let reply = http.mcp(&b.url("/mcp"), Some(&other)).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("another resource")
    );
}

#[actix_rt::test]
async fn a_missing_scope_gets_403_insufficient_scope() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let scopeless = forge(&b, SIGNING_KEY, |c| c.scope = "profile".into());
    let reply = http.mcp(&b.url("/mcp"), Some(&scopeless)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
}

#[actix_rt::test]
async fn a_refresh_rotates_and_a_replay_revokes_the_whole_grant() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let first = tokens(&http, &b).await;
    let refresh = |token: String| {
        let http = &http;
        let b = &b;
        async move {
            http.form(
                &b.url("/token"),
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                Some((CLIENT_ID, SECRET)),
            )
            .await
        }
    };
    let second = refresh(first["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(second.status, 200);
    let second = second.json();
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    // The grant, the request's principal, stays the same across refreshes.
    let gid = |t: &Value| {
        let payload = t["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["gid"].as_str().unwrap().to_string()
    };
    assert_eq!(gid(&second), gid(&first));
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(http.mcp(&b.url("/mcp"), Some(access)).await.status, 200);

    let replay = refresh(first["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(
        refresh(second["refresh_token"].as_str().unwrap().to_string())
            .await
            .status,
        400,
        "the rotated token died with its grant"
    );
    assert_eq!(
        http.mcp(&b.url("/mcp"), Some(access)).await.status,
        401,
        "and so did the access token"
    );
}

#[actix_rt::test]
async fn a_refresh_may_not_widen_the_scope() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let t = tokens(&http, &b).await;
    let reply = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
                ("scope", "mcp:tools admin"),
            ],
            Some((CLIENT_ID, SECRET)),
        )
        .await;
    assert_eq!(reply.json()["error"], "invalid_scope");
}

#[actix_rt::test]
async fn a_revoked_token_gets_401() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let t = tokens(&http, &b).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(http.mcp(&b.url("/mcp"), Some(access)).await.status, 200);
    let wrong_owner = http
        .form(
            &b.url("/revoke"),
            &[("token", access)],
            Some((CLIENT_ID, "not-the-secret")),
        )
        .await;
    assert_eq!(wrong_owner.status, 401);
    let revoked = http
        .form(
            &b.url("/revoke"),
            &[("token", access)],
            Some((CLIENT_ID, SECRET)),
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.json(), json!({}));
    assert_eq!(http.mcp(&b.url("/mcp"), Some(access)).await.status, 401);
    let refresh = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ],
            Some((CLIENT_ID, SECRET)),
        )
        .await;
    assert_eq!(refresh.status, 400, "the grant family is gone");
    let unknown = http
        .form(
            &b.url("/revoke"),
            &[("token", "nothing")],
            Some((CLIENT_ID, SECRET)),
        )
        .await;
    assert_eq!(
        unknown.status, 200,
        "RFC 7009: unknown tokens are not an error"
    );
}

#[actix_rt::test]
async fn the_token_endpoint_is_rate_limited_with_retry_after() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let mut limited = None;
    for i in 0..60 {
        let reply = http
            .form(
                &b.url("/token"),
                &[("grant_type", "refresh_token"), ("refresh_token", "x")],
                Some((CLIENT_ID, SECRET)),
            )
            .await;
        if reply.status == 429 {
            limited = Some((i, reply));
            break;
        }
    }
    let (count, reply) = limited.expect("a 429 within 60 requests");
    assert_eq!(count, 50, "1.7.0's limit: 50 per 15 minutes");
    assert!(reply.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(reply.json()["error"], "too_many_requests");
}

#[actix_rt::test]
async fn the_mcp_routes_are_rate_limited_too() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[("MCP_RATE_LIMIT_PER_MINUTE", "5")]).await;
    let http = Http::new();
    let access = tokens(&http, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(http.mcp(&b.url("/mcp"), Some(&access)).await.status);
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    assert_eq!(statuses[5], 429);
}

#[actix_rt::test]
async fn tokens_and_grants_survive_a_restart() {
    let gw = FakeGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap().to_string();
    let env: Vec<(&str, &str)> = vec![
        ("OPENCLAW_URL", gw.url.as_str()),
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", CLIENT_ID),
        ("MCP_CLIENT_SECRET", SECRET),
        ("OPENCLAW_MCP_DATA_DIR", dir_s.as_str()),
        ("MCP_ISSUER_URL", "http://localhost:1"),
    ];
    let http = Http::new();
    let first = HttpBridge::spawn(&[], &env).await;
    let t = tokens(&http, &first).await;
    drop(first);
    let second = HttpBridge::spawn(&[], &env).await;
    let access = t["access_token"].as_str().unwrap();
    // The issuer is fixed by MCP_ISSUER_URL, so the token's audience is still this server's.
    assert_eq!(
        http.mcp(&second.url("/mcp"), Some(access)).await.status,
        200
    );
    let refreshed = http
        .form(
            &second.url("/token"),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ],
            Some((CLIENT_ID, SECRET)),
        )
        .await;
    assert_eq!(
        refreshed.status,
        200,
        "{}",
        String::from_utf8_lossy(&refreshed.body)
    );
}

#[actix_rt::test]
async fn a_registered_public_client_needs_a_person_to_approve_it() {
    let gw = FakeGateway::start();
    let b = bridge(
        &gw,
        &[
            ("MCP_DANGEROUSLY_ALLOW_DCR", "true"),
            ("MCP_APPROVAL_PASSWORD", "open sesame please"),
        ],
    )
    .await;
    let http = Http::new();
    let registered = http
        .send(
            http.client.post(b.url("/register")).insert_header(("content-type", "application/json")),
            Some(json!({"client_name": "Claude", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}).to_string()),
        )
        .await;
    assert_eq!(
        registered.status,
        201,
        "{}",
        String::from_utf8_lossy(&registered.body)
    );
    let client_id = registered.json()["client_id"].as_str().unwrap().to_string();
    assert!(
        registered.json().get("client_secret").is_none(),
        "a public client"
    );
    let bad = http
        .send(
            http.client
                .post(b.url("/register"))
                .insert_header(("content-type", "application/json")),
            Some(json!({"redirect_uris": ["javascript:alert(1)"]}).to_string()),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid_redirect_uri");

    let v = verifier();
    let pairs: Vec<(String, String)> = authorize_params(&challenge_of(&v), CALLBACK)
        .into_iter()
        .map(|(k, val)| {
            if k == "client_id" {
                (k, client_id.clone())
            } else {
                (k, val)
            }
        })
        .collect();
    let page = authorize(&http, &b, &pairs).await;
    assert_eq!(page.status, 200, "a consent page, not a code");
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains("Claude") && html.contains("claude.ai"));
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    let consent_id = consent_id(&html);
    let wrong = http
        .form(
            &b.url("/authorize"),
            &[
                ("consent_id", &consent_id),
                ("password", "guess"),
                ("decision", "approve"),
            ],
            None,
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("location").is_none());
    let approved = http
        .form(
            &b.url("/authorize"),
            &[
                ("consent_id", &consent_id),
                ("password", "open sesame please"),
                ("decision", "approve"),
            ],
            None,
        )
        .await;
    assert_eq!(approved.status, 302);
    let code = approved.location_params()["code"].clone();
    let token = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &v),
                ("redirect_uri", CALLBACK),
                ("client_id", &client_id),
            ],
            None,
        )
        .await;
    assert_eq!(
        token.status,
        200,
        "{}",
        String::from_utf8_lossy(&token.body)
    );
    assert_eq!(
        http.get(&b.url("/.well-known/oauth-authorization-server"))
            .await
            .json()["registration_endpoint"],
        b.url("/register")
    );
}

#[actix_rt::test]
async fn task_ownership_follows_the_token_subject_across_sessions() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[]).await;
    let http = Http::new();
    let access = tokens(&http, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let first = authed_client(&b, &access).await;
    let queued = json_of(
        &first
            .call_tool(call("openclaw_chat_async", json!({"message": "keep me"})))
            .await
            .unwrap(),
    );
    let id = queued["task_id"].as_str().unwrap().to_string();
    drop(first);
    let again = authed_client(&b, &access).await;
    let seen = again
        .call_tool(call("openclaw_task_status", json!({"task_id": id})))
        .await
        .unwrap();
    assert!(!common::is_error(&seen), "{}", text(&seen));
}

#[actix_rt::test]
async fn a_session_cannot_be_used_with_another_clients_token() {
    let gw = FakeGateway::start();
    let b = bridge(
        &gw,
        &[
            ("MCP_DANGEROUSLY_ALLOW_DCR", "true"),
            ("MCP_APPROVAL_PASSWORD", "open sesame please"),
        ],
    )
    .await;
    let http = Http::new();
    // Client A: the configured one. It opens a session.
    let a = tokens(&http, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = http.mcp(&b.url("/mcp"), Some(&a)).await;
    assert_eq!(opened.status, 200);
    let session = opened.header("mcp-session-id").unwrap();
    // Client B: registered and approved by a person.
    let registered = http
        .send(
            http.client.post(b.url("/register")).insert_header(("content-type", "application/json")),
            Some(json!({"client_name": "B", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "client_secret_post"}).to_string()),
        )
        .await
        .json();
    let (b_id, b_secret) = (
        registered["client_id"].as_str().unwrap().to_string(),
        registered["client_secret"].as_str().unwrap().to_string(),
    );
    let v = verifier();
    let pairs: Vec<(String, String)> = authorize_params(&challenge_of(&v), CALLBACK)
        .into_iter()
        .map(|(k, val)| {
            if k == "client_id" {
                (k, b_id.clone())
            } else {
                (k, val)
            }
        })
        .collect();
    let page = String::from_utf8_lossy(&authorize(&http, &b, &pairs).await.body).to_string();
    let consent_id = consent_id(&page);
    let approved = http
        .form(
            &b.url("/authorize"),
            &[
                ("consent_id", &consent_id),
                ("password", "open sesame please"),
                ("decision", "approve"),
            ],
            None,
        )
        .await;
    let code = approved.location_params()["code"].clone();
    let b_token = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &v),
                ("redirect_uri", CALLBACK),
                ("client_id", &b_id),
                ("client_secret", &b_secret),
            ],
            None,
        )
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // B may not use A's session: it does not exist as far as B is concerned.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let hijack = http
        .send(
            http.client
                .post(b.url("/mcp"))
                .insert_header(("content-type", "application/json"))
                .insert_header(("accept", ACCEPT_BOTH))
                .insert_header(("mcp-session-id", session.as_str()))
                .insert_header(("mcp-protocol-version", "2025-06-18"))
                .insert_header(("authorization", format!("Bearer {b_token}"))),
            Some(list.clone()),
        )
        .await;
    assert_eq!(hijack.status, 404);
    // A still can.
    let own = http
        .send(
            http.client
                .post(b.url("/mcp"))
                .insert_header(("content-type", "application/json"))
                .insert_header(("accept", ACCEPT_BOTH))
                .insert_header(("mcp-session-id", session.as_str()))
                .insert_header(("mcp-protocol-version", "2025-06-18"))
                .insert_header(("authorization", format!("Bearer {a}"))),
            Some(list),
        )
        .await;
    assert_eq!(own.status, 200, "{}", String::from_utf8_lossy(&own.body));
}

/// Caps of pending codes (src/auth/mod.rs `PENDING_CAPS`).
const CODES_PER_ADDRESS: usize = 32;
const CODES_PER_CLIENT: usize = 256;

#[actix_rt::test]
async fn an_authorize_flood_for_the_configured_client_refuses_only_the_flooding_address() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[("TRUST_PROXY", "true")]).await;
    let http = Http::new();
    let v = verifier();
    let url = b.url(&format!(
        "/authorize?{}",
        query(&authorize_params(&challenge_of(&v), CALLBACK))
    ));
    // One address: its own cap, then refused (through the redirect, as OAuth errors go).
    let mut first_code = None;
    for i in 0..CODES_PER_ADDRESS {
        let reply = http.get_from(&url, "198.51.100.1").await;
        assert_eq!(reply.status, 302, "{i}");
        let code = reply.location_params()["code"].clone();
        first_code.get_or_insert(code);
    }
    let refused = http.get_from(&url, "198.51.100.1").await;
    assert_eq!(refused.status, 302);
    let params = refused.location_params();
    assert_eq!(params["error"], "temporarily_unavailable");
    assert_eq!(params["state"], "xyz");
    assert!(!params.contains_key("code"));
    // More addresses, past the client's cap: its oldest codes are dropped, nothing is refused.
    let mut issued = CODES_PER_ADDRESS;
    let mut last_code = String::new();
    for n in 2.. {
        if issued > CODES_PER_CLIENT + CODES_PER_ADDRESS {
            break;
        }
        let from = format!("198.51.100.{n}");
        for _ in 0..CODES_PER_ADDRESS {
            let reply = http.get_from(&url, &from).await;
            assert_eq!(reply.status, 302);
            last_code = reply.location_params()["code"].clone();
            issued += 1;
        }
    }
    // A person from another address still gets a code that works.
    let mine = verifier();
    let reply = http
        .get_from(
            &b.url(&format!(
                "/authorize?{}",
                query(&authorize_params(&challenge_of(&mine), CALLBACK))
            )),
            "203.0.113.9",
        )
        .await;
    assert_eq!(reply.status, 302);
    let code = reply.location_params()["code"].clone();
    let redeemed = redeem(&http, &b, &code, &mine).await;
    assert_eq!(
        redeemed.status,
        200,
        "{}",
        String::from_utf8_lossy(&redeemed.body)
    );
    // The flood's oldest code went to make room; its newest is still there.
    assert_eq!(
        redeem(&http, &b, &first_code.unwrap(), &v).await.status,
        400
    );
    assert_eq!(redeem(&http, &b, &last_code, &v).await.status, 200);
}

/// Registers a confidential client, has a person approve it and redeems its code; (client id,
/// secret, token response).
async fn approved_client(http: &Http, b: &HttpBridge, password: &str) -> (String, String, Value) {
    let (id, secret) = register(http, b, "In use", "client_secret_post").await;
    let secret = secret.unwrap();
    let v = verifier();
    let page = authorize(http, b, &authorize_params_for(&id, &challenge_of(&v))).await;
    assert_eq!(page.status, 200);
    let consent = consent_id(&String::from_utf8_lossy(&page.body));
    let approved = http
        .form(
            &b.url("/authorize"),
            &[
                ("consent_id", &consent),
                ("password", password),
                ("decision", "approve"),
            ],
            None,
        )
        .await;
    assert_eq!(approved.status, 302);
    let code = approved.location_params()["code"].clone();
    let t = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &v),
                ("redirect_uri", CALLBACK),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(t.status, 200, "{}", String::from_utf8_lossy(&t.body));
    (id, secret, t.json())
}

#[actix_rt::test]
async fn a_registration_flood_past_the_cap_keeps_a_client_in_use() {
    let gw = FakeGateway::start();
    let b = bridge(
        &gw,
        &[
            ("MCP_DANGEROUSLY_ALLOW_DCR", "true"),
            ("MCP_APPROVAL_PASSWORD", "open sesame please"),
            ("MCP_MAX_DCR_CLIENTS", "3"),
        ],
    )
    .await;
    let http = Http::new();
    let (id, secret, t) = approved_client(&http, &b, "open sesame please").await;
    for i in 0..6 {
        register(&http, &b, &format!("flood {i}"), "none").await;
    }
    let refreshed = http
        .form(
            &b.url("/token"),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(
        refreshed.status,
        200,
        "the oldest registration, but in use: {}",
        String::from_utf8_lossy(&refreshed.body)
    );
}

#[actix_rt::test]
async fn a_wrong_approval_password_shows_the_consent_page_again() {
    let gw = FakeGateway::start();
    let password = "open sesame please";
    let b = bridge(
        &gw,
        &[
            ("MCP_DANGEROUSLY_ALLOW_DCR", "true"),
            ("MCP_APPROVAL_PASSWORD", password),
        ],
    )
    .await;
    let http = Http::new();
    let (id, _) = register(&http, &b, "Claude", "none").await;
    let consent_page = |v: String| {
        let (http, b, id) = (&http, &b, id.clone());
        async move {
            let page = authorize(http, b, &authorize_params_for(&id, &challenge_of(&v))).await;
            assert_eq!(page.status, 200);
            consent_id(&String::from_utf8_lossy(&page.body))
        }
    };
    let decide = |consent: String, password: &'static str| {
        let (http, b) = (&http, &b);
        async move {
            http.form(
                &b.url("/authorize"),
                &[
                    ("consent_id", &consent),
                    ("password", password),
                    ("decision", "approve"),
                ],
                None,
            )
            .await
        }
    };
    let v = verifier();
    let consent = consent_page(v.clone()).await;
    let wrong = decide(consent.clone(), "guess").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        wrong.header("content-type")
    );
    let html = String::from_utf8_lossy(&wrong.body).to_string();
    assert!(html.contains("Wrong approval password."), "{html}");
    assert!(html.contains("<form method=\"post\""), "{html}");
    assert_eq!(consent_id(&html), consent, "the same request, still open");
    assert_eq!(wrong.header("x-frame-options").as_deref(), Some("DENY"));
    let right = decide(consent, "open sesame please").await;
    assert_eq!(right.status, 302);
    assert!(right.location_params().contains_key("code"));

    // Five wrong passwords end the request: a page saying so, and the right one is too late.
    let consent = consent_page(verifier()).await;
    for _ in 0..4 {
        assert_eq!(decide(consent.clone(), "guess").await.status, 401);
    }
    let fifth = decide(consent.clone(), "guess").await;
    assert_eq!(fifth.status, 403);
    assert!(
        fifth
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(String::from_utf8_lossy(&fifth.body).contains("Too many wrong approval passwords"));
    let late = decide(consent, "open sesame please").await;
    assert_eq!(late.status, 400);
    assert!(late.header("location").is_none());
}

#[actix_rt::test]
async fn bridges_sharing_a_data_directory_refuse_a_revoked_grant_within_a_second() {
    let gw = FakeGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap().to_string();
    // No MCP_TOKEN_SIGNING_KEY: both use the key kept in the shared oauth.db.
    let env: Vec<(&str, &str)> = vec![
        ("OPENCLAW_URL", gw.url.as_str()),
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", CLIENT_ID),
        ("MCP_CLIENT_SECRET", SECRET),
        ("OPENCLAW_MCP_DATA_DIR", dir_s.as_str()),
        ("MCP_ISSUER_URL", "http://localhost:1"),
    ];
    let one = HttpBridge::spawn(&[], &env).await;
    let two = HttpBridge::spawn(&[], &env).await;
    let http = Http::new();
    let second = std::time::Duration::from_secs(1);

    // Revoked on one bridge.
    let t = tokens(&http, &one).await;
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(http.mcp(&two.url("/mcp"), Some(&access)).await.status, 200);
    let revoked = http
        .form(
            &one.url("/revoke"),
            &[("token", &access)],
            Some((CLIENT_ID, SECRET)),
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert!(
        within(second, || async {
            http.mcp(&two.url("/mcp"), Some(&access)).await.status == 401
        })
        .await,
        "the other bridge refuses the revoked token within a second"
    );

    // A refresh-token replay on one bridge revokes the grant on both.
    let t = tokens(&http, &one).await;
    let rotated = refresh(&http, &one, t["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(rotated.status, 200);
    let access = rotated.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(http.mcp(&two.url("/mcp"), Some(&access)).await.status, 200);
    let replay = refresh(&http, &one, t["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert!(
        within(second, || async {
            http.mcp(&two.url("/mcp"), Some(&access)).await.status == 401
        })
        .await,
        "the other bridge refuses the replayed grant's token within a second"
    );
}

#[actix_rt::test]
async fn token_failures_count_per_address_and_successes_per_client() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, &[("TRUST_PROXY", "true")]).await;
    let http = Http::new();
    let (a, other) = (Some("198.51.100.7"), Some("198.51.100.8"));
    let mut current = tokens(&http, &b).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Successes do not spend the address's failure budget (50).
    for i in 0..55 {
        let reply = refresh(&http, &b, &current, a).await;
        assert_eq!(reply.status, 200, "refresh {i}");
        current = reply.json()["refresh_token"].as_str().unwrap().to_string();
    }
    let mut failures = 0;
    loop {
        let reply = refresh(&http, &b, "not-a-refresh-token", a).await;
        if reply.status == 429 {
            assert!(reply.header("retry-after").is_some());
            break;
        }
        assert_eq!(reply.json()["error"], "invalid_grant");
        failures += 1;
        assert!(failures <= 50, "refused after 50 failures");
    }
    assert_eq!(failures, 50);
    // The failing address is refused, before its request is looked at: its token is not spent.
    assert_eq!(refresh(&http, &b, &current, a).await.status, 429);
    // Another address of the same client is not.
    let reply = refresh(&http, &b, &current, other).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[cfg(unix)]
fn modes_under(dir: &std::path::Path) -> Vec<(String, u32, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let name = entry.path().display().to_string();
        out.push((name, meta.permissions().mode() & 0o777, meta.is_dir()));
        if meta.is_dir() {
            out.extend(modes_under(&entry.path()));
        }
    }
    out
}

#[cfg(unix)]
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    let entries = modes_under(dir);
    for (name, mode, is_dir) in &entries {
        assert_eq!(*mode, if *is_dir { 0o700 } else { 0o600 }, "{name}");
    }
    for file in ["oauth.db", "oauth.db-wal", "oauth.db-shm", "tasks.db"] {
        assert!(
            entries
                .iter()
                .any(|(n, _, _)| n.ends_with(&format!("/{file}"))),
            "{file} in {entries:?}"
        );
    }
}

#[cfg(unix)]
#[actix_rt::test]
async fn the_data_directory_is_private_even_when_it_was_not() {
    use std::os::unix::fs::PermissionsExt;
    let gw = FakeGateway::start();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let dir_s = dir.to_str().unwrap().to_string();
    let env: Vec<(&str, &str)> = vec![
        ("OPENCLAW_URL", gw.url.as_str()),
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", CLIENT_ID),
        ("MCP_CLIENT_SECRET", SECRET),
        ("OPENCLAW_MCP_DATA_DIR", dir_s.as_str()),
    ];
    let http = Http::new();
    // A new directory: everything in it, -wal and -shm included, is private from the start.
    let mut first = HttpBridge::spawn(&[], &env).await;
    tokens(&http, &first).await;
    assert_private(&dir);
    first.signal("TERM");
    assert_eq!(
        first.wait_exit(std::time::Duration::from_secs(20)).await,
        Some(0)
    );

    // Loosened by hand (or an older version, or a restore): tightened at the next start.
    let loosen = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::write(dir.join("oauth.db-wal"), b"").ok();
    for (name, _, is_dir) in modes_under(&dir) {
        loosen(
            std::path::Path::new(&name),
            if is_dir { 0o755 } else { 0o644 },
        );
    }
    std::fs::write(dir.join("notes.txt"), b"copied here").unwrap();
    loosen(&dir.join("notes.txt"), 0o644);
    loosen(&dir, 0o755);
    let second = HttpBridge::spawn(&[], &env).await;
    tokens(&http, &second).await;
    assert_private(&dir);
    assert!(
        second
            .logs()
            .contains("data directory permissions tightened")
    );
}
