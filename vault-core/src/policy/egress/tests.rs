use super::*;
use crate::policy::Policy;

fn rules(toml_text: &str) -> EgressRules {
    Policy::from_toml(toml_text).unwrap().egress().clone()
}

fn req<'a>(method: &'a str, host: &'a str, port: u16, path: &'a str) -> EgressRequest<'a> {
    EgressRequest {
        method,
        host,
        port,
        path,
        tls: true,
    }
}

fn secret_of(d: EgressDecision<'_>) -> String {
    match d {
        EgressDecision::Attach(rule) => String::from(rule.secret.clone()),
        other => format!("{other:?}"),
    }
}

// issue 15, policy: hosts, ports, path prefixes and methods select the rule
#[test]
fn egress_rules_match_host_port_path_and_method() {
    let r = rules(
        r#"
        secrets = ["*", "finance/TG"]
        [[egress]]
        host = "api.openai.com"
        path_prefix = "/v1/"
        methods = ["get", "POST"]
        secret = "OPENAI_API_KEY"
        auth = "bearer"

        [[egress]]
        host = "*.example.com"
        secret = "WILD"
        auth = "header:X-Api-Key"

        [[egress]]
        host = "api.example.com"
        secret = "EXACT"
        auth = "query:key"

        [[egress]]
        host = "api.example.com:8443"
        path_prefix = "/bot"
        secret = "finance/TG"
        auth = "path"
        "#,
    );
    let s = |m, h, p, path| secret_of(r.decide(&req(m, h, p, path)));
    assert_eq!(
        s("POST", "API.OpenAI.com", 443, "/v1/chat"),
        "OPENAI_API_KEY"
    );
    assert_eq!(
        s("POST", "api.openai.com.", 443, "/v1/chat"),
        "OPENAI_API_KEY"
    );
    assert_eq!(s("DELETE", "api.openai.com", 443, "/v1/x"), "MethodDenied");
    assert_eq!(s("GET", "api.openai.com", 443, "/v2/x"), "Deny");
    assert_eq!(s("GET", "api.openai.com", 8443, "/v1/x"), "Deny");
    assert_eq!(s("GET", "api.openai.com.evil.com", 443, "/v1/x"), "Deny");
    assert_eq!(s("GET", "evilapi.openai.com", 443, "/v1/x"), "Deny");
    // exact beats wildcard; wildcard covers one label only
    assert_eq!(s("GET", "api.example.com", 443, "/"), "EXACT");
    assert_eq!(s("GET", "www.example.com", 443, "/"), "WILD");
    assert_eq!(s("GET", "example.com", 443, "/"), "Deny");
    assert_eq!(s("GET", "a.b.example.com", 443, "/"), "Deny");
    assert_eq!(s("GET", "api.example.com", 8443, "/bot1/x"), "finance/TG");
    assert_eq!(s("GET", "api.example.com", 8443, "/other"), "Deny");
    // TRACE and TRACK are refused even where a rule allows any method
    assert_eq!(s("TRACE", "www.example.com", 443, "/"), "MethodDenied");
    assert_eq!(s("track", "www.example.com", 443, "/"), "MethodDenied");
    let EgressDecision::Attach(rule) = r.decide(&req("GET", "www.example.com", 443, "/")) else {
        panic!("no rule")
    };
    assert_eq!(rule.auth, EgressAuth::Header("x-api-key".into()));
}

// issue 15, policy: unmatched requests are denied unless the policy says tunnel
#[test]
fn egress_unmatched_is_denied_by_default_and_tunnelled_on_request() {
    let deny = rules("");
    assert_eq!(
        deny.decide(&req("GET", "a.com", 443, "/")),
        EgressDecision::Deny
    );
    let tunnel = rules("[egress_default]\nunmatched = \"tunnel\"\n");
    assert_eq!(
        tunnel.decide(&req("GET", "a.com", 443, "/")),
        EgressDecision::Tunnel
    );
    assert_eq!(
        tunnel.decide(&req("TRACE", "a.com", 443, "/")),
        EgressDecision::MethodDenied
    );
}

