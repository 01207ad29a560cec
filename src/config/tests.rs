//! Unit tests of the configuration: layering, names in messages, every setting's rules.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use clap::Parser;

use super::*;
use crate::cli::Cli;

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut argv = vec!["openclaw-mcp"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_from(&cli, |k| env.get(k).cloned())
}

fn err(args: &[&str], env: &[(&str, &str)]) -> String {
    load(args, env).expect_err("should fail").to_string()
}

#[test]
fn every_key_used_is_known() {
    for key in [
        "url",
        "gateway_token",
        "model",
        "timeout_ms",
        "agent_id",
        "instances",
        "health_interval_ms",
        "transport",
        "debug",
        "host",
        "port",
        "allowed_hosts",
        "cors_origins",
        "trust_proxy",
        "max_body_bytes",
        "session_idle_secs",
        "max_sessions",
        "replica_id",
        "shutdown_grace_secs",
        "metrics",
        "disabled_tools",
        "read_only",
        "bearer_tokens",
        "auth",
        "client_id",
        "client_secret",
        "issuer_url",
        "redirect_uris",
        "allow_dcr",
        "allow_dcr_public",
        "allow_insecure_issuer",
        "task_concurrency",
        "max_tasks",
        "task_retention_secs",
        "data_dir",
    ] {
        let _ = setting(key);
    }
}

#[test]
fn defaults_are_those_of_1_7_0() {
    let s = load(&[], &[]).unwrap();
    assert_eq!(s.transport, TransportKind::Stdio);
    assert_eq!(s.instances.len(), 1);
    let i = &s.instances[0];
    assert_eq!(i.name, "default");
    assert_eq!(i.url, DEFAULT_URL);
    assert_eq!(i.model, "openclaw");
    assert_eq!(i.timeout, Duration::from_millis(120_000));
    assert!(i.is_default && i.token.is_none() && i.agent_id.is_none());
    assert_eq!(s.http.port, 3000);
    assert_eq!(s.http.host, "0.0.0.0");
    assert_eq!(s.http.cors, CorsOrigins::Disabled);
    assert!(!s.auth.enabled);
    assert_eq!(s.tasks.concurrency, 4);
    assert_eq!(s.tasks.max_tasks, 1000);
}

#[test]
fn flags_beat_environment() {
    let s = load(
        &["-u", "http://flag:1", "--timeout", "500"],
        &[
            ("OPENCLAW_URL", "http://env:1"),
            ("OPENCLAW_TIMEOUT_MS", "900"),
        ],
    )
    .unwrap();
    assert_eq!(s.instances[0].url, "http://flag:1");
    assert_eq!(s.instances[0].timeout, Duration::from_millis(500));
}

#[test]
fn environment_beats_file_and_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "url = \"http://file:1\"\ntimeout_ms = 700\nmodel = \"openclaw/ops\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let s = load(&["--config", p], &[("OPENCLAW_URL", "http://env:1")]).unwrap();
    assert_eq!(s.instances[0].url, "http://env:1");
    assert_eq!(s.instances[0].timeout, Duration::from_millis(700));
    assert_eq!(s.instances[0].model, "openclaw/ops");
    let s = load(&[], &[("OPENCLAW_MCP_CONFIG", p)]).unwrap();
    assert_eq!(s.instances[0].url, "http://file:1");
}

#[test]
fn file_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "timout_ms = 5\n").unwrap();
    let e = err(&["--config", path.to_str().unwrap()], &[]);
    assert!(e.contains("unknown key `timout_ms`"), "{e}");
    let e = err(&["--config", "/nonexistent/c.toml"], &[]);
    assert!(
        e.starts_with("configuration file /nonexistent/c.toml:"),
        "{e}"
    );
    std::fs::write(&path, "timeout_ms = \"soon\"\n").unwrap();
    let e = err(&["--config", path.to_str().unwrap()], &[]);
    assert!(e.starts_with("`timeout_ms` in "), "{e}");
}

