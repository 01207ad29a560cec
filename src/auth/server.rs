//! The authorization server's routes: metadata (RFC 8414, RFC 9728), `/authorize` (GET and
//! POST), the consent page, `/token`, `/revoke` (RFC 7009) and `/register` (RFC 7591).
//!
//! Everything 1.7.0 got wrong is closed here: redirect URIs are exact (loopback ports may
//! differ) and never `javascript:`/`data:`/remote `http:`; PKCE S256 with a 43–128 character
//! challenge is required; unknown scopes are refused; `state` and an existing query on the
//! redirect URI are kept; the `resource` is bound into the token; codes are single-use, live ten
//! minutes and are burned by any failed redemption; the token request's `redirect_uri` must be
//! the authorization request's; client secrets are compared in constant time and accepted by
//! POST body or HTTP Basic; wrong client credentials get 401; refresh tokens rotate and a replay
//! revokes the whole grant; revocation is owner-checked and kills the grant family.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse, ResponseError,
    http::{Method, StatusCode, header},
    web,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use url::Url;

use super::{
    Auth, Authorization, CODE_TTL, CONSENT_TTL, PendingCode, PendingConsent,
    clients::{Client, check_redirect_uris},
    error::OAuthError,
    flight::store_failed,
    middleware::{Limit, RateKey, RateLimiter},
    pending::{PendingError, Replay},
    pkce,
    store::{RefreshOutcome, RegisteredClient, Registration},
    tokens::{Claims, SCOPE, hash, random_token},
};
use crate::{
    net::{AddrBucket, ClientAddr, HtmlPage},
    util::now_ms,
};

/// Largest form or JSON body on the OAuth routes.
const MAX_BODY: usize = 64 * 1024;
/// Wrong approval passwords that end a consent page (the `Limit::Consent` rate limit counts
/// attempts per address across pages).
const MAX_PASSWORD_ATTEMPTS: u32 = 5;

type Params = HashMap<String, String>;

fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ClientAddr>()
        .and_then(|c| c.0)
        .or_else(|| req.peer_addr().map(|a| a.ip()))
}

/// Parses form-encoded parameters; a repeated parameter is an error (RFC 6749 §3.1).
fn parse_form(bytes: &[u8]) -> Result<Params, OAuthError> {
    let mut params = Params::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} appears more than once"
            )));
        }
    }
    Ok(params)
}

/// The parameters of a POST body: form-encoded, or JSON (1.7.0 accepted both).
fn body_params(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    if body.len() > MAX_BODY {
        return Err(OAuthError::invalid_request("request body too large"));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return parse_form(body);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid JSON"))?;
    let Value::Object(map) = value else {
        return Err(OAuthError::invalid_request(
            "the body must be a JSON object",
        ));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect())
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    response
}

/// A 302 to `redirect_uri` with `params` added to its query (an existing query is kept).
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let location = match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in params {
                    query.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    };
    no_store(
        HttpResponse::Found()
            .insert_header((header::LOCATION, location))
            .finish(),
    )
}

/// Metadata and the token endpoints are read by browser-based clients too (1.7.0's SDK answered
/// them with `Access-Control-Allow-Origin: *`); they carry no cookies, so this is safe.
fn open_cors(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, MCP-Protocol-Version",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish()
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .json(json!({"error": "method_not_allowed", "error_description": format!("use {allow}")}))
}

// ------------------------------------------------------------------------------------------------
// Metadata

fn as_metadata(auth: &Auth) -> Value {
    let i = &auth.issuer;
    let auth_methods = json!(["client_secret_basic", "client_secret_post", "none"]);
    let mut doc = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "revocation_endpoint": format!("{i}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": [SCOPE],
        "authorization_response_iss_parameter_supported": true,
    });
    if auth.allow_dcr {
        doc["registration_endpoint"] = json!(format!("{i}/register"));
    }
    if auth.cimd.enabled() {
        doc["client_id_metadata_document_supported"] = json!(true);
    }
    doc
}

fn pr_metadata(auth: &Auth, resource: &str) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": [auth.issuer],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "OpenClaw MCP bridge",
    })
}