// issue 15, policy: malformed rules are refused at load, with the field named
#[test]
fn malformed_egress_rules_are_refused_at_load() {
    let rule = |body: &str| format!("[[egress]]\n{body}\n");
    for (text, needle) in [
        (
            rule("host = \"a.com\"\nsecret = \"K\"\nauth = \"oauth\""),
            "egress auth",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"K\"\nauth = \"header:\""),
            "egress auth",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"K\"\nauth = \"header:host\""),
            "cannot carry",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"K\"\nauth = \"header:a b\""),
            "egress auth",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"K\""),
            "missing field `auth`",
        ),
        (
            rule("host = \"\"\nsecret = \"K\"\nauth = \"bearer\""),
            "egress host",
        ),
        (
            rule("host = \"*.com\"\nsecret = \"K\"\nauth = \"bearer\""),
            "wildcard",
        ),
        (
            rule("host = \"a.*.com\"\nsecret = \"K\"\nauth = \"bearer\""),
            "egress host",
        ),
        (
            rule("host = \"https://a.com\"\nsecret = \"K\"\nauth = \"bearer\""),
            "egress host",
        ),
        (
            rule("host = \"a.com:0\"\nsecret = \"K\"\nauth = \"bearer\""),
            "port",
        ),
        (
            rule("host = \"a.com:99999\"\nsecret = \"K\"\nauth = \"bearer\""),
            "port",
        ),
        (
            rule("host = \"a.com\"\npath_prefix = \"v1\"\nsecret = \"K\"\nauth = \"bearer\""),
            "path_prefix",
        ),
        (
            rule("host = \"a.com\"\npath_prefix = \"/v1?x\"\nsecret = \"K\"\nauth = \"bearer\""),
            "path_prefix",
        ),
        (
            rule("host = \"a.com\"\nmethods = [\"TRACE\"]\nsecret = \"K\"\nauth = \"bearer\""),
            "always refused",
        ),
        (
            rule("host = \"a.com\"\nmethods = [\"G T\"]\nsecret = \"K\"\nauth = \"bearer\""),
            "egress method",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"1BAD\"\nauth = \"bearer\""),
            "egress secret",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"K\"\nauth = \"bearer\"\nhots = \"x\""),
            "unknown field",
        ),
        (
            "[egress_default]\nunmatched = \"allow\"\n".to_owned(),
            "unknown variant",
        ),
        (
            "[egress_default]\nunmatched = \"deny\"\nother = 1\n".to_owned(),
            "unknown field",
        ),
        (
            format!(
                "secrets = [\"GITHUB_*\"]\n{}",
                rule("host = \"a.com\"\nsecret = \"OTHER\"\nauth = \"bearer\"")
            ),
            "do not grant",
        ),
        (
            rule("host = \"a.com\"\nsecret = \"finance/K\"\nauth = \"bearer\""),
            "do not grant",
        ),
    ] {
        let err = match Policy::from_toml(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "{text}: {err}");
    }
}

// issue 15, policy: service shorthands expand to their host, auth and secret
#[test]
fn service_shorthands_expand_and_survive_storage() {
    let policy = Policy::from_toml(
        "[[egress]]\nservice = \"anthropic\"\n[[egress]]\nservice = \"telegram\"\nsecret = \"TG\"\n",
    )
    .unwrap();
    let r = policy.egress();
    let EgressDecision::Attach(rule) =
        r.decide(&req("POST", "api.anthropic.com", 443, "/v1/messages"))
    else {
        panic!("anthropic")
    };
    assert_eq!(rule.auth, EgressAuth::Header("x-api-key".into()));
    assert_eq!(String::from(rule.secret.clone()), "ANTHROPIC_API_KEY");
    assert_eq!(
        secret_of(r.decide(&req("GET", "api.telegram.org", 443, "/botX/getMe"))),
        "TG"
    );
    assert_eq!(
        secret_of(r.decide(&req("GET", "api.telegram.org", 443, "/file"))),
        "Deny"
    );
    let again = Policy::from_json(&policy.to_json()).unwrap();
    assert_eq!(again.egress(), policy.egress());
    assert!(
        !policy.to_json().contains("api.anthropic.com"),
        "{}",
        policy.to_json()
    );
    for service in Service::ALL {
        let text = format!("[[egress]]\nservice = \"{}\"\n", service.as_str());
        assert!(Policy::from_toml(&text).is_ok(), "{text}");
    }
}

