//! Issue 18, breadth (scan8): provider formats in the agent-operator families that the
//! rules missed or held to a length the provider does not document. Each test draws a fresh
//! value at test time (never a real secret), checks it is found once, by its rule, as the
//! value itself (not the name beside it), and checks the look-alikes around it are not.

use vault_scan::redact;

use crate::rules::random_chars;
use crate::scan_text;

const LOWER_DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// The (rule, redacted value) of every finding in `text`, scanned as a file `name`.
fn findings(name: &str, text: &str) -> Vec<(String, String)> {
    let r = scan_text(name, text);
    r.findings
        .into_iter()
        .map(|f| (f.rule, f.redacted))
        .collect()
}

/// Exactly one finding in `text`: `secret`, by `rule`.
fn assert_only(text: &str, secret: &str, rule: &str) {
    let red = redact(secret.as_bytes());
    assert_eq!(
        findings("config/app.env", text),
        vec![(rule.to_owned(), red)],
        "{text}"
    );
}

fn assert_none(text: &str) {
    let f = findings("config/app.env", text);
    assert!(f.is_empty(), "{text}: {f:?}");
}

// Blynk documents its Organization API's OAuth2 client as `oa2-client-id_...` and a
// 40-character secret, sent as curl's `-u id:secret` or as form fields.
#[test]
fn blynk_oauth_client_secrets_are_found_beside_their_client_id() {
    let id = format!("oa2-client-id_{}", random_chars(BASE62, 32));
    let secret = random_chars(BASE62, 40);
    for text in [
        format!("curl -X POST -u {id}:{secret} https://fra1.blynk.cloud/oauth2/token?grant_type=client_credentials"),
        format!("curl -X POST 'https://ny3.blynk.cloud/oauth2/token?grant_type=client_credentials&client_id={id}&client_secret={secret}'"),
    ] {
        assert_only(&text, &secret, "blynk.oauth-client-secret");
    }
    // The id alone names the client: not a finding.
    assert_none(&format!("BLYNK_CLIENT={id}\n"));
}

