//! The bridge's Ed25519 device identity for one instance (`reference/openclaw-ws.md` §4.3–§4.4):
//! created once, kept in the data directory (`devices/<instance>.json`, 0600, in the private data
//! directory of `crate::sqlite`), used to sign each connect challenge, and holding the device
//! token the gateway issues once its owner has approved the pairing.
//!
//! A key made per run would make a remote gateway open a new pairing request on every start, so
//! without a data directory (`:memory:`) the identity lives only as long as the process, and the
//! status says so.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use serde::{Deserialize, Serialize};

use super::{
    devices::SharedDevices,
    error::WsError,
    frames::{CLIENT_ID, CLIENT_MODE, Credentials, DeviceProof, ROLE, SCOPES, platform},
};

/// Folder of the identity files inside the data directory.
pub const DEVICES_DIR: &str = "devices";

/// What is kept on disk (JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    /// Format of this file.
    version: u32,
    /// The PKCS#8 document of the key pair, base64.
    private_key: String,
    /// The gateway URL the device token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    /// The device token the gateway issued after pairing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_token: Option<String>,
    /// The scopes that came with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<String>,
}

/// One instance's device identity.
pub struct DeviceIdentity {
    /// The key pair.
    key: Ed25519KeyPair,
    /// `hex(sha256(raw public key))`, the gateway's device id.
    id: String,
    /// Where it is kept; `None`: in memory only (or in PostgreSQL, below).
    path: Option<PathBuf>,
    /// The stored form (key, device token).
    stored: Stored,
    /// Kept in PostgreSQL, shared by replicas, under this instance name.
    shared: Option<(Arc<SharedDevices>, String)>,
    /// Shared: whether this is the database's identity (read at least once).
    synced: bool,
    /// Shared: the row as last read (a write replaces it only if it is still this).
    read: String,
    /// Shared: changes made here (device token kept or forgotten), and how many of them were
    /// written to the table.
    changes: u64,
    written: u64,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("paired", &self.stored.device_token.is_some())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

fn identity_error(what: impl std::fmt::Display) -> WsError {
    WsError::Identity(what.to_string())
}

/// This process's temporary file for writing `path`.
fn temp_path(path: &Path) -> PathBuf {
    path.with_extension(format!("json.{}.tmp", std::process::id()))
}

/// Removes the temporary files of `instance` that no live writer holds: any left by a process
/// that is gone (a crash between write and rename). Another live process's is left alone.
fn remove_leftovers(devices: &Path, instance: &str) {
    let Ok(entries) = std::fs::read_dir(devices) else {
        return;
    };
    let prefix = format!("{instance}.json.");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id()
            || (cfg!(target_os = "linux") && Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The file of `instance`'s identity under `data_dir`.
pub fn identity_path(data_dir: &Path, instance: &str) -> PathBuf {
    data_dir.join(DEVICES_DIR).join(format!("{instance}.json"))
}

impl DeviceIdentity {
    /// The identity of `instance`, read from `data_dir` or created there (0600); in memory when
    /// `data_dir` is `None`.
    pub fn load_or_create(data_dir: Option<&Path>, instance: &str) -> Result<Self, WsError> {
        let Some(dir) = data_dir else {
            return Self::from_stored(Self::generate()?, None);
        };
        let path = identity_path(dir, instance);
        // A file left open to others (restored from a backup, copied by hand) is made private
        // before its key is read. A symbolic link is read where it points but never changed
        // through (a Kubernetes Secret mounted there stays as it is; `secure_dir` does not
        // follow links). Temporary files a crash left behind (they hold the key) are removed.
        let devices = dir.join(DEVICES_DIR);
        if devices.exists() {
            crate::sqlite::secure_dir(&devices).map_err(identity_error)?;
            remove_leftovers(&devices, instance);
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let stored: Stored = serde_json::from_str(&text).map_err(|e| {
                    identity_error(format!(
                        "{} is not a device identity ({e}); move it away to make a new one (the gateway's owner must then approve it again)",
                        path.display()
                    ))
                })?;
                Self::from_stored(stored, Some(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut identity = Self::from_stored(Self::generate()?, Some(path))?;
                identity.save()?;
                tracing::info!(instance = %instance, device = %identity.id, "device identity created");
                Ok(identity)
            }
            Err(e) => Err(identity_error(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn generate() -> Result<Stored, WsError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| identity_error("cannot generate an Ed25519 key"))?;
        Ok(Stored {
            version: 1,
            private_key: STANDARD.encode(pkcs8.as_ref()),
            ..Stored::default()
        })
    }

    /// The identity of `instance` in the PostgreSQL table shared by replicas. Until [`sync`]
    /// has read it, it holds a key of its own that is offered to the table but never used to
    /// connect.
    pub fn shared(devices: Arc<SharedDevices>, instance: &str) -> Result<Self, WsError> {
        let mut identity = Self::from_stored(Self::generate()?, None)?;
        identity.shared = Some((devices, instance.to_string()));
        Ok(identity)
    }

    fn from_stored(stored: Stored, path: Option<PathBuf>) -> Result<Self, WsError> {
        let der = STANDARD
            .decode(stored.private_key.as_bytes())
            .map_err(|e| identity_error(format!("bad private key encoding: {e}")))?;
        let key = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|e| identity_error(format!("bad private key: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let id = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        if let Some(token) = &stored.device_token {
            crate::telemetry::register_secret(token);
        }
        Ok(DeviceIdentity {
            key,
            id,
            path,
            stored,
            shared: None,
            synced: false,
            read: String::new(),
            changes: 0,
            written: 0,
        })
    }

    /// Writes the identity file (0600, in a private directory), replacing it atomically: the
    /// text goes to this process's temporary file, created exclusively (a file or link already
    /// there is removed, never opened or followed), synced, then renamed over the identity (a
    /// link there is replaced, not followed).
    fn save(&mut self) -> Result<(), WsError> {
        if self.shared.is_some() {
            // Written by the next `sync`, outside the lock this is called under.
            self.changes += 1;
            return Ok(());
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(data_dir) = dir.parent() {
            crate::sqlite::secure_dir(data_dir).map_err(identity_error)?;
        }
        crate::sqlite::secure_dir(dir).map_err(identity_error)?;
        let text = serde_json::to_string_pretty(&self.stored).map_err(identity_error)?;
        let tmp = temp_path(path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            let mut file = match options.open(&tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Left by a crash of this pid's predecessor, or planted: removed (a link
                    // itself, not what it points to), then created exclusively again.
                    std::fs::remove_file(&tmp)?;
                    options.open(&tmp)?
                }
                other => other?,
            };
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename is done; a folder that cannot be synced does not undo it.
            #[cfg(unix)]
            if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
                tracing::debug!(error = %e, "cannot sync the devices folder");
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            identity_error(format!("cannot write {}: {e}", path.display()))
        })
    }

    /// The gateway's id of this device.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the identity survives a restart.
    pub fn is_persistent(&self) -> bool {
        self.path.is_some() || self.shared.is_some()
    }

    /// base64url of the raw 32-byte public key.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.public_key().as_ref())
    }

    /// The device token for `gateway`, if this device was paired with it.
    pub fn device_token(&self, gateway: &str) -> Option<&str> {
        self.stored
            .device_token
            .as_deref()
            .filter(|_| self.stored.gateway.as_deref() == Some(gateway))
    }

    /// The scopes granted with the device token.
    pub fn granted_scopes(&self) -> &[String] {
        &self.stored.scopes
    }

    /// Keeps a device token the gateway issued (written at once).
    pub fn store_device_token(
        &mut self,
        gateway: &str,
        token: &str,
        scopes: &[String],
    ) -> Result<(), WsError> {
        if self.stored.device_token.as_deref() == Some(token)
            && self.stored.gateway.as_deref() == Some(gateway)
            && self.stored.scopes == scopes
        {
            return Ok(());
        }
        crate::telemetry::register_secret(token);
        self.stored.device_token = Some(token.to_string());
        self.stored.gateway = Some(gateway.to_string());
        self.stored.scopes = scopes.to_vec();
        self.save()
    }

    /// Forgets the device token (the gateway revoked it); the key stays.
    pub fn forget_device_token(&mut self) -> Result<(), WsError> {
        if self.stored.device_token.is_none() {
            return Ok(());
        }
        self.stored.device_token = None;
        self.stored.scopes.clear();
        self.save()
    }

    /// The `device` block proving this identity for one challenge.
    pub fn prove(&self, credentials: &Credentials, nonce: &str, signed_at: i64) -> DeviceProof {
        let payload = signature_payload(
            &self.id,
            &SCOPES,
            signed_at,
            credentials.signed_token(),
            nonce,
        );
        DeviceProof {
            id: self.id.clone(),
            public_key: self.public_key(),
            signature: URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).as_ref()),
            signed_at,
            nonce: nonce.to_string(),
        }
    }
}

/// The v3 text the device signs (§4.3):
/// `v3|<deviceId>|<client.id>|<client.mode>|<role>|<scopes>|<signedAt>|<token>|<nonce>|<platform>|<deviceFamily>`.
/// Brings a shared identity and its table together: writes what changed here (a device token
/// kept or forgotten), then reads the table's (the key the first replica stored, the device token
/// another replica or `openclaw-mcp pair` kept). No effect for an identity kept in a file. An
/// identity never read from the table is an error (connecting with a key nobody else has would
/// open a pairing request for it); once read, a table out of reach only costs a warning.
pub async fn sync(identity: &Mutex<DeviceIdentity>) -> Result<(), WsError> {
    let (devices, instance, mine, read, changes, dirty, synced) = {
        let guard = identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((devices, instance)) = &guard.shared else {
            return Ok(());
        };
        let mine = serde_json::to_string(&guard.stored).map_err(identity_error)?;
        let dirty = guard.changes != guard.written;
        (
            devices.clone(),
            instance.clone(),
            mine,
            guard.read.clone(),
            guard.changes,
            dirty,
            guard.synced,
        )
    };
    let exchanged = async {
        if dirty && synced && !devices.write(&instance, &mine, &read).await? {
            tracing::info!(instance = %instance, "the shared device identity changed elsewhere meanwhile; that change stands");
        }
        devices.load_or_insert(&instance, &mine).await
    }
    .await;
    let text = match exchanged {
        Ok(text) => text,
        Err(e) if synced => {
            tracing::warn!(instance = %instance, error = %e, "the shared device identity cannot be read; using the last one read");
            return Ok(());
        }
        Err(e) => {
            return Err(identity_error(format!(
                "the device identity shared by the replicas cannot be read: {e}"
            )));
        }
    };
    let stored: Stored = serde_json::from_str(&text).map_err(|e| {
        identity_error(format!(
            "the shared device identity of {instance} is not one ({e}); delete its row in openclaw_mcp.devices to make a new one"
        ))
    })?;
    let mut fresh = DeviceIdentity::from_stored(stored, None)?;
    fresh.read = text;
    let mut guard = identity
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !guard.synced {
        tracing::info!(instance = %instance, device = %fresh.id, "device identity shared by the replicas");
    }
    fresh.shared = guard.shared.take();
    fresh.synced = true;
    fresh.changes = guard.changes;
    fresh.written = if dirty && synced {
        changes
    } else {
        guard.written
    };
    // A change made here while the table was read is kept, and written next time.
    if fresh.changes != fresh.written {
        fresh.stored.device_token = guard.stored.device_token.clone();
        fresh.stored.gateway = guard.stored.gateway.clone();
        fresh.stored.scopes = guard.stored.scopes.clone();
    }
    *guard = fresh;
    Ok(())
}

pub fn signature_payload(
    device_id: &str,
    scopes: &[&str],
    signed_at: i64,
    token: &str,
    nonce: &str,
) -> String {
    format!(
        "v3|{device_id}|{CLIENT_ID}|{CLIENT_MODE}|{ROLE}|{}|{signed_at}|{token}|{nonce}|{}|",
        scopes.join(","),
        platform().trim().to_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_kept_private_and_signs_what_the_gateway_checks() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        let path = identity_path(dir.path(), "default");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let again = DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        assert_eq!(first.id(), again.id(), "the same key after a restart");
        assert_eq!(first.id().len(), 64);
        let credentials = Credentials {
            token: Some("tok".into()),
            device_token: None,
        };
        let proof = first.prove(&credentials, "n-1", 1_795_863_871_891);
        let public = URL_SAFE_NO_PAD.decode(&proof.public_key).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(&proof.signature).unwrap();
        let payload = format!(
            "v3|{}|gateway-client|backend|operator|operator.read,operator.write,operator.admin|1795863871891|tok|n-1|{}|",
            first.id(),
            std::env::consts::OS
        );
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
            .verify(payload.as_bytes(), &signature)
            .expect("the signature verifies");
        first
            .store_device_token(
                "http://gw",
                "dev-token-1234567890",
                &["operator.read".into()],
            )
            .unwrap();
        let reloaded = DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        assert_eq!(
            reloaded.device_token("http://gw"),
            Some("dev-token-1234567890")
        );
        assert_eq!(reloaded.device_token("http://other"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_loosened_identity_is_made_private_on_load_and_nothing_is_written_through_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut first = DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        let path = identity_path(dir.path(), "default");
        let devices = path.parent().unwrap().to_path_buf();
        // Restored from a backup with the wrong mode: private again before the key is used.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&devices, std::fs::Permissions::from_mode(0o755)).unwrap();
        let again = DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        assert_eq!(again.id(), first.id());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&devices), 0o700);

        // A link planted at the very name this process writes to is not written through: it is
        // removed and the file created exclusively; the victim stays untouched.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, temp_path(&path)).unwrap();
        first
            .store_device_token("http://gw", "dev-token-abcdef123456", &[])
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("dev-token-abcdef123456")
        );
        assert!(!temp_path(&path).exists());

        // A crash's leftover (a dead pid's temporary file, holding the key) is removed on load;
        // a live process's is not.
        let dead = path.with_extension("json.4000000000.tmp");
        std::fs::write(&dead, "key").unwrap();
        let live = temp_path(&path);
        std::fs::write(&live, "mine").unwrap();
        DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        std::fs::remove_file(&live).unwrap();

        // An identity that is a link (a mounted secret) is read where it points, and what it
        // points to is not changed.
        let mounted = dir.path().join("mounted.json");
        std::fs::copy(&path, &mounted).unwrap();
        std::fs::set_permissions(&mounted, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&mounted, &path).unwrap();
        let linked = DeviceIdentity::load_or_create(Some(dir.path()), "default").unwrap();
        assert_eq!(linked.id(), first.id());
        assert_eq!(mode(&mounted), 0o444);
    }
}