#[test]
fn non_numeric_timeout_names_the_setting() {
    assert_eq!(
        err(&[], &[("OPENCLAW_TIMEOUT_MS", "abc")]),
        "OPENCLAW_TIMEOUT_MS must be a whole number of milliseconds between 1 and 86400000, got \"abc\""
    );
    assert!(err(&["--timeout=-5"], &[]).starts_with("--timeout must be"));
    assert!(err(&[], &[("PORT", "http")]).starts_with("PORT must be a port number"));
}

#[test]
fn instances_follow_1_7_0_rules_and_messages() {
    let cases: &[(&str, &str)] = &[
        ("[", "OPENCLAW_INSTANCES contains invalid JSON: "),
        ("{}", "OPENCLAW_INSTANCES must be a non-empty JSON array"),
        ("[]", "OPENCLAW_INSTANCES must be a non-empty JSON array"),
        (
            r#"[{"url":"http://a"}]"#,
            "Each instance in OPENCLAW_INSTANCES must have a non-empty string \"name\"",
        ),
        (
            r#"[{"name":"a"}]"#,
            "Instance \"a\": must have a non-empty string \"url\"",
        ),
        (
            r#"[{"name":"-bad","url":"http://a"}]"#,
            "Invalid instance name \"-bad\": must be 1-64 chars, alphanumeric/dashes/underscores, start with alphanumeric",
        ),
        (
            r#"[{"name":"a","url":"not a url"}]"#,
            "Instance \"a\": invalid URL \"not a url\"",
        ),
        (
            r#"[{"name":"a","url":"ftp://x"}]"#,
            "Instance \"a\": URL must use http or https (got ftp:)",
        ),
        // Unlike 1.7.0, an error stays one line and shows no password (found by tests/fuzz.rs).
        (
            r#"[{"name":"x\ny"}]"#,
            "Instance \"x\\ny\": must have a non-empty string \"url\"",
        ),
        (
            r#"[{"name":"a\"\n","url":"http://x"}]"#,
            "Invalid instance name \"a\\\"\\n\": must be",
        ),
        (
            r#"[{"name":"a","url":"http://u:secret@x:99999"}]"#,
            "Instance \"a\": invalid URL \"http://***@x:99999\"",
        ),
        (
            r#"[{"name":"a","url":"http://x"},{"name":"a","url":"http://y"}]"#,
            "Duplicate instance name: \"a\"",
        ),
        (
            r#"[{"name":"a","url":"http://x","default":true},{"name":"b","url":"http://y","default":true}]"#,
            "Multiple default instances: \"a\" and \"b\". Only one default is allowed.",
        ),
        (
            r#"[{"name":"a","url":"http://x","timeout":"soon"}]"#,
            "Instance \"a\": \"timeout\" must be",
        ),
    ];
    for (json, expected) in cases {
        let e = err(&[], &[("OPENCLAW_INSTANCES", json)]);
        assert!(e.contains(expected), "{json}: {e}");
    }
}

#[test]
fn instances_take_precedence_and_first_is_default() {
    let s = load(
        &[],
        &[
            ("OPENCLAW_URL", "http://ignored:1"),
            ("OPENCLAW_AGENT_ID", "ops"),
            (
                "OPENCLAW_INSTANCES",
                r#"[{"name":"prod","url":"http://prod:18789/","token":"t1","timeout":300000},{"name":"dev","url":"https://dev","agentId":"main"}]"#,
            ),
        ],
    )
    .unwrap();
    assert_eq!(s.instances.len(), 2);
    let prod = &s.instances[0];
    assert!(prod.is_default);
    assert_eq!(prod.base_url, "http://prod:18789");
    assert_eq!(prod.token.as_ref().unwrap().expose(), "t1");
    assert_eq!(prod.timeout, Duration::from_millis(300_000));
    assert_eq!(prod.agent_id.as_deref(), Some("ops"));
    assert_eq!(s.instances[1].agent_id.as_deref(), Some("main"));
    assert!(!s.instances[1].is_default);
}