// ------------------------------------------------------------------------------------------------
// /authorize

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn consent_page(
    auth: &Auth,
    id: &str,
    consent: &PendingConsent,
    problem: Option<&str>,
) -> HttpResponse {
    let request = &consent.request;
    let host = Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let status = if problem.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let problem = problem
        .map(|p| format!("<p class=\"problem\">{}</p>", html_escape(p)))
        .unwrap_or_default();
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Approve access to OpenClaw</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
.problem{{color:#b00020}}code{{background:#eee;padding:0 .2rem}}button{{margin-right:.5rem}}</style></head>
<body><h1>Approve access to OpenClaw</h1>
<p><strong>{name}</strong> asks to use this OpenClaw bridge's tools (scope <code>{scope}</code>).
After approval your browser goes to <strong>{host}</strong>.</p>
<p>Only approve if you started this connection yourself.</p>{problem}
<form method="post" action="{action}">
<input type="hidden" name="consent_id" value="{id}">
<p><label>Approval password <input type="password" name="password" autocomplete="current-password" autofocus></label></p>
<p><button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form></body></html>"#,
        name = html_escape(&request.client.name),
        scope = html_escape(&request.scope),
        host = html_escape(&host),
        problem = problem,
        action = html_escape(&format!("{}/authorize", auth.prefix)),
        id = html_escape(id),
    );
    html_page(status, page)
}

/// A page for a person: HTML with the headers that keep it out of frames and caches, marked
/// [`HtmlPage`] so that the JSON error layer leaves a 4xx page as it is.
fn html_page(status: StatusCode, page: String) -> HttpResponse {
    let mut response = no_store(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("x-frame-options", "DENY"))
            .insert_header((
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ))
            .insert_header(("referrer-policy", "no-referrer"))
            .body(page),
    );
    response.extensions_mut().insert(HtmlPage);
    response
}

/// The page after too many wrong approval passwords: the request is over.
fn too_many_attempts_page() -> HttpResponse {
    html_page(
        StatusCode::FORBIDDEN,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Access not approved</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}</style></head>
<body><h1>Access not approved</h1>
<p>Too many wrong approval passwords. Start the connection again from your client.</p>
</body></html>"#
            .to_string(),
    )
}

impl Auth {
    /// A new code for `a`, asked for from `addr`; `None` when that address holds too many.
    async fn issue_code(
        &self,
        a: &Authorization,
        addr: Option<AddrBucket>,
    ) -> Result<Option<String>, OAuthError> {
        let code = random_token();
        let now = Instant::now();
        let expires = now + CODE_TTL;
        let pending = PendingCode {
            client_id: a.client.id.clone(),
            redirect_uri: a.redirect_uri.clone(),
            redirect_given: a.redirect_given,
            challenge: a.challenge.clone(),
            scope: a.scope.clone(),
            resource: a.resource.clone(),
            expires,
        };
        let inserted = self
            .put_code(hash(&code), addr, pending, CODE_TTL)
            .await
            .map_err(store_failed)?;
        Ok(match inserted {
            Ok(0) => Some(code),
            Ok(dropped) => {
                tracing::warn!(client_id = %a.client.id, dropped, "pending codes past their cap: the oldest were dropped");
                Some(code)
            }
            Err(PendingError::AddressFull) => {
                tracing::warn!(client_id = %a.client.id, addr = ?addr.map(|a| a.to_string()), "too many pending codes from one address; refused");
                None
            }
        })
    }

    fn code_redirect(
        &self,
        redirect_uri: &str,
        code: Option<String>,
        state: Option<&str>,
    ) -> HttpResponse {
        let mut params: Vec<(&str, &str)> = Vec::new();
        let code = match &code {
            Some(code) => code.as_str(),
            None => {
                params.push(("error", "temporarily_unavailable"));
                params.push((
                    "error_description",
                    "too many pending authorizations from this address",
                ));
                ""
            }
        };
        if !code.is_empty() {
            params.push(("code", code));
        }
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        redirect(redirect_uri, &params)
    }

