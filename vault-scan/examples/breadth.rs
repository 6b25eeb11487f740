//! Breadth check against Kingfisher's rule examples (../shared/peer-suite):
//! `breadth kingfisher-examples.json` prints, per provider family (AI/LLM APIs, clouds, CI/CD,
//! databases, ...), positives found / counted and negatives wrongly reported, then the totals.
//! Examples of identifiers (client ids, hostnames, usernames: [`IDENTIFIERS`]) and positives
//! whose provider checksum fails are not counted, and are shown in columns of their own.
//! `--providers` also lists every provider; `--misses` prints each positive not found and each
//! negative reported (family, provider, kind, text), to work from.

use std::collections::BTreeMap;

use vault_scan::{scan_bytes, ScanOptions, Scanner};

/// Provider families, by Kingfisher provider name. A provider not listed falls in "other SaaS".
const FAMILIES: &[(&str, &[&str])] = &[
    (
        "AI / LLM APIs",
        &[
            "openai",
            "anthropic",
            "huggingface",
            "groq",
            "replicate",
            "xai",
            "azureopenai",
            "cohere",
            "mistral",
            "deepseek",
            "nvapi",
            "elevenlabs",
            "assemblyai",
            "clarifai",
            "deepai",
            "edenai",
            "deepgram",
            "weightsandbiases",
            "perplexity",
            "langchain",
            "fireworks",
            "together",
            "monkeylearn",
            "paralleldots",
            "speechtextai",
            "voicegain",
            "moderation",
            "voiceflow",
            "happyscribe",
            "detectlanguage",
            "uclassify",
            "lexigram",
            "dandelion",
            "nightfall",
            "sigopt",
            "cerebras",
            "tavily",
            "pinecone",
        ],
    ),
    (
        "cloud & hosting",
        &[
            "aws",
            "azure",
            "azurestorage",
            "azuresearchquery",
            "gcp",
            "google",
            "googleoauth2",
            "alibaba",
            "ibm",
            "digitalocean",
            "heroku",
            "vercel",
            "netlify",
            "cloudflare",
            "fly",
            "vultrapikey",
            "scalewaykey",
            "tencent",
            "databricks",
            "doppler",
            "terraformcloud",
            "vagrantcloud",
            "pulumi",
            "tailscale",
            "age",
            "truenas",
            "zerotier",
            "wireguard",
            "ngrok",
            "anypoint",
            "web3storage",
            "imagekit",
            "cloudimage",
            "salesforce",
            "adobe",
            "okta",
            "auth0",
            "jumpcloud",
            "loginradius",
            "yandex",
            "particle.io",
            "blynk",
            "thingsboard",
            "eagleeyenetworks",
            "ubidots",
            "ecostruxureit",
            "adafruitio",
            "borgbase",
            "buddyns",
        ],
    ),
    (
        "source hosting & CI/CD",
        &[
            "github",
            "gitlab",
            "bitbucket",
            "circleci",
            "travisci",
            "buildkite",
            "droneci",
            "jenkins",
            "codeclimate",
            "codacy",
            "coveralls",
            "sonarqube",
            "sonarcloud",
            "sourcegraph",
            "codemagic",
            "semaphore",
            "scrutinizerci",
            "knapsackpro",
            "azuredevops",
            "snyk",
            "stackhawk",
            "detectify",
            "atlassian",
            "jira",
            "linear",
            "launchdarkly",
            "optimizely",
            "postman",
            "bitbar",
            "blazemeter",
            "loadmill",
            "dependency_track",
            "jupiterone",
            "ionic",
            "shortcut",
            "qase",
            "gitter",
            "prefect",
            "harness",
            "octopus",
            "infracost",
            "dockerhub",
        ],
    ),
    (
        "databases & data",
        &[
            "postgres",
            "mongodb",
            "odbc",
            "snowflake",
            "rabbitmq",
            "redis",
            "confluent",
            "planetscale",
            "supabasetoken",
            "rockset",
            "qubole",
            "impala",
            "aiven",
            "stitchdata",
            "algolia",
            "swiftype",
            "airtable",
            "coda",
            "datagov",
            "fulcrum",
        ],
    ),
    (
        "payments & commerce",
        &[
            "stripe",
            "square",
            "squareup",
            "paypal",
            "shopify",
            "braintree",
            "coinbase",
            "paystack",
            "gocardless",
            "razorpay",
            "flutterwave",
            "lemonsqueezy",
            "transferwise",
            "pagarme",
            "paymongo",
            "moonclerk",
            "snipcart",
            "gumroad",
            "taxjar",
            "plaid",
            "finicity",
            "commercejs",
            "column",
            "requestfinance",
            "lunchmoney",
            "youneedabudget",
            "chartmogul",
            "baremetrics",
            "oanda",
            "tradier",
            "storecove",
            "loyverse",
            "paydirtapp",
        ],
    ),
    (
        "messaging & chat",
        &[
            "slack",
            "discord",
            "telegrambottoken",
            "microsoft_teams",
            "microsoftteamswebhook",
            "twilio",
            "telnyx",
            "line",
            "linenotify",
            "messagebird",
            "sendbird",
            "pubnub",
            "nexmo",
            "vonage",
            "d7network",
            "tyntec",
            "mesibo",
            "voodoosms",
            "plivo",
            "sinch",
            "mailjetsms",
            "apifonica",
            "documo",
            "dailyco",
            "zapierwebhook",
            "tineswebhook",
            "pushbullet",
            "onesignal",
            "courier",
            "front",
            "intercom",
            "helpcrunch",
            "twitchaccesstoken",
            "twitter",
            "twitter_v1",
            "twitter_v2",
            "facebook",
            "linkedin",
            "youtube",
            "instabot",
            "ayrshare",
            "flickr",
            "disqus",
        ],
    ),
    (
        "email",
        &[
            "sendgrid",
            "mailgun",
            "mailchimp",
            "postmark",
            "sendinblue",
            "mandrill",
            "mailjetbasicauth",
            "sparkpost",
            "elasticemail",
            "mailerlite",
            "pepipost",
            "moosend",
            "mailmodo",
            "mailsac",
            "postageapp",
            "reachmail",
            "dyspatch",
            "convertkit",
            "getresponse",
            "omnisend",
            "lemlist",
            "mixmax",
            "kickbox",
            "zerobounce",
            "debounce",
            "verimail",
            "mailboxlayer",
            "hunter",
            "getemail",
        ],
    ),
    (
        "observability & ops",
        &[
            "datadog",
            "newrelic",
            "grafana",
            "sentrytoken",
            "splunk",
            "dynatrace",
            "honeycomb",
            "logzio",
            "bugsnag",
            "rollbar",
            "airbrake",
            "appoptics",
            "betterstack",
            "pagerdutyapikey",
            "opsgenie",
            "statuspage",
            "statuspal",
            "uptimerobot",
            "checklyhq",
            "raven",
            "statuscake",
            "loggly",
            "fullstory",
            "fullstory_v2",
            "apimetrics",
            "gtmetrix",
            "dareboost",
            "atera",
            "geckoboard",
            "databox",
            "klipfolio",
        ],
    ),
    (
        "package registries",
        &[
            "npm",
            "pypi",
            "rubygems",
            "nuget",
            "crates.io",
            "artifactory",
            "packagecloud",
            "cloudsmith",
            "gradle",
            "readme",
            "crowdin",
            "lokalisetoken",
            "versioneye",
        ],
    ),
    (
        "keys, hashes & generic",
        &[
            "generic",
            "hashes",
            "pem",
            "privkey",
            "jwt",
            "credentials",
            "netrc",
            "uri",
            "ftp",
            "psexec",
            "django",
            "react",
            "sslmate",
        ],
    ),
];