#[test]
fn auth_checks_run_only_for_http() {
    assert!(load(&[], &[("AUTH_ENABLED", "true")]).is_ok());
    assert_eq!(
        err(&["--transport", "http"], &[("AUTH_ENABLED", "true")]),
        "AUTH_ENABLED=true but MCP_CLIENT_ID is not set. Refusing to start without auth."
    );
    assert!(
        err(
            &["-t", "http"],
            &[("AUTH_ENABLED", "true"), ("MCP_CLIENT_ID", "x")]
        )
        .starts_with("MCP_CLIENT_ID is invalid.")
    );
    assert!(
        err(
            &["-t", "http"],
            &[
                ("AUTH_ENABLED", "true"),
                ("MCP_CLIENT_ID", "openclaw"),
                ("MCP_CLIENT_SECRET", "short")
            ]
        )
        .starts_with("MCP_CLIENT_SECRET must be at least 32 characters.")
    );
    let secret = "0123456789abcdef0123456789abcdef";
    let base = [
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", "openclaw"),
        ("MCP_CLIENT_SECRET", secret),
    ];
    assert!(load(&["-t", "http"], &base).unwrap().auth.enabled);
    let mut with_issuer = base.to_vec();
    with_issuer.push(("MCP_ISSUER_URL", "http://bridge.example.com"));
    assert!(err(&["-t", "http"], &with_issuer).starts_with("MCP_ISSUER_URL must be an https URL"));
    let mut dcr = base.to_vec();
    dcr.push(("MCP_DANGEROUSLY_ALLOW_DCR", "true"));
    assert!(err(&["-t", "http"], &dcr).contains("is not loopback"));
    assert!(
        err(&["-t", "http", "--host", "127.0.0.1"], &dcr).contains("set MCP_APPROVAL_PASSWORD")
    );
    dcr.push(("MCP_APPROVAL_PASSWORD", "correct horse battery"));
    assert!(load(&["-t", "http", "--host", "127.0.0.1"], &dcr).is_ok());
    let mut cimd = base.to_vec();
    cimd.push(("MCP_CIMD_ALLOWED_HOSTS", "claude.ai"));
    assert!(err(&["-t", "http"], &cimd).contains("set MCP_APPROVAL_PASSWORD"));
    let mut weak_key = base.to_vec();
    weak_key.push(("MCP_TOKEN_SIGNING_KEY", "short"));
    assert!(err(&["-t", "http"], &weak_key).starts_with("MCP_TOKEN_SIGNING_KEY must be"));
    let mut js = base.to_vec();
    js.push((
        "MCP_REDIRECT_URIS",
        "https://ok.example/cb,javascript:alert(1)",
    ));
    assert!(err(&["-t", "http"], &js).contains("may not contain a javascript URI"));
    // A secret is never echoed back.
    let e = err(
        &["-t", "http"],
        &[
            ("AUTH_ENABLED", "TRUE!"),
            ("MCP_CLIENT_SECRET", "hunter2hunter2"),
        ],
    );
    assert_eq!(e, "AUTH_ENABLED must be true or false, got \"TRUE!\"");
}