    /// Checks an authorization request; `Ok` means it may be granted (or shown for consent).
    async fn check_authorization(&self, p: &Params) -> Result<Authorization, HttpResponse> {
        let client_id = p
            .get("client_id")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("client_id is required").error_response())?;
        let client = self
            .client(client_id)
            .await
            .map_err(|e| e.error_response())?
            .ok_or_else(|| {
                let mut e = OAuthError::invalid_client("Invalid client_id");
                e.status = StatusCode::BAD_REQUEST;
                e.error_response()
            })?;
        let redirect_uri = client
            .redirect_uri(p.get("redirect_uri").map(String::as_str))
            .map_err(|e| e.error_response())?;
        // From here on, errors go back to the client through the redirect.
        let state = p.get("state").cloned();
        let fail = |error: &str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(s) = &state {
                params.push(("state", s));
            }
            params.push(("iss", &self.issuer));
            redirect(&redirect_uri, &params)
        };
        if p.get("response_type").map(String::as_str) != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        let challenge = match p.get("code_challenge") {
            Some(c) if pkce::well_formed(c) => c.clone(),
            _ => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge is required: 43 to 128 characters of [A-Za-z0-9-._~]",
                ));
            }
        };
        if p.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        let scope = match p.get("scope").map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => SCOPE.to_string(),
            Some(s) if s.split(' ').filter(|x| !x.is_empty()).all(|x| x == SCOPE) => {
                SCOPE.to_string()
            }
            Some(_) => return Err(fail("invalid_scope", "the only scope is mcp:tools")),
        };
        let resource = match p.get("resource") {
            None => self.resource().to_string(),
            Some(r) => match self.canonical_resource(r) {
                Some(r) => r,
                None => {
                    return Err(fail(
                        "invalid_target",
                        "resource must be this server's MCP endpoint",
                    ));
                }
            },
        };
        Ok(Authorization {
            client,
            redirect_given: p.contains_key("redirect_uri"),
            redirect_uri,
            state,
            challenge,
            scope,
            resource,
        })
    }

    /// The accepted form of a `resource` parameter, if it names this server.
    fn canonical_resource(&self, given: &str) -> Option<String> {
        let trimmed = given.trim_end_matches('/');
        self.resources
            .iter()
            .find(|r| r.as_str() == trimmed)
            .cloned()
    }
}

async fn authorize(req: HttpRequest, body: web::Bytes, auth: web::Data<Arc<Auth>>) -> HttpResponse {
    if let Some(refused) = auth.rate_limit(Limit::Authorize, client_ip(&req)) {
        return refused;
    }
    let params = match *req.method() {
        Method::GET => parse_form(req.query_string().as_bytes()),
        Method::POST => body_params(&req, &body),
        _ => return method_not_allowed("GET, POST"),
    };
    let params = match params {
        Ok(p) => p,
        Err(e) => return e.error_response(),
    };
    if req.method() == Method::POST && params.contains_key("consent_id") {
        return consent_decision(&req, &params, &auth).await;
    }
    let addr = client_ip(&req).map(AddrBucket::of);
    let a = match auth.check_authorization(&params).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    if a.client.configured {
        // The pre-configured confidential client is approved at once, as in 1.7.0: its secret
        // is still needed at /token.
        let code = match auth.issue_code(&a, addr).await {
            Ok(code) => code,
            Err(e) => return e.error_response(),
        };
        if code.is_some() {
            tracing::info!(client_id = %a.client.id, "authorization code issued");
        }
        return auth.code_redirect(&a.redirect_uri, code, a.state.as_deref());
    }
    if auth.approval_password.is_none() {
        return OAuthError::unauthorized_client(
            "this client needs an approval password, which is not configured",
        )
        .error_response();
    }
    let id = random_token();
    let client_id = a.client.id.clone();
    let consent = PendingConsent {
        request: a,
        failed_attempts: 0,
    };
    let page = consent_page(&auth, &id, &consent, None);
    let inserted = match auth.put_consent(id, addr, consent, CONSENT_TTL).await {
        Ok(inserted) => inserted,
        Err(e) => return store_failed(e).error_response(),
    };
    match inserted {
        Ok(0) => {}
        Ok(dropped) => {
            tracing::warn!(client_id = %client_id, dropped, "open consent pages past their cap: the oldest were dropped");
        }
        Err(PendingError::AddressFull) => {
            tracing::warn!(client_id = %client_id, "too many open consent pages from one address; refused");
            return OAuthError::temporarily_unavailable(
                "too many pending authorizations from this address",
            )
            .error_response();
        }
    }
    page
}

