//! The HTTP agent the downloads share.

use std::sync::Arc;

use ureq::{
    Agent,
    tls::{PemItem, RootCerts, TlsConfig, parse_pem},
};

/// An agent that trusts the certificates in `$SSL_CERT_FILE` when it names a PEM bundle (as
/// curl, pip and OpenSSL do: the way a network whose proxy re-signs TLS tells programs its
/// certificate authority), and Mozilla's roots otherwise.
pub(crate) fn agent() -> Agent {
    let roots = std::env::var_os("SSL_CERT_FILE")
        .and_then(|path| std::fs::read(path).ok())
        .map(|pem| {
            parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .filter(|certs| !certs.is_empty());
    let mut config = Agent::config_builder();
    if let Some(certs) = roots {
        config = config.tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(certs)))
                .build(),
        );
    }
    config.build().new_agent()
}