#[test]
fn the_mcp_rate_limit_defaults_on_only_behind_auth() {
    let limit =
        |args: &[&str], env: &[(&str, &str)]| load(args, env).unwrap().auth.rate_limit_per_minute;
    // No auth: no limit (as in 1.7.0) unless one is set.
    assert_eq!(limit(&["-t", "http"], &[]), 0);
    assert_eq!(
        limit(&["-t", "http"], &[("MCP_RATE_LIMIT_PER_MINUTE", "60")]),
        60
    );
    let oauth = [
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", "openclaw"),
        ("MCP_CLIENT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    assert_eq!(limit(&["-t", "http"], &oauth), 1200);
    let tokens = [("MCP_BEARER_TOKENS", "ci:0123456789abcdef0123456789abcdef")];
    assert_eq!(limit(&["-t", "http"], &tokens), 1200);
    let mut off = oauth.to_vec();
    off.push(("MCP_RATE_LIMIT_PER_MINUTE", "0"));
    assert_eq!(limit(&["-t", "http"], &off), 0);
}

#[test]
fn debug_is_lenient_like_1_7_0() {
    assert!(!load(&[], &[("DEBUG", "*")]).unwrap().debug);
    assert!(load(&[], &[("DEBUG", "true")]).unwrap().debug);
    assert!(load(&[], &[("NODE_ENV", "development")]).unwrap().debug);
    assert!(load(&["--debug"], &[]).unwrap().debug);
}

#[test]
fn model_and_transport_rules() {
    assert_eq!(
        err(&[], &[("OPENCLAW_MODEL", "  ")]),
        "OPENCLAW_MODEL / --model must be a non-empty string. Default is \"openclaw\"."
    );
    assert_eq!(
        load(&["--transport", "sse"], &[]).unwrap().transport,
        TransportKind::Sse
    );
    assert!(
        err(&[], &[("OPENCLAW_AGENT_ID", "Ops Team")])
            .starts_with("OPENCLAW_AGENT_ID must be an agent id")
    );
}

#[test]
fn cors_and_trust_proxy_parse_like_1_7_0() {
    assert_eq!(parse_cors(&[]), CorsOrigins::Disabled);
    assert_eq!(parse_cors(&["NONE".into()]), CorsOrigins::Disabled);
    assert_eq!(parse_cors(&["*".into()]), CorsOrigins::Any);
    assert_eq!(parse_trust_proxy("  ").unwrap(), TrustProxy::Unset);
    assert_eq!(parse_trust_proxy("TRUE").unwrap(), TrustProxy::Bool(true));
    assert_eq!(parse_trust_proxy("False").unwrap(), TrustProxy::Bool(false));
    assert_eq!(parse_trust_proxy("2").unwrap(), TrustProxy::Hops(2));
    assert_eq!(
        parse_trust_proxy(" loopback, 10.0.0.0/8 ").unwrap(),
        TrustProxy::List(vec!["loopback".into(), "10.0.0.0/8".into()])
    );
    assert!(parse_trust_proxy("everyone").is_none());
}

#[test]
fn the_configuration_page_names_every_setting() {
    let page = include_str!("../../docs/configuration.md");
    for setting in SETTINGS {
        assert!(
            page.contains(&format!("`{}`", setting.key)),
            "key {}",
            setting.key
        );
        for env in setting.env {
            assert!(page.contains(&format!("`{env}`")), "env {env}");
        }
        if let Some(flag) = setting.flag {
            assert!(page.contains(&format!("`--{flag}`")), "flag --{flag}");
        }
    }
}

#[test]
fn toml_instances_are_read_like_the_json_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[[instances]]\nname = \"home\"\nurl = \"http://127.0.0.1:1\"\n\n[[instances]]\nname = \"office\"\nurl = \"https://o.example\"\nagentId = \"ops\"\ndefault = true\n",
    )
    .unwrap();
    let s = load(&["--config", path.to_str().unwrap()], &[]).unwrap();
    assert_eq!(s.instances.len(), 2);
    assert!(s.instances[1].is_default && !s.instances[0].is_default);
    assert_eq!(s.instances[1].agent_id.as_deref(), Some("ops"));
    std::fs::write(&path, "[[instances]]\nname = \"-x\"\nurl = \"http://a\"\n").unwrap();
    let e = err(&["--config", path.to_str().unwrap()], &[]);
    assert!(
        e.starts_with("`instances` in ") && e.contains("Invalid instance name"),
        "{e}"
    );
}

#[test]
fn default_data_dir_per_platform() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    // Windows: %LOCALAPPDATA%, never the roaming %APPDATA%; USERPROFILE as a fallback.
    let win = env(&[
        ("LOCALAPPDATA", r"C:\Users\me\AppData\Local"),
        ("APPDATA", r"C:\Users\me\AppData\Roaming"),
        ("USERPROFILE", r"C:\Users\me"),
        ("HOME", "/home/ignored"),
    ]);
    assert_eq!(
        data_dir_for("windows", &win),
        Some(PathBuf::from(r"C:\Users\me\AppData\Local").join("openclaw-mcp"))
    );
    let win_profile_only = env(&[("LOCALAPPDATA", ""), ("USERPROFILE", r"C:\Users\me")]);
    assert_eq!(
        data_dir_for("windows", &win_profile_only),
        Some(
            PathBuf::from(r"C:\Users\me")
                .join("AppData")
                .join("Local")
                .join("openclaw-mcp")
        )
    );
    assert_eq!(data_dir_for("windows", &env(&[])), None);
    // macOS: Application Support, whatever XDG_STATE_HOME says.
    let mac = env(&[("HOME", "/Users/me"), ("XDG_STATE_HOME", "/x")]);
    assert_eq!(
        data_dir_for("macos", &mac),
        Some(PathBuf::from(
            "/Users/me/Library/Application Support/openclaw-mcp"
        ))
    );
    // Linux (and the rest): $XDG_STATE_HOME, else ~/.local/state, as before.
    assert_eq!(
        data_dir_for("linux", &mac),
        Some(PathBuf::from("/x/openclaw-mcp"))
    );
    let linux = env(&[("HOME", "/home/me"), ("XDG_STATE_HOME", "")]);
    assert_eq!(
        data_dir_for("linux", &linux),
        Some(PathBuf::from("/home/me/.local/state/openclaw-mcp"))
    );
    assert_eq!(data_dir_for("freebsd", &env(&[])), None);
    // This machine's rule is the one default_data_dir applies.
    assert_eq!(
        default_data_dir(),
        data_dir_for(std::env::consts::OS, &|k| std::env::var_os(k))
    );
}