async fn consent_decision(req: &HttpRequest, params: &Params, auth: &Auth) -> HttpResponse {
    let id = params.get("consent_id").cloned().unwrap_or_default();
    let expired = || {
        OAuthError::invalid_request("this approval page expired; start the connection again")
            .error_response()
    };
    let consent = match auth.consent(&id).await {
        Ok(Some(consent)) => consent,
        Ok(None) => return expired(),
        Err(e) => return e.error_response(),
    };
    let with_state = |mut p: Vec<(&'static str, String)>| {
        if let Some(s) = &consent.request.state {
            p.push(("state", s.clone()));
        }
        p.push(("iss", auth.issuer.clone()));
        p
    };
    if params.get("decision").map(String::as_str) == Some("deny") {
        if let Err(e) = auth.close_consent(&id).await {
            tracing::warn!(error = %e, "OAuth store failed");
        }
        let p = with_state(vec![
            ("error", "access_denied".to_string()),
            ("error_description", "the request was denied".to_string()),
        ]);
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return redirect(&consent.request.redirect_uri, &refs);
    }
    if let Some(refused) = auth.rate_limit(Limit::Consent, client_ip(req)) {
        return refused;
    }
    let given = params.get("password").map(String::as_str).unwrap_or("");
    let right = auth
        .approval_password
        .as_ref()
        .is_some_and(|p| super::tokens::ct_eq(p.expose().as_bytes(), given.as_bytes()));
    if !right {
        let attempts = match auth.consent_failed(&id, MAX_PASSWORD_ATTEMPTS).await {
            Ok(attempts) => attempts,
            Err(e) => return store_failed(e).error_response(),
        };
        tracing::warn!(client_id = %consent.request.client.id, attempts, "wrong approval password");
        if attempts >= MAX_PASSWORD_ATTEMPTS {
            return too_many_attempts_page();
        }
        return consent_page(auth, &id, &consent, Some("Wrong approval password."));
    }
    // Closed before the code is issued: of two approvals of one page (two tabs, two
    // replicas), one goes on.
    match auth.close_consent(&id).await {
        Ok(true) => {}
        Ok(false) => return expired(),
        Err(e) => return store_failed(e).error_response(),
    }
    let a = &consent.request;
    let code = match auth.issue_code(a, client_ip(req).map(AddrBucket::of)).await {
        Ok(code) => code,
        Err(e) => return e.error_response(),
    };
    if code.is_some() {
        tracing::info!(client_id = %a.client.id, "client approved; authorization code issued");
        auth.touch_client(&a.client).await;
    }
    auth.code_redirect(&a.redirect_uri, code, a.state.as_deref())
}

// ------------------------------------------------------------------------------------------------
// Client authentication at /token and /revoke

struct Authenticated {
    client: Client,
}

impl Auth {
    async fn authenticate_client(
        &self,
        req: &HttpRequest,
        params: &Params,
    ) -> Result<Authenticated, OAuthError> {
        let basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("basic")
                    .then(|| rest.trim().to_string())
            });
        let (id, secret, via_basic) = match basic {
            Some(encoded) => {
                let decoded = STANDARD
                    .decode(encoded)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        OAuthError::invalid_client("Malformed Basic credentials").basic()
                    })?;
                let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                    OAuthError::invalid_client("Malformed Basic credentials").basic()
                })?;
                let unescape = |s: &str| -> String {
                    url::form_urlencoded::parse(s.as_bytes())
                        .next()
                        .map(|(k, _)| k.to_string())
                        .unwrap_or_default()
                };
                if params.contains_key("client_secret") {
                    return Err(OAuthError::invalid_request(
                        "use one client authentication method, not two",
                    ));
                }
                let id = unescape(id);
                if params.get("client_id").is_some_and(|b| b != &id) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the Basic credentials",
                    ));
                }
                (id, Some(unescape(secret)), true)
            }
            None => (
                params
                    .get("client_id")
                    .cloned()
                    .ok_or_else(|| OAuthError::invalid_client("client_id is required"))?,
                params.get("client_secret").cloned(),
                false,
            ),
        };
        let wrap = |e: OAuthError| if via_basic { e.basic() } else { e };
        let client = self
            .client(&id)
            .await?
            .ok_or_else(|| wrap(OAuthError::invalid_client("Invalid client_id")))?;
        if client.is_confidential() && secret.is_none() {
            return Err(wrap(OAuthError::invalid_client(
                "Client secret is required",
            )));
        }
        if !client.secret_matches(secret.as_deref()) {
            tracing::warn!(client_id = %id, "client authentication failed");
            return Err(wrap(OAuthError::invalid_client("Invalid client_secret")));
        }
        Ok(Authenticated { client })
    }
}

