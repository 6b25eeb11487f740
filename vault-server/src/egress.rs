//! The egress broker beside the API (`vault server --broker ADDR`): the
//! options checked (loopback only, private ranges named on purpose, extra
//! upstream CAs), the CA loaded or created and the usage accounting seeded
//! before the vault goes to the server, then the listener started on the
//! server's runtime. The proxy itself is vault-broker's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use vault_broker::{Accounting, Config, IpNet, LocalCa};
use vault_core::prices::PriceTable;
use vault_core::{Principal, Vault};

use crate::{AppState, ServerError};

pub use vault_broker::{DEFAULT_MAX_CONNECTIONS, DEFAULT_WS_IDLE_TIMEOUT};

/// What the broker is asked to be.
#[derive(Debug)]
pub struct BrokerOptions {
    /// The loopback address to listen on (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// PEM CA files trusted for upstreams beside Mozilla's roots.
    pub upstream_ca: Vec<PathBuf>,
    /// Private ranges the broker may connect to on purpose (CIDR text).
    pub allow_private: Vec<String>,
    /// The price table usage is accounted with; `None`: no usage recorded
    /// and no `[budget]` enforced.
    pub prices: Option<PriceTable>,
    /// Client connections served at once; more get 503 `broker_busy`.
    pub max_connections: usize,
    /// A relayed WebSocket with no traffic for this long is closed.
    pub ws_idle_timeout: std::time::Duration,
}

/// A broker ready to start once the runtime runs.
pub struct Prepared {
    addr: SocketAddr,
    config: Config,
}

impl Prepared {
    /// The address it will listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate the API serves at `/v1/broker/ca.pem`.
    pub fn ca_pem(&self) -> String {
        self.config.ca.cert_pem().to_owned()
    }

    /// The usage accounting, when on (for `/metrics`).
    pub fn accounting(&self) -> Option<Arc<Accounting>> {
        self.config.accounting.clone()
    }
}

/// Checks the options and loads (or creates) the CA, before the vault goes to the server.
///
/// # Errors
/// An address that is not loopback (refused: agents send their credential
/// to the broker in clear), a bad CIDR or CA file, or the vault failing.
pub fn prepare(options: BrokerOptions, vault: &mut Vault) -> Result<Prepared, ServerError> {
    let text = &options.addr;
    let addr: SocketAddr = text.parse().map_err(|_| {
        ServerError::Usage(format!(
            "--broker {text:?} is not an address like 127.0.0.1:0"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(ServerError::Refused(format!(
            "--broker {addr} is not a loopback address: agents send their vault credential to the \
             broker in clear; use 127.0.0.1:PORT"
        )));
    }
    let allow = options
        .allow_private
        .iter()
        .map(|c| {
            c.parse::<IpNet>().map_err(|_| {
                ServerError::Usage(format!(
                    "--broker-allow-private {c:?} is not a CIDR like 127.0.0.0/8"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut pems = Vec::new();
    for file in &options.upstream_ca {
        pems.push(std::fs::read_to_string(file).map_err(|e| {
            ServerError::Usage(format!("--broker-upstream-ca {}: {e}", file.display()))
        })?);
    }
    let tls =
        vault_broker::upstream_tls_config(&pems).map_err(|e| ServerError::Usage(e.to_string()))?;
    let accounting = match options.prices {
        None => None,
        Some(prices) => {
            let accounting = Accounting::new(prices);
            // Today's and this month's spend survive a restart.
            accounting
                .seed(&vault.usage_buckets(&Principal::Operator, &Accounting::seed_filter())?);
            Some(accounting)
        }
    };
    let ca = LocalCa::load_or_create(vault).map_err(|e| ServerError::Usage(e.to_string()))?;
    Ok(Prepared {
        addr,
        config: Config {
            ca: Arc::new(ca),
            dialer: vault_broker::dial::Dialer::new(tls, allow),
            accounting,
            max_connections: options.max_connections,
            ws_idle_timeout: options.ws_idle_timeout,
        },
    })
}

/// Binds the broker and starts it on the runtime, attaching through
/// `state`'s vault; the address it listens on (the API's `GET /v1/broker`
/// answers with it from now on).
///
/// # Errors
/// The address cannot be bound.
pub async fn start(prepared: Prepared, state: AppState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(prepared.addr).await?;
    let local = listener.local_addr()?;
    let backend = Arc::new(crate::broker::VaultBackend(state.clone()));
    tokio::spawn(vault_broker::serve(
        listener,
        backend,
        prepared.config,
        std::future::pending(),
    ));
    state.set_broker_addr(format!("http://{local}"));
    Ok(local)
}