const OTHER: &str = "other SaaS APIs";

/// Kingfisher rules (by name) whose examples are identifiers, not secrets: client and app
/// ids, account, org and user names, hostnames and domains, public keys. vault-scan has no
/// rule for them on purpose (issue 18: identifier-only rules are left out, and left out of
/// the count); they are counted apart.
const IDENTIFIERS: &[&str] = &[
    "Adobe IO Product ID",
    "Age Recipient (X25519 public key)",
    "Algolia Application ID",
    "Anypoint Organization ID",
    "Artifactory JFrog URL",
    "Asana Client ID",
    "Auth0 Client ID",
    "Auth0 Domain",
    "Azure DevOps Org Name",
    "Azure OpenAI Host",
    "Azure Search URL",
    "Azure Storage Account Name",
    "Bitbucket Client ID",
    "Confluent Client ID",
    "Databricks Domain",
    "Discord Bot ID",
    "Eagle Eye Networks Email",
    "Facebook App ID",
    "GCP Private Key ID",
    "GitHub Client ID",
    "Google Client ID",
    "Jira Domain",
    "LinkedIn Client ID",
    "Mapbox Public Access Token",
    "MongoDB API PUBLIC Key",
    "Okta Domain",
    "PayPal OAuth Client ID",
    "PlanetScale Username",
    "React App Username",
    "Salesforce Instance URL",
    "Shopify Domain",
    "Snowflake Account Identifier",
    "Snowflake Username",
    "SonarQube Host",
    "Spotify API ID",
    // Square's `sq0idp-` application id: public, it is passed to the Web Payments SDK in the
    // browser (the secrets are the `EAAA` access token and the `sq0csp-` OAuth secret).
    "Squareup API Key",
    "Twilio API ID",
    "Twitter Client ID",
];