// ------------------------------------------------------------------------------------------------
// /token

impl Auth {
    async fn issue_tokens(
        &self,
        client_id: &str,
        grant_id: String,
        scope: String,
        resource: String,
    ) -> Result<HttpResponse, OAuthError> {
        let refresh = random_token();
        let now_ms = now_ms();
        let expires_at = now_ms + self.refresh_ttl.as_millis() as i64;
        let now = Auth::now_secs();
        let access = self
            .sign(&Claims {
                iss: self.issuer.clone(),
                aud: resource,
                sub: client_id.to_string(),
                scope: scope.clone(),
                exp: now + self.access_ttl.as_secs(),
                iat: now,
                jti: uuid::Uuid::new_v4().to_string(),
                gid: grant_id.clone(),
            })
            .ok_or_else(|| {
                tracing::error!("no signing key: the shared OAuth store was never reached");
                OAuthError::server_error()
            })?;
        // A registered client given tokens is in use: never dropped for a new one.
        self.store
            .add_refresh(&refresh, &grant_id, expires_at, client_id, now_ms)
            .await
            .map_err(store_failed)?;
        Ok(no_store(HttpResponse::Ok().json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl.as_secs(),
            "refresh_token": refresh,
            "scope": scope,
        }))))
    }

    async fn code_grant(&self, client: &Client, p: &Params) -> Result<HttpResponse, OAuthError> {
        let code = p
            .get("code")
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        // Any redemption attempt burns the code, successful or not.
        let code_hash = hash(code);
        let (pending, replay) = self.take_code(&code_hash).await.map_err(store_failed)?;
        let Some(pending) = pending else {
            // RFC 6749 §4.1.2: a code used twice revokes what its first use issued.
            match replay {
                Replay::Revoke(grant) => {
                    self.revoke(&grant).await?;
                    tracing::warn!(client_id = %client.id, "authorization code replayed; its grant was revoked");
                }
                Replay::Pending => {
                    tracing::warn!(client_id = %client.id, "authorization code replayed during its redemption; its grant will be revoked");
                }
                Replay::Unknown => {}
            }
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        };
        let outcome = self.redeem(client, p, pending, &code_hash).await;
        if outcome.is_err() {
            self.fail_code(&code_hash).await;
        }
        outcome
    }

    /// The checks and the grant of a code taken from the pending table.
    async fn redeem(
        &self,
        client: &Client,
        p: &Params,
        pending: PendingCode,
        code_hash: &str,
    ) -> Result<HttpResponse, OAuthError> {
        if pending.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "Authorization code was not issued to this client",
            ));
        }
        // RFC 6749 §4.1.3: required, and identical, when the authorization request had one.
        let redirect_ok = match p.get("redirect_uri") {
            Some(uri) => uri == &pending.redirect_uri,
            None => !pending.redirect_given,
        };
        if !redirect_ok {
            return Err(OAuthError::invalid_grant(
                "redirect_uri must be the one of the authorization request",
            ));
        }
        let verifier = p
            .get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_grant("code_verifier is required"))?;
        if !pkce::verify(verifier, &pending.challenge) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the challenge",
            ));
        }
        if let Some(resource) = p.get("resource")
            && self.canonical_resource(resource).as_deref() != Some(pending.resource.as_str())
        {
            return Err(OAuthError::invalid_target(
                "resource differs from the authorization request",
            ));
        }
        let (client_id, scope, resource) = (
            client.id.clone(),
            pending.scope.clone(),
            pending.resource.clone(),
        );
        let now = now_ms();
        let grant_id = self
            .store
            .create_grant(&client_id, &scope, &resource, now)
            .await
            .map_err(store_failed)?;
        let replayed = self.finish_code(code_hash, &grant_id).await;
        if replayed {
            self.revoke(&grant_id).await?;
            tracing::warn!(client_id = %client.id, "authorization code replayed during its redemption; its grant was revoked");
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        }
        tracing::info!(client_id = %client.id, "tokens issued for an authorization code");
        self.issue_tokens(&client.id, grant_id, pending.scope, pending.resource)
            .await
    }

    async fn refresh_grant(&self, client: &Client, p: &Params) -> Result<HttpResponse, OAuthError> {
        let token = p
            .get("refresh_token")
            .cloned()
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let outcome = self
            .store
            .use_refresh(&token, &client.id, now_ms())
            .await
            .map_err(store_failed)?;
        let grant = match outcome {
            RefreshOutcome::Valid(grant) => grant,
            RefreshOutcome::Invalid => {
                return Err(OAuthError::invalid_grant("Invalid refresh token"));
            }
            RefreshOutcome::WrongClient => {
                return Err(OAuthError::invalid_grant(
                    "Refresh token was not issued to this client",
                ));
            }
            RefreshOutcome::Replayed(grant) => {
                self.mark_revoked(&grant);
                tracing::warn!(client_id = %client.id, "refresh token replayed; its grant was revoked");
                return Err(OAuthError::invalid_grant(
                    "Refresh token already used; the whole grant has been revoked",
                ));
            }
        };
        if let Some(scope) = p.get("scope")
            && !scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .all(|s| grant.scope.split(' ').any(|g| g == s))
        {
            return Err(OAuthError::invalid_scope(
                "a refresh may not widen the grant's scope",
            ));
        }
        if let Some(resource) = p.get("resource")
            && self.canonical_resource(resource).as_deref() != Some(grant.resource.as_str())
        {
            return Err(OAuthError::invalid_target(
                "a refresh may not change the resource",
            ));
        }
        let scope = p
            .get("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or(grant.scope.clone());
        self.issue_tokens(&client.id, grant.id, scope, grant.resource)
            .await
    }
}