// ThingsBoard's provisioning request carries the device profile's key and secret.
#[test]
fn thingsboard_provisioning_secrets_are_found_and_the_documented_placeholders_are_not() {
    let key = random_chars(LOWER_DIGITS, 20);
    let secret = random_chars(LOWER_DIGITS, 20);
    let text = format!(
        r#"{{"deviceName": "DEVICE_NAME", "provisionDeviceKey": "{key}", "provisionDeviceSecret": "{secret}"}}"#
    );
    assert_only(&text, &secret, "thingsboard.provision-secret");
    assert_none(
        r#"{"deviceName": "DEVICE_NAME", "provisionDeviceKey": "PUT_PROVISION_KEY_HERE", "provisionDeviceSecret": "PUT_PROVISION_SECRET_HERE"}"#,
    );
    assert_none(r#""provisionDeviceSecret": "YOUR_PROVISION_SECRET_HERE""#);
}

// Salesforce documents its access token (session id) as `<org id>!<token>`; the org id is
// 15 or 18 characters and begins `00D`. Found with no `salesforce` name nearby, and once
// under one: the name-keyed rule's match of the org id alone (its value stops at `!`) is
// part of the token, not a second finding (src/dedup.rs).
#[test]
fn salesforce_access_tokens_are_found_by_their_shape_alone() {
    for org_len in [15, 18] {
        let org = format!("00D{}", random_chars(BASE62, org_len - 3));
        let token = format!(
            "{org}!{}.{}",
            random_chars(BASE62, 50),
            random_chars(BASE62, 45)
        );
        assert_only(
            &format!("Access Token      {token}\nClient Id         PlatformCLI\n"),
            &token,
            "salesforce.access-token",
        );
        assert_only(
            &format!("SALESFORCE_TOKEN=\"{token}\"\n"),
            &token,
            "salesforce.access-token",
        );
    }
    // The CLI's documented placeholder and an org id alone are not tokens.
    assert_none("export SFDX_ACCESS_TOKEN=00Dxx0000000000!xxxxx\n");
    assert_none(&format!(
        "Id                00D{}\n",
        random_chars(BASE62, 12)
    ));
}

// Courier's four documented key prefixes; Stripe's publishable keys (mixed case) are not
// Courier's.
#[test]
fn courier_keys_of_each_documented_prefix_are_found() {
    for prefix in ["pk_prod_", "dk_prod_", "pk_test_", "dk_test_"] {
        let key = format!("{prefix}{}", random_chars(UPPER_DIGITS, 28));
        assert_only(
            &format!("curl -H \"Authorization: Bearer {key}\" https://api.courier.com/send\n"),
            &key,
            "courier.api-key",
        );
    }
    let stripe_publishable = format!("pk_test_{}", random_chars(BASE62, 24).to_lowercase());
    assert!(!findings(
        "src/app.js",
        &format!("const k = '{stripe_publishable}';\n")
    )
    .iter()
    .any(|(rule, _)| rule == "courier.api-key"));
}

// SonarQube's analysis parameter holds the token; tokens before 9.5 have no prefix.
#[test]
fn sonarqube_tokens_in_the_analysis_parameter_are_found_and_references_are_not() {
    let token = random_chars(HEX, 40);
    for text in [
        format!("mvn sonar:sonar -Dsonar.host.url=https://sonar.internal -Dsonar.login={token}\n"),
        format!("dotnet sonarscanner begin /k:app /d:sonar.token={token}\n"),
        format!("props.put('sonar.login', '{token}')\n"),
        format!("sonar.token={token}\n"),
    ] {
        assert_only(&text, &token, "sonarqube.analysis-property");
    }
    assert_none("/d:sonar.host.url=$(SONAR_HOST) /d:sonar.login=$(SONAR_LOGIN)\n");
    assert_none(&format!(
        "sonarqube-scanner-2.5.0.tgz#{}\n",
        random_chars(HEX, 40)
    ));
}

// A GitHub OAuth app's client secret is 40 hex characters: found under a name that says
// GitHub and secret, not under other GitHub names (a commit SHA) nor as the client id.
#[test]
fn github_oauth_client_secrets_are_found_under_their_name_only() {
    let secret = random_chars(HEX, 40);
    let client_id = format!("Iv1.{}", random_chars(HEX, 16));
    assert_only(
        &format!("GITHUB_CLIENT_ID={client_id}\nGITHUB_CLIENT_SECRET={secret}\n"),
        &secret,
        "github.oauth-client-secret",
    );
    assert_only(
        &format!("github_secret: '{secret}'\n"),
        &secret,
        "github.oauth-client-secret",
    );
    assert_none(&format!("GITHUB_SHA={secret}\n"));
}

// Cloudflare documents only the `v1.0-` prefix of an Origin CA key and that its length
// varies; both layouts seen in use are found.
#[test]
fn cloudflare_origin_ca_keys_of_both_layouts_are_found() {
    for groups in [&[24usize, 146][..], &[64, 128, 64][..]] {
        let key = format!(
            "v1.0-{}",
            groups
                .iter()
                .map(|&n| random_chars(HEX, n))
                .collect::<Vec<_>>()
                .join("-")
        );
        assert_only(
            &format!("X-Auth-User-Service-Key: {key}\n"),
            &key,
            "cloudflare.origin-ca-key",
        );
    }
}

// LINE channel access tokens are base64 with its padding (172 characters seen, `=` last);
// the rule once took exactly 172 characters of the alphabet without `=`.
#[test]
fn line_channel_tokens_with_base64_padding_are_found() {
    for (len, pad) in [(171, "="), (172, ""), (170, "==")] {
        let token = format!(
            "{}{pad}",
            random_chars(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                len
            )
        );
        assert_only(&format!("line_token: {token}\n"), &token, "line.keyed");
    }
}

// A PEM private key built up as string literals joined by `+` (Java, JavaScript): the
// quotes between the lines once ended the body before `-----END`.
#[test]
fn a_pem_key_written_as_concatenated_string_literals_is_found() {
    let lines: Vec<String> = (0..6)
        .map(|_| {
            random_chars(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                64,
            )
        })
        .collect();
    let body = lines
        .iter()
        .map(|l| format!("    \"{l}\\n\" +"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!(
        "String pem = \"-----BEGIN RSA PRIVATE KEY-----\\n\" +\n{body}\n    \"-----END RSA PRIVATE KEY-----\";\n"
    );
    let f = findings("src/Keys.java", &text);
    assert_eq!(f.len(), 1, "{text}: {f:?}");
    assert_eq!(f[0].0, "private-key.pem");
}

// Azure DevOps PATs: the 84-character format carries the signature `AZDO` at positions
// 77-80 and is found alone (Microsoft's published example, a counting run, is not); the
// 52-character format (base32) only under a name for it, `personalAccessToken` included.
#[test]
fn azure_devops_pats_of_both_formats_are_found() {
    let pat = format!(
        "{}AZDO{}",
        random_chars(BASE62, 76),
        random_chars(BASE62, 4)
    );
    assert_only(
        &format!("AZURE_DEVOPS_EXT_PAT={pat}\n"),
        &pat,
        "azure-devops.pat",
    );
    assert_none("PAT = \"abcdefghijklmnopqrstuvwxyz012345679ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnoAZDOabcd\"\n");
    let legacy = random_chars(b"abcdefghijklmnopqrstuvwxyz234567", 52);
    for text in [
        format!("var personalAccessToken = \"{legacy}\";\n"),
        format!("AZURE_DEVOPS_PAT={legacy}\n"),
    ] {
        assert_only(&text, &legacy, "azure-devops.keyed");
    }
}