// issue 15, policy: the egress tables survive the stored JSON form unchanged
#[test]
fn egress_rules_round_trip_through_storage() {
    let text = r#"
        secrets = ["*", "finance/TG"]
        [[egress]]
        host = "*.Example.com:8443"
        path_prefix = "/v1/"
        methods = ["GET"]
        secret = "finance/TG"
        auth = "header:X-Key"
        [egress_default]
        unmatched = "tunnel"
        "#;
    let policy = Policy::from_toml(text).unwrap();
    let again = Policy::from_json(&policy.to_json()).unwrap();
    assert_eq!(again.egress(), policy.egress());
    assert!(policy.to_json().contains("\"host\":\"*.example.com:8443\""));
    // a policy without egress stores as before
    assert!(!Policy::default().to_json().contains("egress"));
}

/// The TOML blocks of README's "One-way doors" section.
fn readme_one_way_doors() -> Vec<String> {
    let readme = include_str!("../../../../README.md");
    let start = readme.find("### One-way doors").expect("README section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |e| e + 4)];
    section
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_owned())
        .collect()
}

// issue 16, README: the email and payments examples load and hold exactly
// the one-way doors they name
#[test]
fn the_readme_one_way_door_examples_hold_sends_and_charges_only() {
    let blocks = readme_one_way_doors();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let held = |text: &str, method: &str, host: &str, path: &str| {
        let policy = Policy::from_toml(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        match policy.egress().decide(&req(method, host, 443, path)) {
            EgressDecision::Attach(rule) => Some(rule.approval),
            _ => None,
        }
    };
    let gmail = "gmail.googleapis.com";
    let mail = &blocks[0];
    assert_eq!(
        held(mail, "POST", gmail, "/gmail/v1/users/me/messages/send"),
        Some(true)
    );
    assert_eq!(
        held(mail, "POST", gmail, "/gmail/v1/users/me/drafts/send"),
        Some(true)
    );
    assert_eq!(
        held(mail, "POST", gmail, "/gmail/v1/users/me/drafts"),
        Some(false)
    );
    assert_eq!(
        held(mail, "GET", gmail, "/gmail/v1/users/me/messages"),
        Some(false)
    );
    assert_eq!(
        held(mail, "DELETE", gmail, "/gmail/v1/users/me/messages/1"),
        None
    );
    assert_eq!(
        Policy::from_toml(mail).unwrap().approval_wait(),
        std::time::Duration::from_secs(600)
    );
    let pay = &blocks[1];
    let stripe = "api.stripe.com";
    assert_eq!(held(pay, "POST", stripe, "/v1/charges"), Some(true));
    assert_eq!(
        held(pay, "POST", stripe, "/v1/payment_intents/pi_1/confirm"),
        Some(true)
    );
    assert_eq!(held(pay, "GET", stripe, "/v1/charges"), Some(false));
    assert_eq!(held(pay, "POST", stripe, "/v1/refunds"), None);
}

// issue 15 remainder, plain-http review finding: a credential goes upstream
// unencrypted only by a rule with `scheme = "http"`; the default is https, a
// CONNECT never matches an http rule, and the field survives storage
#[test]
fn egress_scheme_defaults_to_https_and_only_http_rules_match_plain_requests() {
    let plain = |method, host, port, path| EgressRequest {
        tls: false,
        ..req(method, host, port, path)
    };
    let r = rules(
        r#"
        [[egress]]
        host = "api.example.com:8443"
        secret = "TLS_ONLY"
        auth = "bearer"
        [[egress]]
        host = "legacy.example.com"
        scheme = "http"
        secret = "CLEAR"
        auth = "bearer"
        [[egress]]
        host = "both.example.com:8080"
        scheme = "https"
        secret = "HTTPS_8080"
        auth = "bearer"
        [[egress]]
        host = "both.example.com:8080"
        scheme = "http"
        secret = "HTTP_8080"
        auth = "bearer"
        "#,
    );
    assert_eq!(r.rules()[0].scheme, EgressScheme::Https);
    let s = |q: EgressRequest<'_>| secret_of(r.decide(&q));
    // a rule without `scheme` never covers plain http, whatever its port
    assert_eq!(s(req("GET", "api.example.com", 8443, "/")), "TLS_ONLY");
    assert_eq!(s(plain("GET", "api.example.com", 8443, "/")), "Deny");
    // an http rule means port 80 unless it names one, and never covers a CONNECT
    assert_eq!(s(plain("GET", "legacy.example.com", 80, "/")), "CLEAR");
    assert_eq!(s(plain("GET", "legacy.example.com", 443, "/")), "Deny");
    assert_eq!(s(req("GET", "legacy.example.com", 80, "/")), "Deny");
    assert_eq!(s(req("GET", "legacy.example.com", 443, "/")), "Deny");
    assert_eq!(s(req("GET", "both.example.com", 8080, "/")), "HTTPS_8080");
    assert_eq!(s(plain("GET", "both.example.com", 8080, "/")), "HTTP_8080");
    // unmatched = "tunnel" still forwards a plain request, with no credential
    let tunnel = rules(
        "[[egress]]\nhost = \"api.example.com:8443\"\nsecret = \"K\"\nauth = \"bearer\"\n[egress_default]\nunmatched = \"tunnel\"\n",
    );
    assert_eq!(
        tunnel.decide(&plain("GET", "api.example.com", 8443, "/")),
        EgressDecision::Tunnel
    );
    // stored: http is written, the default is not, and both read back the same
    let policy = Policy::from_toml(
        "[[egress]]\nhost = \"a.example.com\"\nscheme = \"http\"\nsecret = \"K\"\nauth = \"bearer\"\n[[egress]]\nhost = \"b.example.com\"\nsecret = \"K\"\nauth = \"bearer\"\n",
    )
    .unwrap();
    let json = policy.to_json();
    assert_eq!(json.matches("\"scheme\":\"http\"").count(), 1, "{json}");
    assert!(!json.contains("https"), "{json}");
    let again = Policy::from_json(&json).unwrap();
    assert_eq!(again.egress(), policy.egress());
    assert_eq!(again.egress().rules()[0].scheme, EgressScheme::Http);
    assert_eq!(again.egress().rules()[1].scheme, EgressScheme::Https);
}

// issue 15 remainder, plain-http review finding: a scheme other than https or
// http is refused at load with the field named; a service is https only
#[test]
fn bad_egress_schemes_are_refused_at_load() {
    for (text, needle) in [
        (
            "[[egress]]\nhost = \"a.com\"\nscheme = \"HTTP\"\nsecret = \"K\"\nauth = \"bearer\"\n",
            "egress scheme \"HTTP\"",
        ),
        (
            "[[egress]]\nhost = \"a.com\"\nscheme = \"ws\"\nsecret = \"K\"\nauth = \"bearer\"\n",
            "egress scheme \"ws\"",
        ),
        (
            "[[egress]]\nservice = \"openai\"\nscheme = \"http\"\n",
            "https only",
        ),
    ] {
        let err = Policy::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
    assert!(Policy::from_toml("[[egress]]\nservice = \"openai\"\nscheme = \"https\"\n").is_ok());
}

// issue 14, "written twice": the broker strips exactly this list, so a rule
// may put a credential in none of them (one list, two users)
#[test]
fn no_header_the_broker_strips_may_carry_a_credential() {
    for name in HOP_BY_HOP_HEADERS {
        for spelled in [name.to_owned(), name.to_ascii_uppercase()] {
            let refused = EgressAuth::try_from(format!("header:{spelled}"));
            assert!(
                refused.as_ref().is_err_and(|e| e.contains("cannot carry")),
                "{spelled}: {refused:?}"
            );
        }
    }
    assert!(EgressAuth::try_from("header:x-api-key".to_owned()).is_ok());
}
