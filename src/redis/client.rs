//! The `redis::Client` a store connects with: its URL and, with the `redis-tls` cargo feature, the
//! builder's TLS settings (a CA of one's own, a client certificate for mutual TLS).
//!
//! [`connect`](super::connect) calls [`open`] for its client. The builder's settings reach it
//! through [`with_settings`], a task-local scope around the `connect` future, so that `connect`
//! keeps its signature (the executor is being rewritten beside this module).
//!
//! With TLS or credentials in the URL, [`open`] also makes one probe connection (the TLS
//! handshake, the URL's `AUTH`, one `PING`) before the connection manager makes its own: the
//! manager's error would carry rustls's own words (`invalid peer certificate: UnknownIssuer`) or
//! call a wrong password a connection error, and a refused client certificate shows only on the
//! first read. The probe turns each into a [`KvError::Backend`] that says what is wrong and what
//! to do (see `tls_refusal`), of a kind that says whether retrying can help: `Config` for a
//! certificate problem, `Refused` for credentials, `Connection`/`Timeout` for the network.

use std::sync::Arc;

use crate::error::{BackendErrorKind, KvError};

/// The builder's connection settings beyond the URL. Empty without the `redis-tls` feature.
/// Its `Debug` never prints certificates or keys.
#[derive(Clone, Default)]
pub(crate) struct ClientSettings {
    /// CA certificates (PEM) trusted beside the system's roots, from
    /// [`KvBuilder::redis_ca_certificate`](crate::KvBuilder::redis_ca_certificate).
    #[cfg(feature = "redis-tls")]
    pub(crate) ca_certificates: Vec<Vec<u8>>,
    /// The client certificate chain and its private key (PEM), from
    /// [`KvBuilder::redis_client_certificate`](crate::KvBuilder::redis_client_certificate).
    #[cfg(feature = "redis-tls")]
    pub(crate) client_certificate: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientSettings {
    /// Whether any TLS setting was given (then the URL must be `rediss://`).
    fn has_tls(&self) -> bool {
        #[cfg(feature = "redis-tls")]
        {
            !self.ca_certificates.is_empty() || self.client_certificate.is_some()
        }
        #[cfg(not(feature = "redis-tls"))]
        {
            false
        }
    }
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("ClientSettings");
        #[cfg(feature = "redis-tls")]
        debug
            .field("ca_certificates", &self.ca_certificates.len())
            .field(
                "client_certificate",
                &self.client_certificate.as_ref().map(|_| "<redacted>"),
            );
        debug.finish()
    }
}

tokio::task_local! {
    /// The settings of the `connect` running in this task (see [`with_settings`]).
    static SETTINGS: ClientSettings;
}

/// Runs `connect` (the executor's `connect` future) with `settings` visible to [`open`].
pub(crate) async fn with_settings<F: std::future::Future>(
    settings: ClientSettings,
    connect: F,
) -> F::Output {
    SETTINGS.scope(settings, connect).await
}

/// How long the probe may take, TLS handshake, `AUTH` and `PING` together.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The client for `url`, with the settings of the surrounding [`with_settings`] (none outside
/// one). A `rediss://` URL, or one with credentials, is probed once (see the module docs).
///
/// # Errors
/// [`KvError::Backend`] of kind [`Config`](BackendErrorKind::Config) for an invalid URL, TLS
/// settings without a `rediss://` URL, a PEM that holds no certificate or key, or a certificate
/// the other side refuses; of kind `Connection` or `Timeout` when the TLS server cannot be
/// reached; `Refused` when it refuses the URL's credentials.
pub(crate) async fn open(url: &str) -> Result<redis::Client, KvError> {
    let settings = SETTINGS.try_with(Clone::clone).unwrap_or_default();
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(invalid_url)?;
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if settings.has_tls() && !tls {
        return Err(config(format!(
            "TLS settings (`redis_ca_certificate`, `redis_client_certificate`) need a `rediss://` \
             URL, but `{}` is not one",
            info.addr()
        )));
    }
    let redis = info.redis_settings();
    let credentials = redis.username().is_some() || redis.password().is_some();
    let client = build(info, &settings, tls)?;
    if tls || credentials {
        probe(&client, tls).await?;
    }
    Ok(client)
}

