//! TLS `redis-server`s of the test's own, with certificates the test makes with `rcgen`: a CA, a
//! good server certificate (for `127.0.0.1` and `localhost`), an expired one, one for another host
//! name, one signed by a CA nobody trusts, and a client certificate for mutual TLS.
//!
//! [`TlsServer::start`] says the test is skipped and returns `None` when `redis-server` is not on
//! PATH (as [`RedisServer::start`](super::redis_server::RedisServer::start) does), and panics
//! with the server's log when it has no TLS support (`--tls-port` needs a build with OpenSSL, as
//! Debian's `redis-server` package is).

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use super::redis_process::{free_port, ScratchDir, ServerProcess};
use super::redis_server::available;

/// A CA: its certificate (PEM) and what it needs to sign others.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Its certificate in PEM form, as `redis_ca_certificate` and `--tls-ca-cert-file` take it.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate it signs for `names` (IP addresses or DNS names), valid now unless
    /// `expired`, for both server and client authentication.
    pub fn issue(&self, names: &[&str], expired: bool) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A certificate and its private key, in PEM form.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// Which certificate a [`TlsServer`] presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCert {
    /// Signed by the test CA, for `127.0.0.1` and `localhost`, valid now.
    Good,
    /// Signed by the test CA, for `127.0.0.1`, but expired in 2021.
    Expired,
    /// Signed by the test CA, valid now, but for `wrong.example.test` only.
    WrongHost,
    /// For `127.0.0.1`, valid now, but signed by another CA that no client is given.
    UnknownIssuer,
}

/// Whether a [`TlsServer`] asks clients for a certificate (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `optional`: a client may present one (checked against the test CA) or none.
    Optional,
    /// `yes`: mutual TLS, a client without a certificate signed by the test CA is refused.
    Required,
}

/// A TLS-only `redis-server` (`--port 0 --tls-port N`) on a free loopback port.
pub struct TlsServer {
    server: ServerProcess,
    /// The CA that signed the server's certificate (except for [`ServerCert::UnknownIssuer`]) and
    /// that the server trusts for client certificates.
    pub ca: Ca,
    _dir: ScratchDir,
}

impl TlsServer {
    /// Starts a server presenting `cert`, asking for client certificates as `clients` says; or
    /// says why not and returns `None`.
    pub async fn start(test: &str, cert: ServerCert, clients: ClientAuth) -> Option<TlsServer> {
        if !available("redis-server", test) {
            return None;
        }
        let dir = ScratchDir::new("tls");
        let ca = Ca::new("ephemeral-kv test CA");
        let issued = match cert {
            ServerCert::Good => ca.issue(&["127.0.0.1", "localhost"], false),
            ServerCert::Expired => ca.issue(&["127.0.0.1", "localhost"], true),
            ServerCert::WrongHost => ca.issue(&["wrong.example.test"], false),
            ServerCert::UnknownIssuer => {
                Ca::new("a CA nobody trusts").issue(&["127.0.0.1", "localhost"], false)
            }
        };
        let port = free_port();
        let args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            dir.write("server.crt", &issued.cert_pem),
            "--tls-key-file".to_owned(),
            dir.write("server.key", &issued.key_pem),
            "--tls-ca-cert-file".to_owned(),
            dir.write("ca.crt", ca.pem()),
            "--tls-auth-clients".to_owned(),
            match clients {
                ClientAuth::Optional => "optional",
                ClientAuth::Required => "yes",
            }
            .to_owned(),
        ];
        let server = ServerProcess::start(dir.path(), port, &args).await;
        Some(TlsServer {
            server,
            ca,
            _dir: dir,
        })
    }

    /// The URL to connect to it, `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.server.port())
    }

    /// A client certificate the server accepts (signed by its CA).
    pub fn client_certificate(&self) -> Issued {
        self.ca.issue(&["ephemeral-kv-test-client"], false)
    }
}