/// `/token`. Failures count per address ([`Limit::TokenFailure`], checked before and counted
/// after), so one address failing locks out nobody else; successes count per client
/// ([`Limit::TokenClient`]), checked once the client has authenticated and before the grant is
/// used (a refused request must not burn a code or rotate a refresh token away), counted once it
/// succeeded.
async fn token(req: HttpRequest, body: web::Bytes, auth: web::Data<Arc<Auth>>) -> HttpResponse {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let ip = client_ip(&req);
    if let Err(retry) = auth.limiter.peek(Limit::TokenFailure, RateKey::addr(ip)) {
        tracing::warn!(client = %ClientAddr(ip), "token failure limit reached");
        return open_cors(RateLimiter::refuse(Limit::TokenFailure, retry));
    }
    let mut client_id = None;
    let outcome = async {
        let params = body_params(&req, &body)?;
        let Authenticated { client } = auth.authenticate_client(&req, &params).await?;
        let key = Some(RateKey::Client(client.id.clone()));
        if let Err(retry) = auth.limiter.peek(Limit::TokenClient, key) {
            tracing::warn!(client_id = %client.id, "token limit of this client reached");
            return Err(OAuthError::too_many_requests(
                Limit::TokenClient.describe(),
                retry,
            ));
        }
        client_id = Some(client.id.clone());
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => auth.code_grant(&client, &params).await,
            Some("refresh_token") => auth.refresh_grant(&client, &params).await,
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some(_) => Err(OAuthError::unsupported_grant_type()),
        }
    }
    .await;
    match &outcome {
        Ok(_) => {
            // Already peeked: the tokens are issued and must reach the client either way.
            let _ = auth
                .limiter
                .check(Limit::TokenClient, client_id.map(RateKey::Client));
        }
        Err(e) if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS => {
            let _ = auth.limiter.check(Limit::TokenFailure, RateKey::addr(ip));
        }
        Err(_) => {}
    }
    open_cors(outcome.unwrap_or_else(|e| e.error_response()))
}

// ------------------------------------------------------------------------------------------------
// /revoke

