//! Breadth check against Kingfisher's rule examples (../shared/peer-suite):
//! `breadth kingfisher-examples.json` prints, per provider family (AI/LLM APIs, clouds, CI/CD,
//! databases, ...), positives found / total and negatives wrongly reported, then the totals.
//! `--providers` also lists every provider.

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

fn family(provider: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(_, members)| members.contains(&provider))
        .map_or(OTHER, |(name, _)| name)
}

/// Found/total counts: positives found, positives, negatives reported, negatives.
#[derive(Default, Clone, Copy)]
struct Counts {
    pos_found: u32,
    pos: u32,
    neg_found: u32,
    neg: u32,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut per_provider = false;
    for a in args.by_ref() {
        if a == "--providers" {
            per_provider = true;
        } else {
            path = Some(a);
        }
    }
    let Some(path) = path else {
        eprintln!("usage: breadth [--providers] kingfisher-examples.json");
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
    let mut per: BTreeMap<String, Counts> = BTreeMap::new();
    for ex in doc["examples"].as_array().into_iter().flatten() {
        let provider = ex["provider"].as_str().unwrap_or("?").to_string();
        let body = ex["text"].as_str().unwrap_or("");
        let found = !scan_bytes(&scanner, None, "snippet.txt", body.as_bytes(), &opts)
            .findings
            .is_empty();
        let e = per.entry(provider).or_default();
        if ex["kind"] == "positive" {
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
        f.0.pos_found += c.pos_found;
        f.0.pos += c.pos;
        f.0.neg_found += c.neg_found;
        f.0.neg += c.neg;
        f.1 += 1;
        f.2 += u32::from(c.pos_found > 0);
        total.pos_found += c.pos_found;
        total.pos += c.pos;
        total.neg_found += c.neg_found;
        total.neg += c.neg;
        prov_hit += u32::from(c.pos_found > 0);
    }
    let mut rows: Vec<_> = fam.into_iter().collect();
    // Named families by number of positives; the catch-all last.
    rows.sort_by_key(|(name, (c, _, _))| (*name == OTHER, std::cmp::Reverse(c.pos)));
    println!(
        "{:24} {:>15} {:>16} {:>11}",
        "family", "positives found", "providers found", "negatives"
    );
    for (name, (c, provs, hit)) in &rows {
        let pct = if c.pos == 0 {
            0.0
        } else {
            100.0 * f64::from(c.pos_found) / f64::from(c.pos)
        };
        println!(
            "{name:24} {:>6}/{:<4} {pct:3.0}% {:>9}/{:<6} {:>5}/{:<5}",
            c.pos_found, c.pos, hit, provs, c.neg_found, c.neg
        );
    }
    println!(
        "TOTAL positives {}/{}, providers with any positive found {prov_hit}/{}, negatives reported {}/{}",
        total.pos_found,
        total.pos,
        per.len(),
        total.neg_found,
        total.neg
    );
}
