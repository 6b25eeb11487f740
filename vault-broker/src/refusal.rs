//! The broker's own refusals: JSON in the vault's error shape
//! `{"error":{"code","message"}}` with a stable code, and the header
//! `x-vault-broker: refused`, so an SDK (or a person) can tell a refusal by the
//! broker from an error the upstream sent. Messages say what the operator can
//! run; they never hold a value.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

/// The header set on every response the broker itself makes.
pub const REFUSAL_HEADER: &str = "x-vault-broker";

/// Why the broker refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// A request held for a person was too large to hold (`approval = true` rules).
    ApprovalBodyTooLarge,
    /// A person denied the held request (or its approval did not verify).
    ApprovalDenied,
    /// The agent already has [`crate::MAX_HELD_PER_AGENT`] requests held.
    ApprovalQueueFull,
    /// Nobody decided on the held request within the policy's `approval_wait`.
    ApprovalTimeout,
    /// A CONNECT target that is not `host:port`, or a request the proxy does not take.
    BadProxyRequest,
    /// The broker already serves its `max_connections` client connections.
    BrokerBusy,
    /// The agent is over its `[budget]` `budget_usd_per_day` or `budget_usd_per_month`.
    BudgetExceeded,
    /// No rule of the agent's policy covers the host and path.
    EgressDenied,
    /// A request body in a Content-Encoding the broker does not scan (gzip, br...).
    EgressBodyEncoded,
    /// Plain `http://` (and absolute-form `https://`) is not brokered.
    EgressHttpRefused,
    /// A rule covers the host and path, not the method (TRACE/TRACK always).
    EgressMethodDenied,
    /// `auth = "path"` but the path holds no placeholder.
    EgressPlaceholderMissing,
    /// The agent is over its `[budget]` `requests_per_minute` or `tokens_per_minute`.
    EgressRateLimited,
    /// The target resolves to an address the SSRF guard refuses.
    EgressPrivateAddress,
    /// The stored secret cannot be carried where the rule puts it (CR/LF...).
    EgressSecretUnusable,
    /// The request carried a credential the vault manages, or a provider
    /// secret, out of the agent (`egress_scan = "block"`).
    ExfiltrationBlocked,
    /// The request's headers are larger than the broker reads.
    HeadersTooLarge,
    /// Something inside the broker failed; details are in its log.
    Internal,
    /// No, or a bad, vault credential in Proxy-Authorization.
    ProxyAuthRequired,
    /// The upstream could not be resolved or connected to, or timed out.
    UpstreamUnreachable,
    /// The upstream's TLS certificate did not verify, or the handshake failed.
    UpstreamTls,
    /// A WebSocket message longer than the broker holds to scan (sent as a close reason).
    WebsocketMessageTooLarge,
}

impl Code {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ApprovalBodyTooLarge => "approval_body_too_large",
            Code::ApprovalDenied => "approval_denied",
            Code::ApprovalQueueFull => "approval_queue_full",
            Code::ApprovalTimeout => "approval_timeout",
            Code::BadProxyRequest => "bad_proxy_request",
            Code::BrokerBusy => "broker_busy",
            Code::BudgetExceeded => "budget_exceeded",
            Code::EgressDenied => "egress_denied",
            Code::EgressBodyEncoded => "egress_body_encoded",
            Code::EgressHttpRefused => "egress_http_refused",
            Code::EgressMethodDenied => "egress_method_denied",
            Code::EgressPlaceholderMissing => "egress_placeholder_missing",
            Code::EgressRateLimited => "egress_rate_limited",
            Code::EgressPrivateAddress => "egress_private_address",
            Code::EgressSecretUnusable => "egress_secret_unusable",
            Code::ExfiltrationBlocked => "exfiltration_blocked",
            Code::HeadersTooLarge => "headers_too_large",
            Code::Internal => "internal",
            Code::ProxyAuthRequired => "proxy_auth_required",
            Code::UpstreamUnreachable => "upstream_unreachable",
            Code::UpstreamTls => "upstream_tls",
            Code::WebsocketMessageTooLarge => "websocket_message_too_large",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::BadProxyRequest | Code::EgressHttpRefused => StatusCode::BAD_REQUEST,
            // 403, not 408/409/429/5xx: SDKs retry those, and a retried held
            // request would open another approval.
            Code::EgressDenied
            | Code::EgressPrivateAddress
            | Code::ApprovalDenied
            | Code::ApprovalTimeout
            | Code::ApprovalQueueFull
            | Code::ExfiltrationBlocked => StatusCode::FORBIDDEN,
            Code::BrokerBusy => StatusCode::SERVICE_UNAVAILABLE,
            Code::ApprovalBodyTooLarge | Code::WebsocketMessageTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Code::EgressBodyEncoded => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::EgressMethodDenied => StatusCode::METHOD_NOT_ALLOWED,
            Code::EgressPlaceholderMissing => StatusCode::BAD_REQUEST,
            Code::EgressSecretUnusable | Code::UpstreamUnreachable | Code::UpstreamTls => {
                StatusCode::BAD_GATEWAY
            }
            Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::ProxyAuthRequired => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            // Not 429 or 5xx: the official openai and anthropic SDKs retry
            // those (and 408, 409), and a retry loop against a budget is the
            // runaway it exists to stop. 402 and 403 they give up on at once.
            Code::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            Code::EgressRateLimited => StatusCode::FORBIDDEN,
        }
    }
}

/// Whose error JSON a refusal is written in: the vault's, or a model
/// provider's, so that provider's SDK shows the message rather than a parse error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error":{"code","message"}}`.
    #[default]
    Vault,
    /// OpenAI's (and OpenRouter's, Gemini's close enough): `{"error":{"message","type","code"}}`.
    OpenAi,
    /// Anthropic's: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

impl ErrorShape {
    /// The shape `provider`'s SDK reads.
    pub fn of(provider: vault_core::usage::Provider) -> ErrorShape {
        match provider {
            vault_core::usage::Provider::Anthropic => ErrorShape::Anthropic,
            _ => ErrorShape::OpenAi,
        }
    }
}

/// A refusal: a code and a message fit for the agent to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The stable code.
    pub code: Code,
    /// What happened and what the operator can run; never a value.
    pub message: String,
    /// The error JSON's shape.
    pub shape: ErrorShape,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            shape: ErrorShape::Vault,
        }
    }

    /// The same refusal written in `shape`.
    pub fn shaped(mut self, shape: ErrorShape) -> Refusal {
        self.shape = shape;
        self
    }

    /// The HTTP response the agent gets.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let code = self.code.as_str();
        let body = match self.shape {
            ErrorShape::Vault => serde_json::json!({
                "error": { "code": code, "message": self.message }
            }),
            ErrorShape::OpenAi => serde_json::json!({
                "error": { "message": self.message, "type": "vault_broker", "code": code }
            }),
            ErrorShape::Anthropic => serde_json::json!({
                "type": "error", "error": { "type": code, "message": self.message }
            }),
        };
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = self.code.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        headers.insert(REFUSAL_HEADER, header::HeaderValue::from_static("refused"));
        if matches!(self.code, Code::BudgetExceeded | Code::EgressRateLimited) {
            // Both official SDKs honour this before looking at the status.
            headers.insert("x-should-retry", header::HeaderValue::from_static("false"));
        }
        if self.code == Code::ProxyAuthRequired {
            headers.insert(
                header::PROXY_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"vault\""),
            );
        }
        response
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}