async fn revoke(req: HttpRequest, body: web::Bytes, auth: web::Data<Arc<Auth>>) -> HttpResponse {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    if let Some(refused) = auth.rate_limit(Limit::Revoke, client_ip(&req)) {
        return open_cors(refused);
    }
    let outcome = async {
        let params = body_params(&req, &body)?;
        let Authenticated { client } = auth.authenticate_client(&req, &params).await?;
        let token = params
            .get("token")
            .cloned()
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let by_refresh = auth
            .store
            .grant_by_refresh(&token)
            .await
            .map_err(store_failed)?;
        let grant = match by_refresh {
            Some(grant) => Some((grant.id, grant.client_id)),
            // An access token: its signature proves where it came from; expiry does not matter.
            None => auth
                .keys
                .read()
                .map_err(|_| OAuthError::server_error())?
                .verify(&token, &auth.issuer, &auth.resources, 0)
                .ok()
                .map(|c| (c.gid, c.sub)),
        };
        // RFC 7009: only the client a token was issued to may revoke it; anything else is
        // answered 200 without effect, so that token validity cannot be probed.
        if let Some((gid, owner)) = grant
            && owner == client.id
        {
            auth.revoke(&gid).await?;
            tracing::info!(client_id = %client.id, "grant revoked");
        }
        Ok::<_, OAuthError>(no_store(HttpResponse::Ok().json(json!({}))))
    }
    .await;
    open_cors(outcome.unwrap_or_else(|e| e.error_response()))
}

// ------------------------------------------------------------------------------------------------
// /register

async fn register(req: HttpRequest, body: web::Bytes, auth: web::Data<Arc<Auth>>) -> HttpResponse {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    if let Some(refused) = auth.rate_limit(Limit::Register, client_ip(&req)) {
        return open_cors(refused);
    }
    let outcome = async {
        if body.len() > MAX_BODY {
            return Err(OAuthError::invalid_client_metadata("metadata too large"));
        }
        let meta: Value = serde_json::from_slice(&body)
            .map_err(|_| OAuthError::invalid_client_metadata("the body must be a JSON object"))?;
        let Value::Object(mut meta) = meta else {
            return Err(OAuthError::invalid_client_metadata("the body must be a JSON object"));
        };
        let redirect_uris: Vec<String> = match meta.get("redirect_uris") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| OAuthError::invalid_redirect_uri("redirect_uris must be strings"))?,
            _ => return Err(OAuthError::invalid_redirect_uri("redirect_uris is required")),
        };
        if redirect_uris.len() > 10 {
            return Err(OAuthError::invalid_redirect_uri("at most 10 redirect_uris"));
        }
        check_redirect_uris(&redirect_uris)?;
        let auth_method = match meta.get("token_endpoint_auth_method") {
            None => "client_secret_basic".to_string(),
            Some(Value::String(m)) if matches!(m.as_str(), "none" | "client_secret_post" | "client_secret_basic") => m.clone(),
            Some(_) => {
                return Err(OAuthError::invalid_client_metadata(
                    "token_endpoint_auth_method must be none, client_secret_post or client_secret_basic",
                ));
            }
        };
        for (field, allowed) in [
            ("grant_types", &["authorization_code", "refresh_token"][..]),
            ("response_types", &["code"][..]),
        ] {
            if let Some(v) = meta.get(field) {
                let ok = v.as_array().is_some_and(|a| {
                    a.iter().all(|x| x.as_str().is_some_and(|s| allowed.contains(&s)))
                });
                if !ok {
                    return Err(OAuthError::invalid_client_metadata(format!(
                        "{field} may only contain {}",
                        allowed.join(", ")
                    )));
                }
            }
        }
        let client_name = match meta.get("client_name") {
            None => None,
            Some(Value::String(n)) if n.chars().count() <= 200 => Some(n.clone()),
            Some(_) => return Err(OAuthError::invalid_client_metadata("client_name must be a string of at most 200 characters")),
        };
        let client_id = uuid::Uuid::new_v4().to_string();
        let secret = (auth_method != "none").then(|| {
            super::tokens::random_bytes(32)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        let registered = RegisteredClient {
            client_id: client_id.clone(),
            secret_hash: secret.as_deref().map(hash),
            client_name,
            redirect_uris,
            auth_method: auth_method.clone(),
        };
        let max = auth.max_dcr_clients;
        let now = now_ms();
        // Used within an access token's life: a token of it may still be in use.
        let recent = now - auth.access_ttl.as_millis() as i64;
        let stored = auth
            .store
            .register_client(&registered, max, now, recent)
            .await
            .map_err(store_failed)?;
        if stored == Registration::Full {
            tracing::warn!(max, "client registration refused: every registered client is in use");
            return Err(OAuthError::temporarily_unavailable(
                "the registration limit is reached by clients in use; try again later",
            ));
        }
        tracing::info!(client_id = %client_id, auth_method = %auth_method, "client registered");
        meta.insert("client_id".into(), json!(client_id));
        meta.insert("client_id_issued_at".into(), json!(now / 1000));
        meta.insert("token_endpoint_auth_method".into(), json!(auth_method));
        meta.insert("grant_types".into(), json!(["authorization_code", "refresh_token"]));
        meta.insert("response_types".into(), json!(["code"]));
        if let Some(secret) = secret {
            meta.insert("client_secret".into(), json!(secret));
            meta.insert("client_secret_expires_at".into(), json!(0));
        }
        Ok(no_store(HttpResponse::Created().json(Value::Object(meta))))
    }
    .await;
    open_cors(outcome.unwrap_or_else(|e| e.error_response()))
}

