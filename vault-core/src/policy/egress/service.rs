//! The built-in service shorthands (`service = "openai"` in an `[[egress]]`
//! rule): each names its API host, how it takes the credential, and the
//! secret name it attaches by default.

use serde::{Deserialize, Serialize};

/// The built-in service shorthands (`service = "openai"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Service {
    /// api.anthropic.com, `x-api-key`.
    Anthropic,
    /// generativelanguage.googleapis.com, `x-goog-api-key`.
    Gemini,
    /// api.github.com, bearer.
    Github,
    /// gitlab.com, `private-token`.
    Gitlab,
    /// huggingface.co, bearer.
    Huggingface,
    /// api.openai.com, bearer.
    Openai,
    /// openrouter.ai, bearer.
    Openrouter,
    /// slack.com, bearer.
    Slack,
    /// api.stripe.com, bearer.
    Stripe,
    /// api.telegram.org, the token in the path (`/bot<TOKEN>/`).
    Telegram,
}

/// What a [`Service`] expands to.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSpec {
    /// The host pattern.
    pub host: &'static str,
    /// The auth scheme, as written in a rule.
    pub auth: &'static str,
    /// The secret name used when the rule names none.
    pub secret: &'static str,
    /// A path prefix the service implies, if any.
    pub path_prefix: Option<&'static str>,
}

impl Service {
    /// Every service, in `vault egress services` order.
    pub const ALL: [Service; 10] = [
        Service::Anthropic,
        Service::Gemini,
        Service::Github,
        Service::Gitlab,
        Service::Huggingface,
        Service::Openai,
        Service::Openrouter,
        Service::Slack,
        Service::Stripe,
        Service::Telegram,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Anthropic => "anthropic",
            Service::Gemini => "gemini",
            Service::Github => "github",
            Service::Gitlab => "gitlab",
            Service::Huggingface => "huggingface",
            Service::Openai => "openai",
            Service::Openrouter => "openrouter",
            Service::Slack => "slack",
            Service::Stripe => "stripe",
            Service::Telegram => "telegram",
        }
    }

    /// What it expands to.
    pub fn spec(self) -> ServiceSpec {
        let s = |host, auth, secret| ServiceSpec {
            host,
            auth,
            secret,
            path_prefix: None,
        };
        match self {
            Service::Anthropic => s("api.anthropic.com", "header:x-api-key", "ANTHROPIC_API_KEY"),
            Service::Gemini => s(
                "generativelanguage.googleapis.com",
                "header:x-goog-api-key",
                "GEMINI_API_KEY",
            ),
            Service::Github => s("api.github.com", "bearer", "GITHUB_TOKEN"),
            Service::Gitlab => s("gitlab.com", "header:private-token", "GITLAB_TOKEN"),
            Service::Huggingface => s("huggingface.co", "bearer", "HF_TOKEN"),
            Service::Openai => s("api.openai.com", "bearer", "OPENAI_API_KEY"),
            Service::Openrouter => s("openrouter.ai", "bearer", "OPENROUTER_API_KEY"),
            Service::Slack => s("slack.com", "bearer", "SLACK_BOT_TOKEN"),
            Service::Stripe => s("api.stripe.com", "bearer", "STRIPE_SECRET_KEY"),
            Service::Telegram => ServiceSpec {
                path_prefix: Some("/bot"),
                ..s("api.telegram.org", "path", "TELEGRAM_BOT_TOKEN")
            },
        }
    }
}