fn family(provider: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(_, members)| members.contains(&provider))
        .map_or(OTHER, |(name, _)| name)
}

/// Found/total counts: positives found, positives counted, negatives reported, negatives;
/// and, apart, identifier examples and positives whose provider checksum fails (found only
/// with `--include-invalid`, as the suite's README expects of a checksum-verifying scanner).
#[derive(Default, Clone, Copy)]
struct Counts {
    pos_found: u32,
    pos: u32,
    neg_found: u32,
    neg: u32,
    identifiers: u32,
    bad_checksum: u32,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.pos_found += o.pos_found;
        self.pos += o.pos;
        self.neg_found += o.neg_found;
        self.neg += o.neg;
        self.identifiers += o.identifiers;
        self.bad_checksum += o.bad_checksum;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut per_provider = false;
    let mut misses = false;
    for a in args.by_ref() {
        if a == "--providers" {
            per_provider = true;
        } else if a == "--misses" {
            misses = true;
        } else {
            path = Some(a);
        }
    }
    let Some(path) = path else {
        eprintln!("usage: breadth [--providers] [--misses] kingfisher-examples.json");
        std::process::exit(2);
    };
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(2)
    });
    let doc: serde_json::Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
        eprintln!("invalid JSON: {e}");
        std::process::exit(2)
    });
    let scanner = Scanner::builtin().expect("built-in rules compile");
    let opts = ScanOptions::default();
    let invalid_too = ScanOptions {
        include_invalid: true,
        ..ScanOptions::default()
    };
    let mut per: BTreeMap<String, Counts> = BTreeMap::new();
    for ex in doc["examples"].as_array().into_iter().flatten() {
        let provider = ex["provider"].as_str().unwrap_or("?").to_string();
        let body = ex["text"].as_str().unwrap_or("");
        let found_with = |o: &ScanOptions| {
            !scan_bytes(&scanner, None, "snippet.txt", body.as_bytes(), o)
                .findings
                .is_empty()
        };
        let found = found_with(&opts);
        let e = per.entry(provider.clone()).or_default();
        let positive = ex["kind"] == "positive";
        if positive && IDENTIFIERS.contains(&ex["rule"].as_str().unwrap_or("")) {
            e.identifiers += 1;
            continue;
        }
        if positive && !found && found_with(&invalid_too) {
            e.bad_checksum += 1;
            continue;
        }
        if misses && found != positive {
            println!(
                "{}\t{}\t{}\t{}",
                family(&provider),
                provider,
                ex["kind"].as_str().unwrap_or("?"),
                body.replace('\n', "\\n")
            );
        }
        if positive {
            e.pos += 1;
            e.pos_found += u32::from(found);
        } else {
            e.neg += 1;
            e.neg_found += u32::from(found);
        }
    }

    // family -> (counts, providers, providers with any positive found)
    let mut fam: BTreeMap<&str, (Counts, u32, u32)> = BTreeMap::new();
    let mut total = Counts::default();
    let mut prov_hit = 0;
    for (p, c) in &per {
        if per_provider {
            println!(
                "{p:28} positives {:3}/{:3}  negatives reported {:3}/{:3}",
                c.pos_found, c.pos, c.neg_found, c.neg
            );
        }
        let f = fam.entry(family(p)).or_default();
        f.0.add(c);
        f.1 += 1;
        f.2 += u32::from(c.pos_found > 0);
        total.add(c);
        prov_hit += u32::from(c.pos_found > 0);
    }
    let mut rows: Vec<_> = fam.into_iter().collect();
    // Named families by number of positives; the catch-all last.
    rows.sort_by_key(|(name, (c, _, _))| (*name == OTHER, std::cmp::Reverse(c.pos)));
    println!(
        "{:24} {:>15} {:>16} {:>11} {:>11} {:>12}",
        "family", "positives found", "providers found", "negatives", "identifiers", "bad checksum"
    );
    for (name, (c, provs, hit)) in &rows {
        let pct = if c.pos == 0 {
            0.0
        } else {
            100.0 * f64::from(c.pos_found) / f64::from(c.pos)
        };
        println!(
            "{name:24} {:>6}/{:<4} {pct:3.0}% {:>9}/{:<6} {:>5}/{:<5} {:>11} {:>12}",
            c.pos_found, c.pos, hit, provs, c.neg_found, c.neg, c.identifiers, c.bad_checksum
        );
    }
    println!(
        "TOTAL positives {}/{} ({:.1}%), providers with any positive found {prov_hit}/{}, negatives reported {}/{}; left out: {} identifier examples, {} with a failing checksum",
        total.pos_found,
        total.pos,
        100.0 * f64::from(total.pos_found) / f64::from(total.pos.max(1)),
        per.len(),
        total.neg_found,
        total.neg,
        total.identifiers,
        total.bad_checksum
    );
}