/// The client for `info`: with the builder's TLS settings when `tls`.
fn build(
    info: redis::ConnectionInfo,
    settings: &ClientSettings,
    tls: bool,
) -> Result<redis::Client, KvError> {
    #[cfg(feature = "redis-tls")]
    if tls {
        return tls_client(info, settings);
    }
    let _ = (settings, tls);
    redis::Client::open(info).map_err(invalid_url)
}

/// Opens clients to single nodes of a cluster with the seed URL's credentials and TLS, and the
/// builder's TLS settings: for the connections the executor makes to one node itself (the
/// optimistic calls' `WATCH`, a `SCAN` of each primary).
#[derive(Clone)]
pub(crate) struct NodeOpener {
    info: redis::ConnectionInfo,
    settings: ClientSettings,
}

impl NodeOpener {
    /// A client for the node at `host:port`.
    pub(crate) fn client(&self, host: &str, port: u16) -> Result<redis::Client, KvError> {
        let tls = matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let addr = if tls {
            redis::ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host.to_owned(), port)
        };
        build(self.info.clone().set_addr(addr), &self.settings, tls)
    }
}

/// The cluster client for the seed node URLs `urls`, with the settings of the surrounding
/// [`with_settings`], built by `configure` (timeouts, retries), and an opener for single nodes.
/// The first seed is probed as [`open`] probes a server (TLS or credentials), for the same clear
/// errors.
///
/// # Errors
/// As [`open`]; also [`Config`](BackendErrorKind::Config) for no URL, or seeds that differ in
/// their credentials.
pub(crate) async fn open_cluster(
    urls: Vec<String>,
    configure: impl FnOnce(redis::cluster::ClusterClientBuilder) -> redis::cluster::ClusterClientBuilder,
) -> Result<(redis::cluster::ClusterClient, NodeOpener), KvError> {
    let settings = SETTINGS.try_with(Clone::clone).unwrap_or_default();
    let infos = urls
        .iter()
        .map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid_url)?;
    let Some(first) = infos.first().cloned() else {
        return Err(config(
            "redis_cluster needs at least one seed node URL (`redis://host:port`)".to_owned(),
        ));
    };
    let tls = matches!(first.addr(), redis::ConnectionAddr::TcpTls { .. });
    if infos
        .iter()
        .any(|info| matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) != tls)
    {
        return Err(config(
            "the seed node URLs of a cluster must all be `rediss://` or all `redis://`".to_owned(),
        ));
    }
    if settings.has_tls() && !tls {
        return Err(config(format!(
            "TLS settings (`redis_ca_certificate`, `redis_client_certificate`) need `rediss://` \
             URLs, but `{}` is not one",
            first.addr()
        )));
    }
    let redis = first.redis_settings();
    if redis.protocol() == redis::ProtocolVersion::RESP3 {
        return Err(config(
            "RESP3 connections are not supported (a reconnection between WATCH and EXEC would go \
             unnoticed); use RESP2 URLs, without `protocol=resp3`"
                .to_owned(),
        ));
    }
    let credentials = redis.username().is_some() || redis.password().is_some();
    let seed = build(first.clone(), &settings, tls)?;
    if tls || credentials {
        probe(&seed, tls).await?;
    }
    #[allow(unused_mut)]
    let mut builder = configure(redis::cluster::ClusterClientBuilder::new(infos));
    #[cfg(feature = "redis-tls")]
    if tls {
        builder = builder.certs(tls_certificates(&settings)?);
    }
    let client = builder.build().map_err(|error| KvError::Backend {
        kind: BackendErrorKind::Config,
        message: format!("invalid Redis Cluster seed URLs: {error}"),
        source: Some(Arc::new(error)),
    })?;
    Ok((
        client,
        NodeOpener {
            info: first,
            settings,
        },
    ))
}

/// An error in the URL, or a `rediss://` URL without the `redis-tls` feature.
fn invalid_url(error: redis::RedisError) -> KvError {
    let hint = if error.to_string().contains("TLS") && cfg!(not(feature = "redis-tls")) {
        " (`rediss://` URLs need the `redis-tls` cargo feature of ephemeral-kv)"
    } else {
        ""
    };
    KvError::Backend {
        kind: BackendErrorKind::Config,
        message: format!("invalid Redis URL: {error}{hint}"),
        source: Some(Arc::new(error)),
    }
}