// ------------------------------------------------------------------------------------------------
// Routes

/// Mounts the OAuth routes (at the root and, when the issuer has a path, under it too, so that
/// a reverse proxy may strip the prefix or not).
pub fn configure(auth: Arc<Auth>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let data = web::Data::new(auth.clone());
        let prefixes: Vec<String> = if auth.prefix.is_empty() {
            vec![String::new()]
        } else {
            vec![String::new(), auth.prefix.clone()]
        };
        cfg.app_data(data.clone());
        let as_doc = as_metadata(&auth);
        let prm_issuer = pr_metadata(&auth, &auth.issuer);
        let prm_mcp = pr_metadata(&auth, &format!("{}/mcp", auth.issuer));
        let prm_sse = pr_metadata(&auth, &format!("{}/sse", auth.issuer));
        let json_route = |doc: Value| {
            web::get().to(move || {
                let doc = doc.clone();
                async move { open_cors(HttpResponse::Ok().json(doc)) }
            })
        };
        let p = auth.prefix.clone();
        // RFC 8414 §3: for an issuer with a path, the path goes after the well-known name.
        let mut as_paths = vec![
            "/.well-known/oauth-authorization-server".to_string(),
            format!("{p}/.well-known/oauth-authorization-server"),
        ];
        if !p.is_empty() {
            as_paths.push(format!("/.well-known/oauth-authorization-server{p}"));
        }
        as_paths.dedup();
        for path in as_paths {
            cfg.route(&path, json_route(as_doc.clone()));
            cfg.route(&path, web::method(Method::OPTIONS).to(preflight));
        }
        let mut prm_paths = vec![
            (
                format!("{p}/.well-known/oauth-protected-resource"),
                prm_issuer.clone(),
            ),
            (
                format!("{p}/.well-known/oauth-protected-resource/mcp"),
                prm_mcp.clone(),
            ),
            (
                format!("{p}/.well-known/oauth-protected-resource/sse"),
                prm_sse.clone(),
            ),
        ];
        if !p.is_empty() {
            prm_paths.push((
                format!("/.well-known/oauth-protected-resource{p}"),
                prm_issuer,
            ));
            prm_paths.push((
                format!("/.well-known/oauth-protected-resource{p}/mcp"),
                prm_mcp.clone(),
            ));
            prm_paths.push((
                format!("/.well-known/oauth-protected-resource{p}/sse"),
                prm_sse,
            ));
            prm_paths.push((
                "/.well-known/oauth-protected-resource/mcp".to_string(),
                prm_mcp,
            ));
        }
        for (path, doc) in prm_paths {
            cfg.route(&path, json_route(doc));
            cfg.route(&path, web::method(Method::OPTIONS).to(preflight));
        }
        for prefix in prefixes {
            cfg.route(&format!("{prefix}/authorize"), web::route().to(authorize));
            let token_path = format!("{prefix}/token");
            cfg.route(&token_path, web::method(Method::OPTIONS).to(preflight));
            cfg.route(&token_path, web::route().to(token));
            let revoke_path = format!("{prefix}/revoke");
            cfg.route(&revoke_path, web::method(Method::OPTIONS).to(preflight));
            cfg.route(&revoke_path, web::route().to(revoke));
            if auth.allow_dcr {
                let register_path = format!("{prefix}/register");
                cfg.route(&register_path, web::method(Method::OPTIONS).to(preflight));
                cfg.route(&register_path, web::route().to(register));
            }
        }
    }
}
