//! A real `redis-server` for the tests: on a free loopback port, nothing saved to disk, killed
//! when dropped. When the binary is missing the tests that need it say so loudly and skip; CI
//! (`.ci/run`) installs it, so there they always run.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` process the test owns.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// A fresh server, or `None` (after a loud message) when `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!! SKIPPED: `redis-server` is not installed; the Redis tests did not run.\n\
                 !!! Install it (Debian: apt-get install -y redis-server) or run .ci/run.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            return None;
        }
        // A port the OS just handed out is free unless another process takes it in between:
        // then try another.
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self { port, child: None };
            if server.restart() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on a free loopback port");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port, empty; whether it answers.
    pub fn restart(&mut self) -> bool {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                // It exited: the port was taken.
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
    }

    fn ping(&self) -> bool {
        self.connection()
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_ok()
    }

    /// Every key the server holds (SCAN, as an operator would list them).
    pub fn keys(&self) -> Vec<String> {
        let mut connection = self.connection().expect("redis answers");
        let mut keys: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter::<String>(&mut connection)
            .expect("SCAN")
            .collect::<Result<_, _>>()
            .expect("SCAN");
        keys.sort();
        keys
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut connection = self.connection().expect("redis answers");
        redis::cmd("GET")
            .arg(key)
            .query(&mut connection)
            .expect("GET")
    }

    /// Sets `key` to `value` for `ttl_ms` milliseconds.
    pub fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        let mut connection = self.connection().expect("redis answers");
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query::<()>(&mut connection)
            .expect("SET");
    }

    /// The milliseconds `key` has left (`PTTL`: -1 without an expiry, -2 when absent).
    pub fn pttl(&self, key: &str) -> i64 {
        let mut connection = self.connection().expect("redis answers");
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut connection)
            .expect("PTTL")
    }
}

impl RedisServer {
    /// Writes `value` under `key` (`SET`), keeping the key's expiry (`KEEPTTL`): as someone
    /// with write access to Redis would.
    pub fn overwrite(&self, key: &str, value: &[u8]) {
        let mut connection = self.connection().expect("redis answers");
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("KEEPTTL")
            .query::<()>(&mut connection)
            .expect("SET");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The relay's sealing of Redis values, written out from its documented format (`0x01 ||
/// 24-byte nonce || XChaCha20-Poly1305 ciphertext and tag`, the key name as associated data,
/// the key derived from `RELAY_REDIS_KEY_SECRET` by HKDF-SHA-256 under the value label), so a
/// test can read what a replica stored and write what an attacker holding the secret would.
pub struct Sealer(chacha20poly1305::XChaCha20Poly1305);

impl Sealer {
    pub fn new(secret: &str) -> Self {
        use chacha20poly1305::KeyInit;
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, secret.as_bytes())
            .expand(b"spycloud-relay redis value encryption v1", &mut key)
            .expect("32 bytes");
        Self(chacha20poly1305::XChaCha20Poly1305::new(&key.into()))
    }

    /// What `stored` holds under the key `name`, if it opens there.
    pub fn open(&self, name: &str, stored: &[u8]) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::{Aead, Payload};
        let (&1, rest) = stored.split_first()? else {
            return None;
        };
        let nonce: [u8; 24] = rest.get(..24)?.try_into().ok()?;
        let payload = Payload {
            msg: &rest[24..],
            aad: name.as_bytes(),
        };
        self.0.decrypt(&nonce.into(), payload).ok()
    }

    /// `value` sealed for the key `name`, as the relay writes it.
    pub fn seal(&self, name: &str, value: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead, Payload};
        let nonce: [u8; 24] = std::array::from_fn(|n| n as u8 ^ value.len() as u8);
        let payload = Payload {
            msg: value,
            aad: name.as_bytes(),
        };
        let sealed = self.0.encrypt(&nonce.into(), payload).expect("sealed");
        [&[1u8][..], &nonce, &sealed].concat()
    }
}