/// A [`KvError::Backend`] of kind [`Config`](BackendErrorKind::Config) without a source.
fn config(message: String) -> KvError {
    KvError::Backend {
        kind: BackendErrorKind::Config,
        message,
        source: None,
    }
}

/// The TLS client: the system's roots plus the builder's CAs, and the client certificate.
#[cfg(feature = "redis-tls")]
fn tls_client(
    info: redis::ConnectionInfo,
    settings: &ClientSettings,
) -> Result<redis::Client, KvError> {
    redis::Client::build_with_tls(info, tls_certificates(settings)?).map_err(|error| {
        KvError::Backend {
            kind: BackendErrorKind::Config,
            message: format!("invalid TLS settings: {error}"),
            source: Some(Arc::new(error)),
        }
    })
}

/// The roots and client certificate the builder's TLS settings give.
#[cfg(feature = "redis-tls")]
fn tls_certificates(settings: &ClientSettings) -> Result<redis::TlsCertificates, KvError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    install_crypto_provider();
    let certificates = |what: &str, pem: &[u8]| -> Result<Vec<CertificateDer<'static>>, KvError> {
        let parsed = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| config(format!("{what}: cannot read the PEM: {error}")))?;
        if parsed.is_empty() {
            return Err(config(format!(
                "{what}: no `-----BEGIN CERTIFICATE-----` block in the PEM given"
            )));
        }
        Ok(parsed)
    };
    let root_cert = if settings.ca_certificates.is_empty() {
        None // the redis crate then trusts the system's roots alone
    } else {
        // The redis crate trusts either the system's roots or the PEM given: give it both.
        let mut pem = Vec::new();
        for ca in &settings.ca_certificates {
            certificates("redis_ca_certificate", ca)?;
            pem.extend_from_slice(ca);
            pem.push(b'\n');
        }
        let system = rustls_native_certs::load_native_certs();
        for error in &system.errors {
            tracing::debug!(%error, "a system root certificate could not be loaded");
        }
        for root in system.certs {
            pem.extend_from_slice(&pem_block(&root));
        }
        Some(pem)
    };
    let client_tls = match &settings.client_certificate {
        None => None,
        Some((cert, key)) => {
            certificates("redis_client_certificate (certificate)", cert)?;
            PrivateKeyDer::from_pem_slice(key).map_err(|error| {
                config(format!(
                    "redis_client_certificate (key): no private key in the PEM given: {error}"
                ))
            })?;
            Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            })
        }
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// Makes sure rustls has a process-wide crypto provider. The redis crate builds its rustls
/// configurations with `rustls::ClientConfig::builder()`, which needs one and panics without it,
/// and the redis crate installs none. An application that installed its own keeps it; otherwise
/// this crate installs `ring`'s, once.
#[cfg(feature = "redis-tls")]
fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err only if another thread installed one meanwhile: that one is used, as wanted.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// One certificate as a PEM block.
#[cfg(feature = "redis-tls")]
fn pem_block(der: &[u8]) -> Vec<u8> {
    let encoded = base64(der);
    let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in encoded.as_bytes().chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    pem
}

/// Standard base64 with padding (RFC 4648), for [`pem_block`].
#[cfg(feature = "redis-tls")]
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One connection with the client: TLS handshake, the URL's credentials, a `PING` (a refused
/// client certificate shows only on the first read under TLS 1.3). Its failure is the store's.
async fn probe(client: &redis::Client, tls: bool) -> Result<(), KvError> {
    let address = client.get_connection_info().addr().to_string();
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PROBE_TIMEOUT))
        .set_response_timeout(Some(PROBE_TIMEOUT));
    let attempt = async {
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING").query_async::<()>(&mut connection).await
    };
    let failure = match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(error)) if !error.is_timeout() => return Err(probe_error(client, error)),
        Ok(Err(error)) => Some(error),
        Err(_) => None,
    };
    let hint = if tls {
        " (a plain, non-TLS port never answers a TLS client: check that the URL's port is the \
         server's `tls-port`)"
    } else {
        ""
    };
    Err(KvError::Backend {
        kind: BackendErrorKind::Timeout,
        message: format!(
            "cannot connect to Redis at {address}: no answer within {PROBE_TIMEOUT:?}{hint}"
        ),
        source: failure.map(|error| Arc::new(error) as _),
    })
}

