//! HTTPS served directly: the certificate and key of `RELAY_TLS_CERT` and `RELAY_TLS_KEY`
//! (PEM), TLS 1.2 and 1.3 with rustls on the aws-lc-rs provider, HTTP/1.1 only.
//!
//! The pair is read and checked (the key must be the certificate's) before the relay starts;
//! a bad pair stops it with the file named. [`ServerTls::reload`] (on SIGHUP) reads both files
//! again, on a blocking thread: a good pair serves every handshake from then on, a bad one keeps
//! the pair in use and says why. Connections already open keep the certificate they started
//! with. Only regular files of at most [`MAX_PEM_BYTES`] are read: a FIFO would wait for a
//! writer, a device or a huge file would never end.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::BuildError;

/// The largest certificate or key file read (a real chain is a few kilobytes).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the relay's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key: PathBuf,
}

/// Why a certificate and key cannot be served; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file that is not read: not a regular file (a FIFO, a directory, a device), or larger
    /// than [`MAX_PEM_BYTES`].
    #[error("could not read {}: {reason}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate file holds no PEM certificate, or one that does not parse.
    #[error("{} holds no usable PEM certificate: {reason}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file holds no PEM private key rustls can use.
    #[error("{} holds no usable PEM private key: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// The relay's TLS server side: cheap to clone, all clones serve the pair last loaded.
/// [`ServerTls::load`] reads it; [`HttpSettings::tls`](crate::adapters::HttpSettings::tls)
/// serves it.
#[derive(Clone)]
pub struct ServerTls {
    files: Arc<TlsFiles>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they serve the same pair (clones of one another).
impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.current, &other.current)
    }
}

impl Eq for ServerTls {}

/// The pair every new handshake gets.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

impl ServerTls {
    /// Reads and checks a PEM certificate chain and its private key.
    ///
    /// # Errors
    /// [`BuildError::Tls`] naming the file that is missing, unreadable, not PEM, or whose key
    /// does not belong to the certificate.
    ///
    /// ```
    /// use spycloud_relay::BuildError;
    /// use spycloud_relay::adapters::{HttpSettings, ServerTls};
    ///
    /// # let dir = std::env::temp_dir().join(format!("spycloud-relay-doc-tls-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let pair = |name: &str| rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    /// # let (relay, other) = (pair("relay.example"), pair("other.example"));
    /// # std::fs::write(dir.join("relay.crt"), relay.cert.pem())?;
    /// # std::fs::write(dir.join("relay.key"), relay.signing_key.serialize_pem())?;
    /// # std::fs::write(dir.join("other.key"), other.signing_key.serialize_pem())?;
    /// let (cert, key) = (dir.join("relay.crt"), dir.join("relay.key"));
    /// let tls = ServerTls::load(&cert, &key)?;
    /// let https = HttpSettings { tls: Some(tls), ..HttpSettings::default() };
    ///
    /// let Err(BuildError::Tls(why)) = ServerTls::load(&cert, dir.join("other.key")) else { panic!() };
    /// assert!(why.starts_with("the key in ") && why.contains("other.key"), "{why}");
    /// let Err(BuildError::Tls(why)) = ServerTls::load(dir.join("missing.crt"), &key) else { panic!() };
    /// assert!(why.starts_with("could not read ") && why.contains("missing.crt"), "{why}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, BuildError> {
        let files = TlsFiles {
            cert: cert.into(),
            key: key.into(),
        };
        Self::checked(files).map_err(|error| BuildError::Tls(error.to_string()))
    }

    fn checked(files: TlsFiles) -> Result<Self, TlsError> {
        let current = Arc::new(Current(RwLock::new(Arc::new(read_pair(&files)?))));
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| TlsError::Key {
                path: files.key.clone(),
                reason: error.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The relay speaks HTTP/1.1 only, as SecureX does.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files: Arc::new(files),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads both files again; a good pair serves every handshake from now on.
    ///
    /// # Errors
    /// As [`ServerTls::load`]; the pair in use then stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let pair = Arc::new(read_pair(&self.files)?);
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Reloads the pair on every SIGHUP, logging what came of it, for as long as the runtime
    /// runs. Call inside the runtime.
    ///
    /// The files are read on a blocking thread, one reload at a time: the event loop keeps
    /// serving whatever the files are (signals that come meanwhile make one more reload).
    ///
    /// # Errors
    /// When the signal handler cannot be installed.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let tls = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let reloading = tls.clone();
                match tokio::task::spawn_blocking(move || reloading.reload()).await {
                    Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                    Ok(Err(error)) => tracing::error!(
                        %error,
                        "SIGHUP: TLS certificate and key not reloaded; the previous pair stays in use"
                    ),
                    Err(error) => tracing::error!(
                        %error,
                        "SIGHUP: TLS certificate and key not reloaded; the previous pair stays in use"
                    ),
                }
            }
        });
        Ok(())
    }

    /// The TLS handshake on `io` (the caller bounds its time); then the decrypted stream.
    pub fn accept<IO: AsyncRead + AsyncWrite + Unpin>(&self, io: IO) -> tokio_rustls::Accept<IO> {
        self.acceptor.accept(io)
    }
}