#[test]
fn unfilled_bundle_variables_count_as_unset() {
    // What Claude Desktop passes for a user_config field with no value and no default.
    let s = load(
        &[],
        &[
            ("OPENCLAW_URL", "${user_config.gateway_url}"),
            ("OPENCLAW_GATEWAY_TOKEN", "${user_config.gateway_token}"),
            ("OPENCLAW_AGENT_ID", " ${user_config.agent_id} "),
            ("OPENCLAW_TIMEOUT_MS", "${user_config.timeout_ms}"),
            ("OPENCLAW_MCP_READ_ONLY", "${user_config.read_only}"),
        ],
    )
    .unwrap();
    let defaults = load(&[], &[]).unwrap();
    assert_eq!(s.instances[0].url, defaults.instances[0].url);
    assert!(s.instances[0].token.is_none());
    assert!(s.instances[0].agent_id.is_none());
    assert_eq!(s.instances[0].timeout, defaults.instances[0].timeout);
    assert!(!s.tools.read_only);
    // A value that merely contains one is a value (and is validated as such).
    let e = err(&[], &[("OPENCLAW_AGENT_ID", "a${user_config.agent_id}")]);
    assert!(e.contains("OPENCLAW_AGENT_ID"), "{e}");
    assert!(!load::is_unfilled_template("${a}${b}"));
    assert!(load::is_unfilled_template("${user_config.x}"));
}

#[test]
fn display_url_masks_passwords() {
    assert_eq!(display_url("http://u:pw@gw:1"), "http://u:***@gw:1");
    // A URL that does not parse (port out of range) still hides its user information.
    assert_eq!(
        display_url("http://u:pw@gw:99999/x"),
        "http://***@gw:99999/x"
    );
    assert_eq!(display_url("http://u:pw@[::1/x"), "http://***@[::1/x");
    assert_eq!(display_url("not a url"), "not a url");
    assert_eq!(display_url("http://gw:1/"), "http://gw:1/");
    assert_eq!(display_url("http://gw:1"), "http://gw:1");
}

#[test]
fn the_replica_id_is_short_and_plain() {
    assert_eq!(load(&[], &[]).unwrap().http.replica_id, None);
    let s = load(&[], &[("OPENCLAW_MCP_REPLICA_ID", " eu-1_b ")]).unwrap();
    assert_eq!(s.http.replica_id.as_deref(), Some("eu-1_b"));
    let s = load(
        &["--replica-id", "r2"],
        &[("OPENCLAW_MCP_REPLICA_ID", "r1")],
    )
    .unwrap();
    assert_eq!(s.http.replica_id.as_deref(), Some("r2"), "the flag wins");
    let long = "a".repeat(33);
    for bad in ["a.b", "a b", "é", "r/1", long.as_str()] {
        let e = err(&[], &[("OPENCLAW_MCP_REPLICA_ID", bad)]);
        assert!(
            e.starts_with("OPENCLAW_MCP_REPLICA_ID must be a replica name: 1-32 characters"),
            "{e}"
        );
        let e = err(&["--replica-id", bad], &[]);
        assert!(e.starts_with("--replica-id must be"), "{e}");
    }
    assert!(is_replica_id(&"a".repeat(32)));
    assert!(!is_replica_id(""));
}