/// The probe's failure as a [`KvError::Backend`]: a TLS refusal in words (see `tls_refusal`),
/// refused credentials, or the redis crate's error with its kind.
fn probe_error(client: &redis::Client, error: redis::RedisError) -> KvError {
    let info = client.get_connection_info();
    let address = info.addr().to_string();
    let text = error.to_string();
    #[cfg(feature = "redis-tls")]
    let refusal = {
        let host = address.rsplit_once(':').map_or(&*address, |(host, _)| host);
        tls_refusal(&text, host)
    };
    #[cfg(not(feature = "redis-tls"))]
    let refusal: Option<String> = None;
    let (kind, message) = if let Some(refusal) = refusal {
        (
            BackendErrorKind::Config,
            format!("cannot connect to Redis at {address}: {refusal} (TLS: {text})"),
        )
    } else if error.kind() == redis::ErrorKind::AuthenticationFailed {
        let user = info.redis_settings().username().unwrap_or("default");
        (
            BackendErrorKind::Refused,
            format!(
                "cannot connect to Redis at {address}: the server refused the URL's credentials \
                 for user `{user}` (a wrong password, or a user that does not exist or is off: \
                 WRONGPASS): {text}"
            ),
        )
    } else {
        let kind = if matches!(error.kind(), redis::ErrorKind::Server(_)) {
            BackendErrorKind::Refused
        } else if error.kind() == redis::ErrorKind::InvalidClientConfig {
            BackendErrorKind::Config
        } else {
            BackendErrorKind::Connection
        };
        (
            kind,
            format!("cannot connect to Redis at {address}: {text}"),
        )
    };
    tracing::warn!(%error, "{message}");
    KvError::Backend {
        kind,
        message,
        source: Some(Arc::new(error)),
    }
}

/// What a TLS failure means, from rustls's words for it (its `Display` of `rustls::Error`, which
/// reaches us only as text inside an `io::Error`); `None` when `text` is no TLS refusal.
#[cfg(feature = "redis-tls")]
fn tls_refusal(text: &str, host: &str) -> Option<String> {
    let has = |needle: &str| text.contains(needle);
    let refusal = if has("UnknownIssuer") {
        "the server's TLS certificate has an unknown issuer: it is signed by a CA that is neither \
         among the system's roots nor given to `redis_ca_certificate`"
            .to_owned()
    } else if has("not valid for name") || has("NotValidForName") {
        format!(
            "the server's TLS certificate is for another host name: it is not valid for `{host}`, \
             the URL's host (connect with a name the certificate lists, or give the server a \
             certificate for this one)"
        )
    } else if has("certificate expired") || has("Expired") {
        "the server's TLS certificate has expired (renew the server's certificate)".to_owned()
    } else if has("not valid yet") || has("NotValidYet") {
        "the server's TLS certificate is not valid yet (check the clocks)".to_owned()
    } else if has("CertificateRequired") || has("HandshakeFailure") {
        "the server requires a client certificate (mutual TLS): give one with \
         `redis_client_certificate`"
            .to_owned()
    } else if has("alert: UnknownCA") || has("alert: BadCertificate") || has("alert: Certificate") {
        "the server refused the client certificate (it does not trust its issuer, or the \
         certificate is expired or not for client authentication)"
            .to_owned()
    } else if has("invalid peer certificate") {
        "the server's TLS certificate was refused".to_owned()
    } else if has("corrupt message") || has("InvalidContentType") {
        "the server does not speak TLS on this port (use `redis://` for a plain port)".to_owned()
    } else {
        return None;
    };
    Some(refusal)
}

#[cfg(all(test, feature = "redis-tls"))]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn pem_blocks_read_back_as_the_same_certificate() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_block(&der);
        let back = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(back.as_ref(), &der[..]);
    }

    #[test]
    fn rustls_refusals_are_named() {
        let named = |text: &str| tls_refusal(text, "127.0.0.1").unwrap_or_default();
        assert!(named("invalid peer certificate: UnknownIssuer").contains("unknown issuer"));
        assert!(named(
            "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate \
             is only valid for DnsName(\"x\")"
        )
        .contains("another host name"));
        assert!(named(
            "invalid peer certificate: certificate expired: verification time 2 (UNIX), but \
             certificate is not valid after 1 (1 seconds ago)"
        )
        .contains("expired"));
        assert!(named("received fatal alert: CertificateRequired").contains("client certificate"));
        assert_eq!(tls_refusal("Connection refused (os error 111)", "h"), None);
    }
}