/// Reads `files` into a pair rustls serves, checked to belong together.
fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let (cert_pem, key_pem) = (read_pem_file(&files.cert)?, read_pem_file(&files.key)?);
    let certificate_error = |reason: String| TlsError::Certificate {
        path: files.cert.clone(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no CERTIFICATE section".to_owned()));
    }
    let key_error = |reason: String| TlsError::Key {
        path: files.key.clone(),
        reason,
    };
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| key_error(error.to_string()))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| key_error(error.to_string()))?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(error) => Err(certificate_error(error.to_string())),
    }
}

/// The bytes of `path`, if it is a regular file of at most [`MAX_PEM_BYTES`].
///
/// The kind is checked before the file is opened (opening a FIFO waits for a writer) and again
/// on the open file (it may have been replaced in between); the read stops past the bound
/// whatever the size said.
fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read_error = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let refused = |reason: &str| TlsError::Refused {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let too_large = format!("over {MAX_PEM_BYTES} bytes");
    let check = |metadata: std::fs::Metadata| {
        if !metadata.is_file() {
            Err(refused(
                "not a regular file (a FIFO, a directory or a device)",
            ))
        } else if metadata.len() > MAX_PEM_BYTES {
            Err(refused(&too_large))
        } else {
            Ok(())
        }
    };
    check(std::fs::metadata(path).map_err(read_error)?)?;
    let file = std::fs::File::open(path).map_err(read_error)?;
    check(file.metadata().map_err(read_error)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(refused(&too_large));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("spycloud-relay-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A self-signed certificate for localhost: (certificate PEM, key PEM).
    fn pair() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    #[test]
    fn a_good_pair_loads_and_reloads_and_a_bad_one_is_refused_naming_the_file() {
        let dir = Dir::new("unit");
        let (cert, key) = pair();
        let (_, other_key) = pair();
        let files = TlsFiles {
            cert: dir.write("cert.pem", &cert),
            key: dir.write("key.pem", &key),
        };
        let tls = ServerTls::load(&files.cert, &files.key).unwrap();
        let served = || {
            tls.current
                .0
                .read()
                .unwrap()
                .end_entity_cert()
                .unwrap()
                .to_vec()
        };
        let first = served();

        // A renewed pair is served after a reload.
        let (renewed_cert, renewed_key) = pair();
        dir.write("cert.pem", &renewed_cert);
        dir.write("key.pem", &renewed_key);
        tls.reload().unwrap();
        assert_ne!(served(), first);
        let renewed = served();

        // A key of another certificate: refused, the pair in use stays.
        dir.write("key.pem", &other_key);
        let error = tls.reload().unwrap_err();
        assert!(matches!(error, TlsError::Mismatch { .. }), "{error}");
        assert!(error.to_string().contains("key.pem") && error.to_string().contains("cert.pem"));
        assert_eq!(served(), renewed);

        let cases = [
            (dir.0.join("absent.pem"), files.key.clone(), "absent.pem"),
            (dir.write("empty.pem", ""), files.key.clone(), "empty.pem"),
            (
                files.cert.clone(),
                dir.write("nokey.pem", &cert),
                "nokey.pem",
            ),
            (
                files.cert.clone(),
                dir.0.join("nokey-absent.pem"),
                "nokey-absent.pem",
            ),
        ];
        for (cert, key, named) in cases {
            let error = ServerTls::load(cert, key).unwrap_err();
            assert!(error.to_string().contains(named), "{named}: {error}");
        }
    }
}
